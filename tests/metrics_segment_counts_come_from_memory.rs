//! `ingot_segments{plane,state}` on `/metrics` comes from counts the engine keeps in
//! memory: a scrape reads no catalog, and the counts equal the catalog's records after
//! seals, shipping and retirement.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::ship::{objects, put_all, segments, shipping_settings, wait_until_retired};
use common::{settings, start_with};
use engine::Plane;
use engine::catalog::{SegmentCounts, SegmentState};
use ingot_engine::node::Node;
use std::time::{Duration, Instant};

async fn scrape(node: &Node) -> String {
    let addr = node.addr();
    tokio::task::spawn_blocking(move || {
        raw::roundtrip(
            addr,
            b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .body
    })
    .await
    .unwrap()
}

/// The `ingot_segments` lines a scrape should show for `counts`, sorted.
fn lines(counts: &SegmentCounts) -> Vec<String> {
    let mut v: Vec<String> = counts
        .iter()
        .filter(|&(_, _, n)| n > 0)
        .map(|(p, s, n)| {
            let s = format!("{s:?}").to_ascii_lowercase();
            format!(
                "ingot_segments{{plane=\"{}\",state=\"{s}\"}} {n}",
                p.as_str()
            )
        })
        .collect();
    v.sort();
    v
}

/// The `ingot_segments` lines of a scrape, sorted.
fn shown(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("ingot_segments{"))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_read_no_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.engine.seal_bytes = 1 << 20;
    s.engine.chunk_bytes = 64 << 10;
    s.engine.seal_age = Duration::from_millis(100);
    let node = start_with(s).await;
    put_all(&node, "scraped", &objects()).await;
    let engine = node.engine().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine
        .segment_counts()
        .get(Plane::Meta, SegmentState::Sealed)
        == 0
    {
        assert!(Instant::now() < deadline, "no catalog segment sealed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing else reads the segment table of a node that does not ship.
    let scans = engine.catalog().segment_scans();
    let mut checked = false;
    for _ in 0..20 {
        let before = engine.segment_counts();
        let text = scrape(&node).await;
        // A seal by age between the reads changes the counts: scrape again.
        if engine.segment_counts() == before {
            assert_eq!(shown(&text), lines(&before), "{text}");
            checked = true;
            break;
        }
    }
    assert!(checked, "the counts never held still across a scrape");
    assert_eq!(
        engine.catalog().segment_scans(),
        scans,
        "a scrape read the catalog"
    );
    assert_counts_match(&node).await;
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_follow_seal_ship_and_retire() {
    let root = tempfile::tempdir().unwrap();
    let (data, cold) = (root.path().join("data"), root.path().join("cold"));
    let s = shipping_settings(&data, &format!("file://{}", cold.display()), None);
    let node = start_with(s.clone()).await;
    put_all(&node, "counted", &objects()).await;
    let segs = wait_until_retired(&node).await;
    let counts = SegmentCounts::of(&segs);
    assert!(
        counts.get(Plane::Data, SegmentState::Retired) > 0,
        "{counts:?}"
    );
    assert_counts_match(&node).await;
    node.stop().await.unwrap();

    // After a restart (recovery, the seals of the last stop) the counts start from the
    // catalog and go on following it.
    let node = start_with(s).await;
    assert_counts_match(&node).await;
    node.stop().await.unwrap();
}

/// The engine's counts equal those of the catalog's records (read again while the
/// shipping pipeline moves a segment between the two reads).
async fn assert_counts_match(node: &Node) {
    let engine = node.engine().unwrap().clone();
    let mut truth = SegmentCounts::of(&segments(node).await);
    for _ in 0..50 {
        if engine.segment_counts() == truth {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        truth = SegmentCounts::of(&segments(node).await);
    }
    assert_eq!(engine.segment_counts(), truth);
}
