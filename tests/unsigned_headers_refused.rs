//! Every `x-amz-*` header a request carries must be signed, as AWS requires: a signed
//! PUT with an unsigned `x-amz-copy-source` added is refused (AWS's 403 with
//! `<HeadersNotSigned>`), not turned into a copy. What real clients send still passes.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sdk_s3::types::ChecksumMode;
use aws_sigv4::http_request::SignableBody;
use common::{SECRET_KEY, client, read_all, start};
use raw::{head, roundtrip};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_copy_source_is_refused_and_copies_nothing() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("hdr").send().await.unwrap();
    s3.put_object()
        .bucket("hdr")
        .key("src")
        .body(b"secret".to_vec().into())
        .send()
        .await
        .unwrap();
    let host = addr.to_string();
    let (header_signed, presigned, signed_copy) = tokio::task::spawn_blocking(move || {
        // A PUT signed for its own body; the copy source added after signing.
        let put = |key: &str, sign_copy: bool| {
            let url = format!("http://{host}/hdr/{key}");
            let mut signed = vec![("host", host.as_str()), ("content-length", "3")];
            if sign_copy {
                signed.push(("x-amz-copy-source", "/hdr/src"));
            }
            let mut hs = raw::signed_headers(
                "PUT",
                &url,
                &signed,
                SignableBody::Bytes(b"new"),
                SECRET_KEY,
            );
            if !sign_copy {
                hs.push(("x-amz-copy-source".into(), "/hdr/src".into()));
            }
            hs.push(("connection".into(), "close".into()));
            let mut req = head("PUT", &format!("/hdr/{key}"), &hs);
            req.extend_from_slice(b"new");
            roundtrip(addr, &req)
        };
        let url = format!("http://{host}/hdr/pre");
        let q = raw::presigned("PUT", &url, &[], Duration::from_secs(300), SECRET_KEY);
        let presigned = roundtrip(
            addr,
            format!(
                "PUT /hdr/pre?{q} HTTP/1.1\r\nhost: {host}\r\nx-amz-copy-source: /hdr/src\r\n\
                 content-length: 3\r\nconnection: close\r\n\r\nnew"
            )
            .as_bytes(),
        );
        (put("dst", false), presigned, put("copy", true))
    })
    .await
    .unwrap();
    for (form, a) in [("header", &header_signed), ("presigned", &presigned)] {
        assert_eq!(a.status, 403, "{form}: {}", a.body);
        assert!(
            a.body.contains("<Code>AccessDenied</Code>"),
            "{form}: {}",
            a.body
        );
        assert!(
            a.body
                .contains("There were headers present in the request which were not signed"),
            "{form}: {}",
            a.body
        );
        assert!(
            a.body
                .contains("<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>"),
            "{form}: {}",
            a.body
        );
    }
    // Signed, the same header copies: the refused requests would have.
    assert_eq!(signed_copy.status, 200, "{}", signed_copy.body);
    let copied = read_all(
        s3.get_object()
            .bucket("hdr")
            .key("copy")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(copied, b"secret");
    let listed = s3.list_objects_v2().bucket("hdr").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["copy", "src"]);
    node.stop().await.unwrap();
}

/// aws-sdk-rust's presigned requests, sent with the headers it says to send, pass:
/// metadata and content type signed, `x-amz-checksum-mode` left unsigned by its signer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_presigned_requests_with_their_headers_pass() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("sdk").send().await.unwrap();
    let cfg =
        aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let put = s3
        .put_object()
        .bucket("sdk")
        .key("p")
        .content_type("text/plain")
        .metadata("origin", "presigned")
        .presigned(cfg.clone())
        .await
        .unwrap();
    let get = s3
        .get_object()
        .bucket("sdk")
        .key("p")
        .checksum_mode(ChecksumMode::Enabled)
        .presigned(cfg)
        .await
        .unwrap();
    let request = |req: &aws_sdk_s3::presigning::PresignedRequest, body: &str| {
        let target = req
            .uri()
            .split_once(&addr.to_string())
            .unwrap()
            .1
            .to_owned();
        let mut hs: Vec<(String, String)> = req
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if !hs.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            hs.push(("host".into(), addr.to_string()));
        }
        hs.push(("content-length".into(), body.len().to_string()));
        hs.push(("connection".into(), "close".into()));
        let mut bytes = head(req.method(), &target, &hs);
        bytes.extend_from_slice(body.as_bytes());
        bytes
    };
    let (put_req, get_req) = (request(&put, "hello"), request(&get, ""));
    let (put_answer, get_answer) =
        tokio::task::spawn_blocking(move || (roundtrip(addr, &put_req), roundtrip(addr, &get_req)))
            .await
            .unwrap();
    let shown = |r: &aws_sdk_s3::presigning::PresignedRequest| {
        format!("{:?}", r.headers().collect::<Vec<_>>())
    };
    assert_eq!(
        put_answer.status,
        200,
        "{}: {}",
        shown(&put),
        put_answer.body
    );
    assert_eq!(
        get_answer.status,
        200,
        "{}: {}",
        shown(&get),
        get_answer.body
    );
    assert_eq!(get_answer.body, "hello");
    let meta = s3
        .head_object()
        .bucket("sdk")
        .key("p")
        .send()
        .await
        .unwrap();
    assert_eq!(
        meta.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("presigned")
    );
    node.stop().await.unwrap();
}
