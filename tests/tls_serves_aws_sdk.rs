//! HTTPS on the S3 listener: aws-sdk-s3 trusting a test CA stores, reads and lists
//! objects; health and metrics answer on the same TLS listener (ALPN http/1.1); plain
//! HTTP there gets no HTTP answer; a handshake that never finishes is cut off; an
//! upload as botocore sends it over HTTPS (aws-chunked in `Transfer-Encoding: chunked`,
//! no `Content-Length`) is stored; and a wrong certificate setup stops the start with
//! the file named.

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/tls.rs"]
mod tls;

use aws_sigv4::http_request::SignableBody;
use common::{settings, start_with};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tls_node(
    certs: &std::path::Path,
    tune: impl FnOnce(&mut ingot_engine::config::Settings),
) -> (ingot_engine::node::Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.tls = Some(tls::pair_in(certs, "a"));
    tune(&mut s);
    (start_with(s).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_s3_puts_gets_and_lists_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let (node, _dir) = tls_node(certs.path(), |_| {}).await;
    assert_eq!(node.scheme(), "https");
    let addr = node.addr();
    let s3 = tls::s3_client(addr);
    s3.create_bucket().bucket("secure").send().await.unwrap();
    let data = common::body(300 << 10, 11);
    s3.put_object()
        .bucket("secure")
        .key("k")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("secure").key("k").send().await;
    assert!(common::read_all(got.unwrap()).await == data);
    let listed = s3.list_objects_v2().bucket("secure").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["k"]);

    // Health and metrics on the same listener, over TLS, HTTP/1.1 by ALPN.
    let mut c = tls::connect(addr).await.unwrap();
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls::peer_cert(&c), tls::server_cert("a"));
    assert_eq!(tls::get(&mut c, "/health/ready").await.unwrap().0, 200);
    let (status, metrics) = tls::get(&mut c, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("ingot_connections_open "), "{metrics}");

    // Plain HTTP on the HTTPS port is not answered in HTTP.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut answer));
    let _ = read.await.expect("the node closes a plain-HTTP connection");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_cut_off() {
    let certs = tempfile::tempdir().unwrap();
    let (node, _dir) = tls_node(certs.path(), |s| {
        s.limits.tls_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = node.addr();
    // Connects and says nothing: closed after the handshake timeout (bounded wait).
    let mut mute = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), mute.read_to_end(&mut buf));
    assert!(read.await.is_ok(), "a mute client was never cut off");
    let mut c = tls::connect(addr).await.unwrap();
    let (_, metrics) = tls::get(&mut c, "/metrics").await.unwrap();
    assert!(
        metrics.contains("ingot_connections_cut_total{reason=\"tls_handshake_timeout\"} 1"),
        "{metrics}"
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_chunked_upload_without_content_length_is_stored() {
    // What botocore (aws cli, boto3) sends over HTTPS: an aws-chunked body with an
    // unsigned checksum trailer, in `Transfer-Encoding: chunked`, and no
    // `Content-Length`; the declared length is `x-amz-decoded-content-length`.
    let certs = tempfile::tempdir().unwrap();
    let (node, _dir) = tls_node(certs.path(), |_| {}).await;
    let addr = node.addr();
    let s3 = tls::s3_client(addr);
    s3.create_bucket().bucket("boto").send().await.unwrap();
    let data = b"hello over https, chunked";
    let host = addr.to_string();
    let decoded = data.len().to_string();
    let hs = raw::signed_headers(
        "PUT",
        &format!("https://{host}/boto/k"),
        &[
            ("host", host.as_str()),
            ("transfer-encoding", "chunked"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ],
        SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
        common::SECRET_KEY,
    );
    let mut aws_chunked = format!("{:x}\r\n", data.len()).into_bytes();
    aws_chunked.extend_from_slice(data);
    // CRC32 of `data`, base64.
    aws_chunked.extend_from_slice(b"\r\n0\r\nx-amz-checksum-crc32:7ResSw==\r\n\r\n");
    let mut req = raw::head("PUT", "/boto/k", &hs);
    req.extend_from_slice(format!("{:x}\r\n", aws_chunked.len()).as_bytes());
    req.extend_from_slice(&aws_chunked);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut c = tls::connect(addr).await.unwrap();
    let (status, body) = tls::roundtrip(&mut c, &req).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let got = s3.get_object().bucket("boto").key("k").send().await;
    assert_eq!(common::read_all(got.unwrap()).await, data);
    node.stop().await.unwrap();
}

/// Runs the binary with `args` (plus a fresh data dir and port) until it exits: its
/// exit code and what it wrote to stderr.
fn start_fails(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--cores", "1"])
        .args(args)
        .env_remove("INGOT_TLS_CERT")
        .env_remove("INGOT_TLS_KEY")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_certificate_setup_stops_the_start_naming_the_file() {
    let certs = tempfile::tempdir().unwrap();
    let files = tls::pair_in(certs.path(), "a");
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());

    let (code, err) = start_fails(&["--tls-cert", cert]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("without tls_key"), "{err}");
    let (code, err) = start_fails(&["--tls-key", key]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("without tls_cert"), "{err}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = start_fails(&["--tls-cert", cert, "--tls-key", key]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(key) && err.contains("readable by other users"),
        "{err}"
    );

    let files = tls::pair_in(certs.path(), "a");
    std::fs::write(&files.cert, "not a certificate\n").unwrap();
    let (code, err) = start_fails(&["--tls-cert", cert, "--tls-key", key]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(cert), "{err}");
}
