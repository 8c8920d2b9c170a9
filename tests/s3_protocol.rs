//! The protocol edges: signatures (wrong, unknown key, anonymous, presigned), bad
//! input (malformed XML, short bodies, oversized bodies and headers, a body that does
//! not match its signed hash), slow clients, `Expect: 100-continue`, virtual hosts,
//! unsupported operations, health and metrics. None of the refusals changes state.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::SignableBody;
use common::{SECRET_KEY, client, client_with, code, keys, start, status};
use raw::{connect, head, presigned_query, read_answer, roundtrip, signed_headers};
use std::io::{Read, Write};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("sig").send().await.unwrap();
    let wrong = client_with(addr, common::ACCESS_KEY, "not-the-secret");
    let e = wrong
        .put_object()
        .bucket("sig")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("SignatureDoesNotMatch", 403)
    );
    let unknown = client_with(addr, "AKIDUNKNOWN000000000", SECRET_KEY);
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidAccessKeyId", 403));
    let anon = tokio::task::spawn_blocking(move || {
        roundtrip(
            addr,
            b"GET /sig HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(anon.status, 403);
    assert!(
        anon.body.contains("<Code>AccessDenied</Code>"),
        "{}",
        anon.body
    );
    // The body names the same request id as the header, and has a message.
    let id = anon
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amz-request-id:")
                .map(|v| v.trim().to_ascii_uppercase())
        })
        .expect("x-amz-request-id header");
    assert!(
        anon.body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{}",
        anon.body
    );
    assert!(anon.body.contains("<Message>"), "{}", anon.body);
    // s3s raises SignatureDoesNotMatch without a message; the answer has AWS's.
    let e = wrong.list_buckets().send().await.unwrap_err();
    let meta = aws_sdk_s3::error::ProvideErrorMetadata::meta(&e);
    assert!(
        meta.message().is_some_and(|m| m.contains("signature")),
        "{meta:?}"
    );
    assert!(keys(&s3, "sig").await.is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_put_and_get() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("pre").send().await.unwrap();
    let cfg = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let put = s3
        .put_object()
        .bucket("pre")
        .key("p.txt")
        .presigned(cfg.clone())
        .await
        .unwrap();
    let get = s3
        .get_object()
        .bucket("pre")
        .key("p.txt")
        .presigned(cfg)
        .await
        .unwrap();
    let path = |u: &str| u.split_once(&addr.to_string()).unwrap().1.to_owned();
    let (put_path, get_path) = (path(put.uri()), path(get.uri()));
    let host = addr.to_string();
    let answers = tokio::task::spawn_blocking(move || {
        let mut req =
            format!("PUT {put_path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\n\r\nhello")
                .into_bytes();
        let put = roundtrip(addr, &req);
        req = format!("GET {get_path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
            .into_bytes();
        let get = roundtrip(addr, &req);
        // A tampered presigned URL is refused.
        let at = get_path.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
        let flipped = if &get_path[at..=at] == "0" { "1" } else { "0" };
        let bad = format!("{}{flipped}{}", &get_path[..at], &get_path[at + 1..]);
        let tampered = roundtrip(
            addr,
            format!("GET {bad} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        (put, get, tampered)
    })
    .await
    .unwrap();
    assert_eq!(answers.0.status, 200, "{}", answers.0.body);
    assert_eq!((answers.1.status, answers.1.body.as_str()), (200, "hello"));
    assert_eq!(answers.2.status, 403);

    // Longer than a week is refused even when correctly signed; a week is served.
    let url = format!("http://{addr}/pre/p.txt");
    let week = Duration::from_secs(7 * 24 * 3600);
    let answers = tokio::task::spawn_blocking(move || {
        let get = |expires| {
            let q = presigned_query(&url, expires, SECRET_KEY);
            roundtrip(
                addr,
                format!("GET /pre/p.txt?{q} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
        };
        (get(week), get(week + Duration::from_secs(1)))
    })
    .await
    .unwrap();
    assert_eq!((answers.0.status, answers.0.body.as_str()), (200, "hello"));
    assert_eq!(answers.1.status, 400);
    assert!(
        answers.1.body.contains("AuthorizationQueryParametersError"),
        "{}",
        answers.1.body
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_and_short_or_mismatched_bodies_change_nothing() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("bad").send().await.unwrap();
    s3.put_object()
        .bucket("bad")
        .key("keep")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let host = addr.to_string();
    let (xml, short, mismatch, huge) = tokio::task::spawn_blocking(move || {
        // DeleteObjects with XML that does not parse.
        let body = b"<Delete><Object><Key>keep</Key></Object>";
        let url = format!("http://{host}/bad?delete");
        let md5 = base64_md5(body);
        let len = body.len().to_string();
        let hs = signed_headers(
            "POST",
            &url,
            &[
                ("host", &host),
                ("content-md5", &md5),
                ("content-length", &len),
            ],
            SignableBody::Bytes(body),
            SECRET_KEY,
        );
        let mut req = head("POST", "/bad?delete", &hs);
        req.extend_from_slice(body);
        let xml = roundtrip(addr, &req);

        // A body shorter than its Content-Length, then the client stops sending.
        let url = format!("http://{host}/bad/short");
        let hs = signed_headers(
            "PUT",
            &url,
            &[("host", &host), ("content-length", "1000")],
            SignableBody::UnsignedPayload,
            SECRET_KEY,
        );
        let mut s = connect(addr);
        s.write_all(&head("PUT", "/bad/short", &hs)).unwrap();
        s.write_all(&[7u8; 500]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let short = read_answer(&mut s);

        // A body that is not the one whose SHA-256 was signed.
        let url = format!("http://{host}/bad/mismatch");
        let hs = signed_headers(
            "PUT",
            &url,
            &[("host", &host), ("content-length", "5")],
            SignableBody::Bytes(b"hello"),
            SECRET_KEY,
        );
        let mut req = head("PUT", "/bad/mismatch", &hs);
        req.extend_from_slice(b"HELLO");
        let mismatch = roundtrip(addr, &req);

        // More than 5 GiB declared: refused before any body byte is read.
        let url = format!("http://{host}/bad/huge");
        let big = (6u64 << 30).to_string();
        let hs = signed_headers(
            "PUT",
            &url,
            &[("host", &host), ("content-length", &big)],
            SignableBody::UnsignedPayload,
            SECRET_KEY,
        );
        let huge = roundtrip(addr, &head("PUT", "/bad/huge", &hs));
        (xml, short, mismatch, huge)
    })
    .await
    .unwrap();
    assert_eq!(xml.status, 400, "{}", xml.body);
    assert!(
        xml.body.contains("<Code>MalformedXML</Code>"),
        "{}",
        xml.body
    );
    assert_eq!(short.status, 400, "{}", short.body);
    assert!(short.body.contains("IncompleteBody"), "{}", short.body);
    assert_eq!(mismatch.status, 400, "{}", mismatch.body);
    assert!(
        mismatch.body.contains("XAmzContentSHA256Mismatch"),
        "{}",
        mismatch.body
    );
    assert_eq!(huge.status, 400, "{}", huge.body);
    assert!(huge.body.contains("EntityTooLarge"), "{}", huge.body);
    assert_eq!(keys(&s3, "bad").await, ["keep"]);
    node.stop().await.unwrap();
}

fn base64_md5(b: &[u8]) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(b);
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in d.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_slow_headers_and_header_limits() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("conn").send().await.unwrap();
    let host = addr.to_string();
    let (cont, after, slow_closed, big) = tokio::task::spawn_blocking(move || {
        let url = format!("http://{host}/conn/ex");
        let hs = signed_headers(
            "PUT",
            &url,
            &[
                ("host", &host),
                ("content-length", "4"),
                ("expect", "100-continue"),
            ],
            SignableBody::Bytes(b"body"),
            SECRET_KEY,
        );
        let mut s = connect(addr);
        s.write_all(&head("PUT", "/conn/ex", &hs)).unwrap();
        let cont = read_answer(&mut s); // the interim 100 Continue
        s.write_all(b"body").unwrap();
        let after = read_answer(&mut s);
        assert!(
            !after
                .head
                .to_ascii_lowercase()
                .contains("connection: close")
        );

        // An empty body gets no 100 Continue; the connection closes after the answer,
        // so a client that mistakes the answer for an early one starts afresh.
        let url = format!("http://{host}/conn/empty");
        let hs = signed_headers(
            "PUT",
            &url,
            &[
                ("host", &host),
                ("content-length", "0"),
                ("expect", "100-continue"),
            ],
            SignableBody::Bytes(b""),
            SECRET_KEY,
        );
        let mut e = connect(addr);
        e.write_all(&head("PUT", "/conn/empty", &hs)).unwrap();
        let empty = read_answer(&mut e);
        assert_eq!(empty.status, 200, "{}", empty.head);
        assert!(
            empty
                .head
                .to_ascii_lowercase()
                .contains("connection: close"),
            "{}",
            empty.head
        );
        let mut rest = [0u8; 16];
        assert!(matches!(e.read(&mut rest), Ok(0)), "the server closes");

        // A client that never finishes its headers is cut off (2 s in tests).
        let mut slow = connect(addr);
        slow.write_all(b"GET /conn HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let closed = matches!(slow.read(&mut buf), Ok(_) | Err(_));

        // A request head over the limit is refused.
        let filler = "a".repeat(100 << 10);
        let big = roundtrip(
            addr,
            format!("GET /conn HTTP/1.1\r\nhost: x\r\nx-filler: {filler}\r\n\r\n").as_bytes(),
        );
        (cont, after, closed, big)
    })
    .await
    .unwrap();
    assert_eq!(cont.status, 100, "{}", cont.head);
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(slow_closed);
    assert!(
        big.status == 431 || big.status == 0,
        "oversized head: {}",
        big.head
    );
    let got = common::read_all(
        s3.get_object()
            .bucket("conn")
            .key("ex")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, b"body");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_addressing_with_a_domain() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.domain = Some("s3.ingot.test".into());
    let node = common::start_with(s).await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    s3.put_object()
        .bucket("vhost")
        .key("k.txt")
        .body(b"virtual".to_vec().into())
        .send()
        .await
        .unwrap();
    let port = addr.port();
    let got = tokio::task::spawn_blocking(move || {
        let host = format!("vhost.s3.ingot.test:{port}");
        let url = format!("http://{host}/k.txt");
        let hs = signed_headers(
            "GET",
            &url,
            &[("host", &host), ("connection", "close")],
            SignableBody::Bytes(b""),
            SECRET_KEY,
        );
        roundtrip(addr, &head("GET", "/k.txt", &hs))
    })
    .await
    .unwrap();
    assert_eq!((got.status, got.body.as_str()), (200, "virtual"));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_answer_not_implemented() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("nimpl").send().await.unwrap();
    // Settings that could not be honoured are refused, not accepted and ignored.
    let tags = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("a")
                .value("b")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = s3
        .put_bucket_tagging()
        .bucket("nimpl")
        .tagging(tags)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NotImplemented", 501));
    let e = s3
        .put_bucket_policy()
        .bucket("nimpl")
        .policy("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 501);
    let e = s3
        .get_bucket_tagging()
        .bucket("nimpl")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchTagSet", 404));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_without_credentials() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("met").send().await.unwrap();
    s3.put_object()
        .bucket("met")
        .key("k")
        .body(b"12345".to_vec().into())
        .send()
        .await
        .unwrap();
    let _ = s3.get_object().bucket("met").key("missing").send().await;
    let (live, ready, metrics) = tokio::task::spawn_blocking(move || {
        let get = |p: &str| {
            roundtrip(
                addr,
                format!("GET {p} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
        };
        (get("/health/live"), get("/health/ready"), get("/metrics"))
    })
    .await
    .unwrap();
    assert_eq!((live.status, ready.status), (200, 200));
    assert_eq!(metrics.status, 200);
    let m = metrics.body;
    assert!(
        m.contains("ingot_requests_total{op=\"PutObject\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("ingot_requests_total{op=\"GetObject\",status=\"404\"} 1"),
        "{m}"
    );
    assert!(m.contains("ingot_commit_batches_total{shard="), "{m}");
    assert!(
        m.contains("ingot_catalog_fsync_seconds_count{shard="),
        "{m}"
    );
    assert!(
        m.contains("ingot_segments{plane=\"data\",state=\"open\"}"),
        "{m}"
    );
    assert!(m.contains("ingot_bytes_in_total 5"), "{m}");
    node.stop().await.unwrap();
}

/// A PUT whose aws-chunked body has signed chunks; chunk signatures are verified.
fn chunked_put(
    addr: std::net::SocketAddr,
    key: &str,
    data: &[u8],
    corrupt: Option<usize>,
) -> raw::Answer {
    let host = addr.to_string();
    let time = std::time::SystemTime::now();
    let url = format!("http://{host}/chunks/{key}");
    let body_len = raw::signed_chunks(time, &"0".repeat(64), SECRET_KEY, data, 64 << 10, None)
        .len()
        .to_string();
    let decoded = data.len().to_string();
    let hs = raw::signed_headers_at(
        time,
        "PUT",
        &url,
        &[
            ("host", host.as_str()),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("content-length", body_len.as_str()),
            ("connection", "close"),
        ],
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
        SECRET_KEY,
    );
    let auth = hs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .unwrap();
    let seed = auth.1.rsplit("Signature=").next().unwrap().to_owned();
    let mut req = head("PUT", &format!("/chunks/{key}"), &hs);
    req.extend_from_slice(&raw::signed_chunks(
        time,
        &seed,
        SECRET_KEY,
        data,
        64 << 10,
        corrupt,
    ));
    roundtrip(addr, &req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_chunked_signed_chunks_are_verified() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("chunks").send().await.unwrap();
    let data = common::body(200_000, 11);
    let d = data.clone();
    let (good, bad) = tokio::task::spawn_blocking(move || {
        (
            chunked_put(addr, "good", &d, None),
            chunked_put(addr, "bad", &d, Some(1)),
        )
    })
    .await
    .unwrap();
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(bad.status, 403, "{}", bad.body);
    assert!(bad.body.contains("SignatureDoesNotMatch"), "{}", bad.body);
    let got = common::read_all(
        s3.get_object()
            .bucket("chunks")
            .key("good")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(got == data);
    assert_eq!(keys(&s3, "chunks").await, ["good"]);
    node.stop().await.unwrap();
}
