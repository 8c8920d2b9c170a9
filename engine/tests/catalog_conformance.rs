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
