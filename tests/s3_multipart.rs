//! Multipart uploads through aws-sdk-s3 against a real node: a 1 GiB object in 64 parts
//! from 8 concurrent uploaders read back byte-identical (whole, ranges across part
//! boundaries, partNumber), every Complete error, listings with their markers, part
//! copies, checksums, GetObjectAttributes, conditional and repeated Completes, and a
//! restart between UploadPart and Complete.

mod common;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes, StorageClass,
};
use common::{body, client, code, md5_hex, read_all, start, status};
use md5::Digest as _;

const MIB: usize = 1 << 20;

/// Part `i` of the big object: 16 MiB, eight bytes per generator step (fast in tests).
fn big_part(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(16 * MIB);
    while out.len() < 16 * MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn completed(parts: &[(i32, String)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
                .collect(),
        ))
        .build()
}

async fn create(s3: &Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap()
}

async fn part(s3: &Client, bucket: &str, key: &str, id: &str, n: i32, data: Vec<u8>) -> String {
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(data.into())
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap()
}

fn multipart_etag(md5s: &[Vec<u8>]) -> String {
    format!("\"{}-{}\"", md5_hex(&md5s.concat()), md5s.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gibibyte_in_64_parts_from_8_uploaders_reads_back_identical() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("big").send().await.unwrap();
    let id = create(&s3, "big", "gib").await;
    let mut uploaders = tokio::task::JoinSet::new();
    for u in 0..8usize {
        let (s3, id) = (s3.clone(), id.clone());
        uploaders.spawn(async move {
            let mut done = Vec::new();
            for i in (u..64).step_by(8) {
                let data = big_part(i);
                let md5 = md5::Md5::digest(&data).to_vec();
                let etag = part(&s3, "big", "gib", &id, i as i32 + 1, data).await;
                assert_eq!(etag, format!("\"{}\"", md5_hex(&big_part(i))));
                done.push((i as i32 + 1, etag, md5));
            }
            done
        });
    }
    let mut parts = Vec::new();
    while let Some(r) = uploaders.join_next().await {
        parts.extend(r.unwrap());
    }
    parts.sort();
    let list: Vec<(i32, String)> = parts.iter().map(|(n, e, _)| (*n, e.clone())).collect();
    let md5s: Vec<Vec<u8>> = parts.iter().map(|p| p.2.clone()).collect();
    let done = s3
        .complete_multipart_upload()
        .bucket("big")
        .key("gib")
        .upload_id(&id)
        .multipart_upload(completed(&list))
        .send()
        .await
        .unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&md5s).as_str()));

    // The whole object, streamed and compared part by part.
    let got = s3
        .get_object()
        .bucket("big")
        .key("gib")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(1 << 30));
    assert_eq!(got.e_tag(), done.e_tag());
    assert_eq!(
        got.parts_count(),
        None,
        "the part count comes only with partNumber"
    );
    let mut stream = got.body;
    let (mut part_no, mut pending) = (0usize, Vec::new());
    while let Some(bytes) = stream.next().await {
        pending.extend_from_slice(&bytes.unwrap());
        while pending.len() >= 16 * MIB {
            let rest = pending.split_off(16 * MIB);
            assert!(pending == big_part(part_no), "part {} differs", part_no + 1);
            pending = rest;
            part_no += 1;
        }
    }
    assert_eq!((part_no, pending.len()), (64, 0));

    // Ranges across one and across two part boundaries.
    let p = 16 * MIB;
    for (first, last) in [(p - 100, p + 99), (47 * p - 5, 49 * p + 4)] {
        let got = s3
            .get_object()
            .bucket("big")
            .key("gib")
            .range(format!("bytes={first}-{last}"))
            .send()
            .await
            .unwrap();
        let want: Vec<u8> = (first / p..=last / p).flat_map(big_part).collect();
        let base = (first / p) * p;
        assert_eq!(read_all(got).await, want[first - base..=last - base]);
    }
    // A part by number, and the part count on HEAD.
    let got = s3
        .get_object()
        .bucket("big")
        .key("gib")
        .part_number(3)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parts_count(), Some(64));
    assert_eq!(
        got.content_range(),
        Some(format!("bytes {}-{}/{}", 2 * p, 3 * p - 1, 1 << 30).as_str())
    );
    assert!(read_all(got).await == big_part(2));
    let head = s3
        .head_object()
        .bucket("big")
        .key("gib")
        .part_number(64)
        .send()
        .await
        .unwrap();
    assert_eq!(head.parts_count(), Some(64));
    assert_eq!(head.content_length(), Some(p as i64));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_errors_are_s3s_and_change_nothing() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("errs").send().await.unwrap();
    let id = create(&s3, "errs", "k").await;
    let small = part(&s3, "errs", "k", &id, 1, body(1000, 1)).await;
    let big = part(&s3, "errs", "k", &id, 2, body(5 * MIB, 2)).await;
    let complete = |parts: Vec<(i32, String)>| {
        s3.complete_multipart_upload()
            .bucket("errs")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&parts))
            .send()
    };
    let e = complete(vec![(2, big.clone()), (1, small.clone())])
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidPartOrder", 400));
    let e = complete(vec![(2, "\"0123\"".into())]).await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidPart", 400));
    let e = complete(vec![(3, big.clone())]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(vec![(1, small.clone()), (2, big.clone())])
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("EntityTooSmall", 400));
    let e = complete(vec![]).await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("MalformedXML", 400));
    let e = s3
        .upload_part()
        .bucket("errs")
        .key("k")
        .upload_id(&id)
        .part_number(10_001)
        .body(body(10, 3).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidArgument", 400));
    let e = s3
        .upload_part()
        .bucket("errs")
        .key("k")
        .upload_id("no-such-upload")
        .part_number(1)
        .body(body(10, 3).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchUpload", 404));
    // None of that made an object.
    let e = s3
        .head_object()
        .bucket("errs")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);

    // Abort: the upload is gone, a second abort and a Complete say so.
    s3.abort_multipart_upload()
        .bucket("errs")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let e = s3
        .abort_multipart_upload()
        .bucket("errs")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchUpload", 404));
    let e = complete(vec![(2, big)]).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_with_their_markers() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("lists").send().await.unwrap();
    let id = create(&s3, "lists", "parts").await;
    for n in 1..=5 {
        part(
            &s3,
            "lists",
            "parts",
            &id,
            n,
            body(100 + n as usize, n as u64),
        )
        .await;
    }
    let page = s3
        .list_parts()
        .bucket("lists")
        .key("parts")
        .upload_id(&id)
        .max_parts(2)
        .part_number_marker("1")
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = page
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [2, 3]);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("3"));
    assert_eq!(page.parts()[0].size(), Some(102));
    assert_eq!(
        page.parts()[0].e_tag(),
        Some(format!("\"{}\"", md5_hex(&body(102, 2))).as_str())
    );

    for key in ["a/1", "a/2", "b", "c"] {
        create(&s3, "lists", key).await;
    }
    create(&s3, "lists", "b").await; // two uploads of one key
    let all = s3
        .list_multipart_uploads()
        .bucket("lists")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = all.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "b", "b", "c", "parts"]);
    let b_ids: Vec<String> = all
        .uploads()
        .iter()
        .filter(|u| u.key() == Some("b"))
        .map(|u| u.upload_id().unwrap().to_owned())
        .collect();
    let page = s3
        .list_multipart_uploads()
        .bucket("lists")
        .delimiter("/")
        .max_uploads(2)
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = page
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/"]);
    assert_eq!(page.uploads().len(), 1);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_key_marker(), Some("b"));
    let next = s3
        .list_multipart_uploads()
        .bucket("lists")
        .delimiter("/")
        .key_marker("b")
        .upload_id_marker(page.next_upload_id_marker().unwrap())
        .send()
        .await
        .unwrap();
    let rest: Vec<(String, String)> = next
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap().to_owned(),
                u.upload_id().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rest[0], ("b".to_owned(), b_ids[1].clone()));
    assert_eq!(rest.len(), 3);
    assert_eq!(next.is_truncated(), Some(false));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_copies_checksums_and_repeated_completes() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("copies").send().await.unwrap();
    let src = body(6 * MIB + 77, 9);
    s3.put_object()
        .bucket("copies")
        .key("src")
        .body(src.clone().into())
        .send()
        .await
        .unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("copies")
        .key("dst")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .content_type("text/x-parts")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let copy = |n: i32, range: Option<&str>, if_match: Option<&str>| {
        s3.upload_part_copy()
            .bucket("copies")
            .key("dst")
            .upload_id(&id)
            .part_number(n)
            .copy_source("copies/src")
            .set_copy_source_range(range.map(str::to_owned))
            .set_copy_source_if_match(if_match.map(str::to_owned))
            .send()
    };
    let e = copy(1, None, Some("\"nope\"")).await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    let e = copy(1, Some(&format!("bytes=0-{}", src.len())), None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let r = 1000..(5 * MIB + 1000);
    let p1 = copy(1, Some(&format!("bytes={}-{}", r.start, r.end - 1)), None)
        .await
        .unwrap()
        .copy_part_result
        .unwrap();
    assert_eq!(
        p1.e_tag(),
        Some(format!("\"{}\"", md5_hex(&src[r.clone()])).as_str())
    );
    assert!(p1.checksum_crc32().is_some());
    let tail = body(333, 4);
    let p2 = s3
        .upload_part()
        .bucket("copies")
        .key("dst")
        .upload_id(&id)
        .part_number(2)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(tail.clone().into())
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(p1.e_tag().unwrap())
                .checksum_crc32(p1.checksum_crc32().unwrap())
                .build(),
        )
        .parts(
            CompletedPart::builder()
                .part_number(2)
                .e_tag(p2.e_tag().unwrap())
                .checksum_crc32(p2.checksum_crc32().unwrap())
                .build(),
        )
        .build();
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("copies")
            .key("dst")
            .upload_id(&id)
            .multipart_upload(parts.clone())
            .send()
    };
    let done = complete().await.unwrap();
    assert!(done.checksum_crc32().unwrap().ends_with("-2"));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    // Repeating the Complete answers with the same object.
    let again = complete().await.unwrap();
    assert_eq!(again.e_tag(), done.e_tag());
    let got = s3
        .get_object()
        .bucket("copies")
        .key("dst")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/x-parts"));
    assert_eq!(got.checksum_crc32(), done.checksum_crc32());
    assert_eq!(read_all(got).await, [&src[r.clone()], &tail[..]].concat());

    // GetObjectAttributes reads the same facts from the manifest, parts paged.
    let attrs = |key: &'static str, marker: Option<i32>| {
        s3.get_object_attributes()
            .bucket("copies")
            .key(key)
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::StorageClass)
            .max_parts(1)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let a = attrs("dst", None).await.unwrap();
    assert_eq!(
        a.e_tag().map(|e| e.trim_matches('"')),
        done.e_tag().map(|e| e.trim_matches('"'))
    );
    assert_eq!(a.object_size(), Some((r.len() + tail.len()) as i64));
    assert_eq!(a.storage_class(), Some(&StorageClass::Standard));
    let sum = a.checksum().unwrap();
    assert_eq!(sum.checksum_crc32(), done.checksum_crc32());
    assert_eq!(sum.checksum_type(), Some(&ChecksumType::Composite));
    let parts = a.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(2));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(parts.parts()[0].size(), Some(r.len() as i64));
    let next = parts.next_part_number_marker().unwrap().parse().unwrap();
    let a = attrs("dst", Some(next)).await.unwrap();
    let parts = a.object_parts().unwrap();
    assert_eq!(parts.is_truncated(), Some(false));
    assert_eq!(
        (parts.parts()[0].part_number(), parts.parts()[0].size()),
        (Some(2), Some(tail.len() as i64))
    );
    // A single-part object has no parts to list; a missing key is NoSuchKey.
    let a = attrs("src", None).await.unwrap();
    assert!(a.object_parts().is_none());
    assert_eq!(a.object_size(), Some(src.len() as i64));
    let e = attrs("nope", None).await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));

    // A conditional Complete onto an existing key fails with 412 and keeps the upload.
    let id2 = create(&s3, "copies", "dst").await;
    let e2 = part(&s3, "copies", "dst", &id2, 1, body(10, 1)).await;
    let e = s3
        .complete_multipart_upload()
        .bucket("copies")
        .key("dst")
        .upload_id(&id2)
        .if_none_match("*")
        .multipart_upload(completed(&[(1, e2)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    let parts = s3
        .list_parts()
        .bucket("copies")
        .key("dst")
        .upload_id(&id2)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 1);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_upload_part_and_complete_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let node = common::start_in(dir.path(), any).await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("restart").send().await.unwrap();
    let id = create(&s3, "restart", "obj").await;
    let (d1, d2) = (body(5 * MIB + 5, 1), body(12345, 2));
    let e1 = part(&s3, "restart", "obj", &id, 1, d1.clone()).await;
    let e2 = part(&s3, "restart", "obj", &id, 2, d2.clone()).await;
    node.stop().await.unwrap();

    let node = common::start_in(dir.path(), any).await;
    let s3 = client(node.addr());
    let listed = s3
        .list_multipart_uploads()
        .bucket("restart")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.uploads()[0].upload_id(), Some(id.as_str()));
    let done = s3
        .complete_multipart_upload()
        .bucket("restart")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, e1), (2, e2)]))
        .send()
        .await
        .unwrap();
    let md5s = [
        md5::Md5::digest(&d1).to_vec(),
        md5::Md5::digest(&d2).to_vec(),
    ];
    assert_eq!(done.e_tag(), Some(multipart_etag(&md5s).as_str()));
    let got = s3
        .get_object()
        .bucket("restart")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(read_all(got).await, [d1, d2].concat());
    node.stop().await.unwrap();
}
