//! Clients that send slowly or not at all are cut off by the listener's timeouts, and
//! while they hang on, everyone else is served: request heads dribbled a byte at a
//! time (header read timeout), bodies dribbled just inside the per-piece timeout
//! (the minimum body rate), bodies that stall (body read timeout: 400 RequestTimeout,
//! nothing stored, connection closed), and idle keep-alive connections.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sigv4::http_request::SignableBody;
use common::{SECRET_KEY, client, settings, start_with};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The limits under test, short so the test runs in seconds.
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
const BODY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long any one slow client may take to be cut: generous, for a loaded CI box.
const CUT_WITHIN: Duration = Duration::from_secs(60);

async fn node() -> (ingot_engine::node::Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.header_read_timeout = HEAD_TIMEOUT;
    s.limits.body_read_timeout = BODY_TIMEOUT;
    (start_with(s).await, dir)
}

/// The head of a signed PUT of `len` bytes to `/bucket/key` with an unsigned payload.
fn put_head(addr: SocketAddr, bucket: &str, key: &str, len: usize) -> Vec<u8> {
    let host = addr.to_string();
    let path = format!("/{bucket}/{key}");
    let len = len.to_string();
    let hs = raw::signed_headers(
        "PUT",
        &format!("http://{host}{path}"),
        &[("host", &host), ("content-length", &len)],
        SignableBody::UnsignedPayload,
        SECRET_KEY,
    );
    raw::head("PUT", &path, &hs)
}

/// Sends `preface`, then one byte of `drip` every `every`, until the server closes the
/// connection; returns everything the server sent. Gives up after [`CUT_WITHIN`].
async fn drip(addr: SocketAddr, preface: Vec<u8>, drip: u8, every: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&preface).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let cut = tokio::time::timeout(CUT_WITHIN, async {
        loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(every) => {
                    if s.write_all(&[drip]).await.is_err() {
                        // Closed under us: collect what was answered.
                        while let Ok(n @ 1..) = s.read(&mut buf).await {
                            got.extend_from_slice(&buf[..n]);
                        }
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a slow client was never cut off");
    got
}

/// A metric's value from `/metrics` (0 when absent).
async fn metric(addr: SocketAddr, line_prefix: &str) -> u64 {
    let text = tokio::task::spawn_blocking(move || {
        raw::roundtrip(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").body
    })
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_slow_loris_connections_leave_normal_clients_served() {
    let (node, _dir) = node().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("loris").send().await.unwrap();

    // 50 connections dribble a request head, 50 a PUT body (a byte every 200 ms: each
    // piece well inside the body read timeout, the average far below the minimum rate).
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..50 {
        let line = format!("GET /loris/{i} HTTP/1.1\r\nx-slow: ").into_bytes();
        slow.spawn(drip(addr, line, b'z', Duration::from_millis(200)));
        let head = put_head(addr, "loris", &format!("slow-{i}"), 1 << 20);
        slow.spawn(drip(addr, head, b'b', Duration::from_millis(200)));
    }
    // Bounded poll: all of them (and this probe) are connected and being held.
    let deadline = tokio::time::Instant::now() + CUT_WITHIN;
    while metric(addr, "ingot_connections_open ").await < 101 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow clients never connected"
        );
        tokio::task::yield_now().await;
    }

    // A normal client is served meanwhile.
    let data = common::body(1 << 20, 7);
    s3.put_object()
        .bucket("loris")
        .key("normal")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("loris").key("normal").send().await;
    assert!(common::read_all(got.unwrap()).await == data);

    // Every slow client is cut: dribbled heads without an answer, dribbled bodies with
    // S3's RequestTimeout.
    let mut answered = 0;
    while let Some(got) = slow.join_next().await {
        let text = String::from_utf8_lossy(&got.unwrap()).into_owned();
        if !text.is_empty() {
            assert!(text.starts_with("HTTP/1.1 400"), "{text}");
            assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
            answered += 1;
        }
    }
    assert_eq!(
        answered, 50,
        "each dribbled body is answered RequestTimeout"
    );
    let cut = |r: &str| format!("ingot_connections_cut_total{{reason=\"{r}\"}} ");
    assert!(metric(addr, &cut("head_timeout")).await >= 50);
    assert_eq!(metric(addr, &cut("body_timeout")).await, 50);
    // No dribbled body left an object behind.
    let listed = s3.list_objects_v2().bucket("loris").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["normal"]);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_put_body_fails_with_request_timeout_and_stores_nothing() {
    let (node, _dir) = node().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("stall").send().await.unwrap();

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&put_head(addr, "stall", "k", 1000))
        .await
        .unwrap();
    s.write_all(&[b'x'; 10]).await.unwrap();
    // Then nothing: the node answers, and closes the connection (bounded read).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CUT_WITHIN, s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the stalled connection was never closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");

    let head = s3.head_object().bucket("stall").key("k").send().await;
    assert_eq!(
        common::status(&head.unwrap_err()),
        404,
        "nothing was stored"
    );
    // The shard is not held: the same key takes a normal PUT at once.
    s3.put_object()
        .bucket("stall")
        .key("k")
        .body(b"whole".to_vec().into())
        .send()
        .await
        .unwrap();
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    // hyper 1.x restarts its header read timer whenever a connection is ready for its
    // next request, so the idle wait between requests is bounded by it too.
    let (node, _dir) = node().await;
    let addr = node.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CUT_WITHIN, s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the idle connection was never closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("connection: close"));
    let cut = "ingot_connections_cut_total{reason=\"head_timeout\"} ";
    assert_eq!(metric(addr, cut).await, 1);
    node.stop().await.unwrap();
}
