//! The embedded (redb) catalog passes the catalog conformance suite, and what it commits
//! survives closing and reopening the database.

use engine::catalog::{
    BucketRecord, Catalog, EmbeddedCatalog, MemoryCatalog, SegmentRecord, SegmentState,
    SegmentUpdate, conformance,
};
use engine::segment::{Plane, SegmentId};

#[tokio::test]
async fn embedded_catalog_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("catalog-{n}.redb"));
        async move { EmbeddedCatalog::open(&path).unwrap() }
    })
    .await;
    assert_eq!(n, 5, "every check ran on its own catalog");
}

/// Shards call the catalog from monoio threads: the answers, sent from the catalog's
/// own thread, wake them there.
#[test]
fn embedded_catalog_passes_the_conformance_suite_from_a_monoio_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .unwrap();
    let mut n = 0;
    rt.block_on(conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("catalog-{n}.redb"));
        async move { EmbeddedCatalog::open(&path).unwrap() }
    }));
    assert_eq!(n, 5, "every check ran on its own catalog");
}

#[tokio::test]
async fn memory_catalog_passes_the_conformance_suite() {
    conformance::run_all(|| async { MemoryCatalog::new() }).await;
}

#[tokio::test]
async fn committed_records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.redb");
    let id = SegmentId {
        plane: Plane::Meta,
        shard: 2,
        seq: 40,
    };
    {
        let c = EmbeddedCatalog::open(&path).unwrap();
        c.create_bucket(BucketRecord {
            name: "b".into(),
            shard: 2,
            created_ms: 1,
        })
        .await
        .unwrap();
        let rec = SegmentRecord {
            id,
            state: SegmentState::Creating,
            size_bytes: 0,
            sha256: None,
            location: None,
            created_ms: 1,
            updated_ms: 1,
        };
        c.create_segment(rec).await.unwrap();
        let up = SegmentUpdate {
            now_ms: 2,
            ..Default::default()
        };
        c.transition_segment(id, SegmentState::Creating, SegmentState::Open, up)
            .await
            .unwrap();
    }
    let c = EmbeddedCatalog::open(&path).unwrap();
    assert_eq!(c.bucket("b").await.unwrap().map(|b| b.shard), Some(2));
    assert_eq!(
        c.segment(id).await.unwrap().map(|s| s.state),
        Some(SegmentState::Open)
    );
}

#[test]
fn a_second_open_of_the_same_database_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.redb");
    let _first = EmbeddedCatalog::open(&path).unwrap();
    assert!(EmbeddedCatalog::open(&path).is_err());
}

/// Measures segment transitions per second with 1 and 8 callers at once, each walking
/// its own segments through Creating → Open → Sealed → Shipped. Prints the rates;
/// asserts nothing about time. Run with
/// `cargo test --test catalog_conformance -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, prints a rate"]
fn measure_concurrent_segment_transitions() {
    for callers in [1, 8] {
        measure_segment_transitions(callers, 200 / callers);
    }
}

fn measure_segment_transitions(callers: u32, segments_per_caller: u32) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let c = std::sync::Arc::new(EmbeddedCatalog::open(&dir.path().join("c.redb")).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(callers as usize)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|shard| {
                let c = c.clone();
                let segments = u64::from(segments_per_caller);
                tokio::spawn(async move { walk_segments(&*c, shard, segments).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let writes = callers * segments_per_caller * 4;
    let secs = elapsed.as_secs_f64();
    let stats = c.stats();
    println!(
        "{callers} callers, {writes} segment writes in {secs:.3} s: {:.0} writes/s, \
         {} commits ({:.0} commits/s)",
        f64::from(writes) / secs,
        stats.commits,
        stats.commits as f64 / secs,
    );
}

async fn walk_segments(c: &impl Catalog, shard: u32, segments: u64) {
    use SegmentState::*;
    for seq in 0..segments {
        let id = SegmentId {
            plane: Plane::Data,
            shard,
            seq,
        };
        let rec = SegmentRecord {
            id,
            state: Creating,
            size_bytes: 0,
            sha256: None,
            location: None,
            created_ms: 1,
            updated_ms: 1,
        };
        c.create_segment(rec).await.unwrap();
        for (from, to) in [(Creating, Open), (Open, Sealed), (Sealed, Shipped)] {
            let up = SegmentUpdate {
                now_ms: 2,
                ..Default::default()
            };
            c.transition_segment(id, from, to, up).await.unwrap();
        }
    }
}
