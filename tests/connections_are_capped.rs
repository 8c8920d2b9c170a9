//! The listener's caps: past `max_connections` open connections a new one is answered
//! 503 SlowDown and closed until a slot frees, and a keep-alive connection carries at
//! most `max_requests_per_connection` requests, the last answered `Connection: close`.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{settings, start_with};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

async fn node(
    tune: impl FnOnce(&mut ingot_engine::config::Settings),
) -> (ingot_engine::node::Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    // Idle connections must outlive the test's steps.
    s.header_read_timeout = Duration::from_secs(60);
    tune(&mut s);
    (start_with(s).await, dir)
}

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n";

/// `/health/live` on a fresh connection the server is expected to close: the answer,
/// and whether it did close.
fn refused_once(addr: SocketAddr) -> (raw::Answer, bool) {
    let mut s = raw::connect(addr);
    let _ = s.write_all(LIVE);
    let answer = raw::read_answer(&mut s);
    let closed = matches!(s.read(&mut [0u8; 64]), Ok(0) | Err(_));
    (answer, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_clients_get_slow_down_until_a_slot_frees() {
    let (node, _dir) = node(|s| s.limits.max_connections = 4).await;
    let addr = node.addr();
    let (refused, refused_closed, served) = tokio::task::spawn_blocking(move || {
        // Four idle connections take every slot (accepted in the order they connected).
        let mut idle: Vec<_> = (0..4).map(|_| raw::connect(addr)).collect();
        let (refused, refused_closed) = refused_once(addr);
        // One leaves; its slot is free again once the node has seen it go.
        drop(idle.pop());
        let deadline = Instant::now() + Duration::from_secs(30);
        let served = loop {
            let a = raw::roundtrip(addr, LIVE);
            if a.status == 200 || Instant::now() > deadline {
                break a;
            }
        };
        drop(idle);
        (refused, refused_closed, served)
    })
    .await
    .unwrap();
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(
        refused.body.contains("<Code>SlowDown</Code>"),
        "{}",
        refused.body
    );
    assert!(refused_closed, "a refused connection is closed");
    assert_eq!(served.status, 200, "a freed slot serves again");

    let metrics = raw::roundtrip(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").body;
    let refusals = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ingot_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refusals >= Some(1), "{metrics}");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_cap_closes_a_connection_after_its_last_request() {
    let (node, _dir) = node(|s| s.limits.max_requests_per_connection = 3).await;
    let addr = node.addr();
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = raw::connect(addr);
        let answers: Vec<_> = (0..3)
            .map(|_| {
                s.write_all(LIVE).unwrap();
                raw::read_answer(&mut s)
            })
            .collect();
        let closed = matches!(s.read(&mut [0u8; 64]), Ok(0) | Err(_));
        assert!(closed, "the connection closes after its third request");
        answers
    })
    .await
    .unwrap();
    let closes = |a: &raw::Answer| a.head.to_ascii_lowercase().contains("connection: close");
    assert!(answers.iter().all(|a| a.status == 200));
    assert!(!closes(&answers[0]) && !closes(&answers[1]));
    assert!(closes(&answers[2]), "{}", answers[2].head);
    node.stop().await.unwrap();
}
