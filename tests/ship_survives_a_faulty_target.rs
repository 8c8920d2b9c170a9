//! Shipping through a proxy that answers 500, drops connections and stalls: nothing is
//! marked shipped while the target fails, the backlog and the last error show in the
//! metrics, a restart in the middle loses nothing, and once the target recovers the
//! backlog drains: every segment at the target equals what was sealed, and every object
//! reads back byte-identical after retirement.

mod common;

use common::ship::{
    check_all, check_s3_copies, objects, put_all, s3_section, segments, shipping_settings,
    wait_until_retired,
};
use common::{client, settings, start_with};
use engine::catalog::SegmentState;
use ingot_engine::node::Node;
use ingot_engine::shipping::S3Section;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    /// Answer every request with a 500 and close.
    Error500,
    /// Read the request, then close without answering.
    Drop,
    /// Read and never answer.
    Stall,
}

/// A TCP proxy in front of `upstream` whose behaviour `mode` switches; a switch cuts
/// every open connection, so pooled connections see the new behaviour too.
/// `accepted` counts the connections it took.
async fn proxy(
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            accepted.fetch_add(1, Relaxed);
            let mut mode = mode.clone();
            tokio::spawn(async move {
                let m = *mode.borrow_and_update();
                tokio::select! {
                    _ = serve(conn, upstream, m) => {}
                    _ = mode.changed() => {}
                }
            });
        }
    });
    addr
}

async fn serve(mut conn: TcpStream, upstream: SocketAddr, mode: Mode) {
    let mut buf = vec![0u8; 64 << 10];
    match mode {
        Mode::Pass => {
            if let Ok(mut up) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
            }
        }
        Mode::Error500 => {
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\
                      Connection: close\r\n\r\n",
                )
                .await;
        }
        Mode::Drop => {
            let _ = conn.read(&mut buf).await;
        }
        Mode::Stall => while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {},
    }
}

/// Waits (bounded) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nothing shipped while the target fails; local copies all present.
async fn nothing_shipped(node: &Node) {
    for r in segments(node).await {
        assert!(
            !matches!(r.state, SegmentState::Shipped | SegmentState::Retired),
            "{:?} marked {:?} while the target fails",
            r.id,
            r.state
        );
    }
}

async fn fails_under(node: &Node, mode_tx: &watch::Sender<Mode>, mode: Mode, times: u64) {
    let m = node.ship_metrics().clone();
    let before = m.failures.load(Relaxed);
    mode_tx.send(mode).unwrap();
    wait_for(&format!("{times} failures under {mode:?}"), || {
        m.failures.load(Relaxed) >= before + times
    })
    .await;
    nothing_shipped(node).await;
    assert!(m.backlog_segments.load(Relaxed) > 0);
    assert!(m.backlog_bytes.load(Relaxed) > 0);
    assert!(m.last_error().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_costs_disk_never_data() {
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = start_with(settings(cold_dir.path(), "127.0.0.1:0".parse().unwrap())).await;
    let cc = client(cold.addr());
    cc.create_bucket().bucket("cold-tier").send().await.unwrap();
    let (mode_tx, mode_rx) = watch::channel(Mode::Error500);
    let accepted = Arc::new(AtomicU64::new(0));
    let via = proxy(cold.addr(), mode_rx, accepted.clone()).await;
    let s3 = S3Section {
        timeout_s: Some(1),
        ..s3_section(format!("http://{via}"))
    };
    let dir = tempfile::tempdir().unwrap();
    let s = shipping_settings(dir.path(), "s3://cold-tier/node-a", Some(s3));

    let objs = objects();
    let node = start_with(s.clone()).await;
    put_all(&node, "shipped", &objs).await;
    fails_under(&node, &mode_tx, Mode::Error500, 3).await;
    fails_under(&node, &mode_tx, Mode::Drop, 3).await;
    fails_under(&node, &mode_tx, Mode::Stall, 2).await;
    // The metrics endpoint shows the backlog.
    let text = metrics_text(node.addr()).await;
    assert!(text.contains("ingot_ship_backlog_segments "), "{text}");
    assert!(!text.contains("ingot_ship_backlog_segments 0\n"), "{text}");
    assert!(
        text.contains("ingot_ship_last_error_timestamp_seconds{error="),
        "{text}"
    );

    // A restart while the backlog waits: the queue comes back from the catalog.
    node.stop().await.unwrap();
    let node = start_with(s.clone()).await;
    fails_under(&node, &mode_tx, Mode::Drop, 2).await;
    check_all(&node, "shipped", &objs).await;

    mode_tx.send(Mode::Pass).unwrap();
    let segs = wait_until_retired(&node).await;
    assert_eq!(node.ship_metrics().backlog_segments.load(Relaxed), 0);
    // The pass that retired the last segment clears the error when it ends, which can
    // be just after the retirement is visible.
    let m = node.ship_metrics().clone();
    wait_for("the last error to clear", || m.last_error().is_none()).await;
    check_s3_copies(&cc, "cold-tier", "node-a", &segs).await;
    node.stop().await.unwrap();

    // Restarted with empty caches: the catalog segments the old run could not yet
    // retire (no checkpoint covered them) retire now, heads included.
    let node = start_with(s.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while segments(&node)
        .await
        .iter()
        .any(|r| matches!(r.state, SegmentState::Sealed | SegmentState::Shipped))
    {
        assert!(Instant::now() < deadline, "not everything retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The target fails: a read of retired data answers 503 (retryable), not 500.
    mode_tx.send(Mode::Error500).unwrap();
    let c = client(node.addr());
    let big = objs.keys().last().unwrap();
    let err = c
        .get_object()
        .bucket("shipped")
        .key(big)
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::status(&err), 503, "{err:?}");
    assert_eq!(common::code(&err), "ServiceUnavailable");
    mode_tx.send(Mode::Pass).unwrap();
    check_all(&node, "shipped", &objs).await;
    assert!(common::ship::cold_reads(&node) > 0);
    node.stop().await.unwrap();

    // A start while the target fails, with every head on the cold tier: the node waits
    // in "recovering" (retrying) and opens once the target answers.
    mode_tx.send(Mode::Error500).unwrap();
    let before = accepted.load(Relaxed);
    let mut node = Node::start(&s, &common::creds()).await.unwrap();
    wait_for("recovery to retry the cold tier", || {
        accepted.load(Relaxed) >= before + 3
    })
    .await;
    let health = get_text(node.addr(), "/health/ready").await;
    assert!(!health.starts_with("HTTP/1.1 200"), "{health}");
    mode_tx.send(Mode::Pass).unwrap();
    node.ready().await.unwrap();
    check_all(&node, "shipped", &objs).await;
    node.stop().await.unwrap();
    cold.stop().await.unwrap();
}

async fn metrics_text(addr: SocketAddr) -> String {
    get_text(addr, "/metrics").await
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
