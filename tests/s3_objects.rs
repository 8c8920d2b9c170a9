//! Object operations through aws-sdk-s3 against a real node: bodies from 0 bytes to
//! 200 MiB byte-identical, metadata and system headers, Content-MD5 and additional
//! checksums, ranges, conditional reads and writes, delete(s), copy.

mod common;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, Delete, MetadataDirective, ObjectIdentifier,
};
use common::{body, client, code, md5_hex, read_all, start, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_every_size_read_back_identical() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("sizes").send().await.unwrap();
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        65_537,
        256 << 10,
        (256 << 10) + 1,
        (1 << 20) + 3,
        9 << 20,
        200 << 20,
    ];
    for (i, n) in sizes.into_iter().enumerate() {
        let data = body(n, i as u64);
        let key = format!("obj-{n}");
        let put = s3
            .put_object()
            .bucket("sizes")
            .key(&key)
            .body(data.clone().into())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.e_tag(),
            Some(format!("\"{}\"", md5_hex(&data)).as_str()),
            "size {n}"
        );
        let got = s3
            .get_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_length(), Some(n as i64));
        let bytes = read_all(got).await;
        assert!(bytes == data, "size {n}: bytes differ");
    }
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_system_headers_round_trip() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("meta").send().await.unwrap();
    let expires = DateTime::from_secs(2_000_000_000);
    s3.put_object()
        .bucket("meta")
        .key("doc.txt")
        .body(b"hello".to_vec().into())
        .content_type("text/plain")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"doc.txt\"")
        .content_language("en")
        .cache_control("max-age=60")
        .expires(expires)
        .metadata("Color", "blue")
        .metadata("shape", "round")
        .send()
        .await
        .unwrap();
    let h = s3
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/plain"));
    assert_eq!(h.content_encoding(), Some("identity"));
    assert_eq!(
        h.content_disposition(),
        Some("attachment; filename=\"doc.txt\"")
    );
    assert_eq!(h.content_language(), Some("en"));
    assert_eq!(h.cache_control(), Some("max-age=60"));
    assert_eq!(h.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let meta = h.metadata().unwrap();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    assert_eq!(h.content_length(), Some(5));
    assert!(h.last_modified().is_some());
    // response-* overrides on GET.
    let g = s3
        .get_object()
        .bucket("meta")
        .key("doc.txt")
        .response_content_type("application/x-test")
        .response_cache_control("no-store")
        .send()
        .await
        .unwrap();
    assert_eq!(g.content_type(), Some("application/x-test"));
    assert_eq!(g.cache_control(), Some("no-store"));
    // Oversized metadata is refused.
    let e = s3
        .put_object()
        .bucket("meta")
        .key("big-meta")
        .metadata("m", "v".repeat(3000))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MetadataTooLarge");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_digests_are_refused_and_change_nothing() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("dig").send().await.unwrap();
    s3.put_object()
        .bucket("dig")
        .key("k")
        .body(b"original".to_vec().into())
        .send()
        .await
        .unwrap();
    // Content-MD5 of other bytes.
    let wrong_md5 = "XrY7u+Ae7tCTyyK7j1rNww=="; // md5("hello world")
    let e = s3
        .put_object()
        .bucket("dig")
        .key("k")
        .content_md5(wrong_md5)
        .body(b"changed".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("BadDigest", 400));
    let e = s3
        .put_object()
        .bucket("dig")
        .key("k")
        .content_md5("not-base64!")
        .body(b"changed".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDigest");
    // A wrong additional checksum.
    let e = s3
        .put_object()
        .bucket("dig")
        .key("k")
        .checksum_crc32("AAAAAA==")
        .body(b"changed".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = s3
        .put_object()
        .bucket("dig")
        .key("new")
        .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        .body(b"not empty".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let got = read_all(s3.get_object().bucket("dig").key("k").send().await.unwrap()).await;
    assert_eq!(got, b"original");
    let e = s3
        .head_object()
        .bucket("dig")
        .key("new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additional_checksums_are_verified_and_echoed() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("sums").send().await.unwrap();
    let data = body(300_000, 7);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("k-{}", algo.as_str());
        // The SDK computes the checksum and sends it (as a header or a trailer).
        let put = s3
            .put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(data.clone().into())
            .send()
            .await
            .unwrap();
        let sent = match algo {
            ChecksumAlgorithm::Crc32 => put.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => put.checksum_crc32_c(),
            ChecksumAlgorithm::Sha1 => put.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => put.checksum_sha256(),
            _ => put.checksum_crc64_nvme(),
        }
        .map(str::to_owned);
        assert!(sent.is_some(), "{algo:?} echoed on PUT");
        let got = s3
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let echoed = match algo {
            ChecksumAlgorithm::Crc32 => got.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => got.checksum_crc32_c(),
            ChecksumAlgorithm::Sha1 => got.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => got.checksum_sha256(),
            _ => got.checksum_crc64_nvme(),
        }
        .map(str::to_owned);
        assert_eq!(echoed, sent, "{algo:?} echoed on GET");
        assert_eq!(read_all(got).await, data);
    }
    // SHA-256 of the empty string, given as a header, is checked against the body.
    s3.put_object()
        .bucket("sums")
        .key("empty")
        .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_answer_206_and_416() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("rng").send().await.unwrap();
    let data = body(3 << 20, 3);
    s3.put_object()
        .bucket("rng")
        .key("k")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    for (header, start, end) in [
        ("bytes=0-0", 0usize, 1usize),
        ("bytes=100-199", 100, 200),
        ("bytes=1048570-1048590", 1_048_570, 1_048_591),
        ("bytes=3000000-", 3_000_000, 3 << 20),
        ("bytes=-10", (3 << 20) - 10, 3 << 20),
        ("bytes=3145000-99999999", 3_145_000, 3 << 20),
    ] {
        let got = s3
            .get_object()
            .bucket("rng")
            .key("k")
            .range(header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {}-{}/{}", start, end - 1, 3 << 20).as_str())
        );
        assert_eq!(got.content_length(), Some((end - start) as i64));
        assert!(read_all(got).await == data[start..end], "{header}");
    }
    let h = s3
        .head_object()
        .bucket("rng")
        .key("k")
        .range("bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(10));
    let e = s3
        .get_object()
        .bucket("rng")
        .key("k")
        .range("bytes=4000000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidRange", 416));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_reads_and_writes() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("cond").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .body(b"v1".to_vec().into())
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    let past = DateTime::from_secs(1_000_000_000);
    let future = DateTime::from_secs(4_000_000_000);

    assert!(
        s3.get_object()
            .bucket("cond")
            .key("k")
            .if_match(&etag)
            .send()
            .await
            .is_ok()
    );
    let e = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let e = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    assert!(
        s3.get_object()
            .bucket("cond")
            .key("k")
            .if_modified_since(past)
            .send()
            .await
            .is_ok()
    );
    let e = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let e = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);

    // Conditional writes.
    let e = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .if_none_match("*")
        .body(b"v2".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    let e = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .if_match("\"0123\"")
        .body(b"v2".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    s3.put_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .body(b"v2".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("cond")
        .key("fresh")
        .if_none_match("*")
        .body(b"new".to_vec().into())
        .send()
        .await
        .unwrap();
    let got = read_all(
        s3.get_object()
            .bucket("cond")
            .key("k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, b"v2");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_single_many_quiet_and_version_null() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("del").send().await.unwrap();
    for i in 0..20 {
        s3.put_object()
            .bucket("del")
            .key(format!("k{i:02}"))
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket("del")
        .key("k00")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("del")
        .key("k00")
        .send()
        .await
        .unwrap(); // idempotent
    s3.delete_object()
        .bucket("del")
        .key("k01")
        .version_id("null")
        .send()
        .await
        .unwrap();
    let e = s3
        .delete_object()
        .bucket("del")
        .key("k02")
        .version_id("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");

    let ids = |r: std::ops::Range<i32>| -> Vec<ObjectIdentifier> {
        r.map(|i| {
            ObjectIdentifier::builder()
                .key(format!("k{i:02}"))
                .build()
                .unwrap()
        })
        .collect()
    };
    let mut many = ids(2..10);
    many.push(
        ObjectIdentifier::builder()
            .key("k10")
            .version_id("null")
            .build()
            .unwrap(),
    );
    let out = s3
        .delete_objects()
        .bucket("del")
        .delete(Delete::builder().set_objects(Some(many)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 9);
    assert!(out.errors().is_empty());
    let quiet = s3
        .delete_objects()
        .bucket("del")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(11..15)))
                .quiet(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(quiet.deleted().is_empty());
    let left: Vec<_> = s3
        .list_objects_v2()
        .bucket("del")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(left, ["k15", "k16", "k17", "k18", "k19"]);
    let too_many = ids(0..1001);
    let e = s3
        .delete_objects()
        .bucket("del")
        .delete(
            Delete::builder()
                .set_objects(Some(too_many))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedXML");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_keeps_or_replaces_metadata_and_checks_source_conditions() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("src").send().await.unwrap();
    s3.create_bucket().bucket("dst").send().await.unwrap();
    let data = body(2 << 20, 9);
    let put = s3
        .put_object()
        .bucket("src")
        .key("a")
        .content_type("image/png")
        .metadata("k", "v")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();

    let out = s3
        .copy_object()
        .bucket("dst")
        .key("b")
        .copy_source("src/a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    let h = s3
        .head_object()
        .bucket("dst")
        .key("b")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("image/png"));
    assert_eq!(
        h.metadata().and_then(|m| m.get("k")).map(String::as_str),
        Some("v")
    );
    assert!(read_all(s3.get_object().bucket("dst").key("b").send().await.unwrap()).await == data);

    s3.copy_object()
        .bucket("src")
        .key("c")
        .copy_source("src/a")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("n", "w")
        .send()
        .await
        .unwrap();
    let h = s3
        .head_object()
        .bucket("src")
        .key("c")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/plain"));
    let m = h.metadata().unwrap();
    assert_eq!(
        (m.get("n").map(String::as_str), m.get("k")),
        (Some("w"), None)
    );

    // Copying onto itself needs REPLACE.
    let e = s3
        .copy_object()
        .bucket("src")
        .key("a")
        .copy_source("src/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    s3.copy_object()
        .bucket("src")
        .key("a")
        .copy_source("src/a")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("fresh", "1")
        .send()
        .await
        .unwrap();

    let e = s3
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/a")
        .copy_source_if_match("\"other\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = s3
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/a")
        .copy_source_if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = s3
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    assert_eq!(
        status(
            &s3.head_object()
                .bucket("dst")
                .key("x")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_limits_and_missing_things() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("lim").send().await.unwrap();
    let long = "k".repeat(1025);
    let e = s3
        .put_object()
        .bucket("lim")
        .key(&long)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    let ok = "k".repeat(1024);
    s3.put_object()
        .bucket("lim")
        .key(&ok)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("lim")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    let e = s3
        .put_object()
        .bucket("nobucket")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let unicode = "dir/ключ with spaces+plus%percent?.txt";
    s3.put_object()
        .bucket("lim")
        .key(unicode)
        .body(ByteStream::from_static(b"u"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_all(
            s3.get_object()
                .bucket("lim")
                .key(unicode)
                .send()
                .await
                .unwrap()
        )
        .await,
        b"u"
    );
    node.stop().await.unwrap();
}
