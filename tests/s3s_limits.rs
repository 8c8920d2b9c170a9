//! The limits set on s3s (`frontend/src/s3s_limits.rs`), seen from a client: XML
//! bodies up to 8 MiB (the largest legitimate ones fit), a 15-minute clock skew, keys
//! taken as written. The form limits are tested in that module: form POSTs never reach
//! s3s through the server.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sigv4::http_request::SignableBody;
use common::{SECRET_KEY, client, code, start};
use frontend::s3s_limits::XML_MAX_BODY_BYTES;
use raw::{head, roundtrip};
use std::io::Write;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_bodies_are_limited_above_the_largest_legitimate_ones() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("xml").send().await.unwrap();

    // One byte over the limit: refused before it is read.
    let answer = tokio::task::spawn_blocking(move || {
        let host = addr.to_string();
        let len = (XML_MAX_BODY_BYTES + 1).to_string();
        let hs = raw::signed_headers(
            "POST",
            &format!("http://{host}/xml?delete"),
            &[("host", host.as_str()), ("content-length", len.as_str())],
            SignableBody::UnsignedPayload,
            SECRET_KEY,
        );
        // The answer comes from the declared length; the body is never sent.
        let mut s = raw::connect(addr);
        s.write_all(&head("POST", "/xml?delete", &hs)).unwrap();
        raw::read_answer(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("<Code>MaxMessageLengthExceeded</Code>"),
        "{}",
        answer.body
    );

    // CompleteMultipartUpload naming 10,000 parts with checksums is read whole (the
    // upload does not exist, which is the answer).
    let parts: Vec<_> = (1..=10_000)
        .map(|n| {
            CompletedPart::builder()
                .part_number(n)
                .e_tag(format!("\"{:032x}\"", n))
                .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
                .build()
        })
        .collect();
    let err = s3
        .complete_multipart_upload()
        .bucket("xml")
        .key("k")
        .upload_id("no-such-upload")
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");

    // DeleteObjects with 1,000 keys of 1,024 characters that XML-escape five-fold.
    let ids: Vec<_> = (0..1000)
        .map(|i| {
            let key = format!("{i:04}{}", "&".repeat(1020));
            ObjectIdentifier::builder().key(key).build().unwrap()
        })
        .collect();
    let deleted = s3
        .delete_objects()
        .bucket("xml")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 1000);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_more_than_15_minutes_away_are_refused() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    client(addr)
        .create_bucket()
        .bucket("skew")
        .send()
        .await
        .unwrap();
    let (stale, recent) = tokio::task::spawn_blocking(move || {
        let host = addr.to_string();
        let list = |age: Duration| {
            let mut hs = raw::signed_headers_at(
                SystemTime::now() - age,
                "GET",
                &format!("http://{host}/skew"),
                &[("host", host.as_str())],
                SignableBody::Bytes(b""),
                SECRET_KEY,
            );
            hs.push(("connection".into(), "close".into()));
            roundtrip(addr, &head("GET", "/skew", &hs))
        };
        (
            list(Duration::from_secs(16 * 60)),
            list(Duration::from_secs(14 * 60)),
        )
    })
    .await
    .unwrap();
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(
        stale.body.contains("<Code>RequestTimeTooSkewed</Code>"),
        "{}",
        stale.body
    );
    assert_eq!(recent.status, 200, "{}", recent.body);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_taken_as_written() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("slashes").send().await.unwrap();
    for key in ["a//b", "a/b"] {
        s3.put_object()
            .bucket("slashes")
            .key(key)
            .body(key.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let listed = s3.list_objects_v2().bucket("slashes").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a//b", "a/b"]);
    node.stop().await.unwrap();
}
