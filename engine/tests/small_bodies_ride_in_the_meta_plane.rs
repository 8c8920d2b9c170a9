//! A PUT that declares a length of at most `meta_body_bytes` journals its chunks in
//! the meta plane, next to its manifest: its group commit syncs one file, and after a
//! power loss right after the acknowledgement the object is whole. Larger bodies, bodies
//! of unknown length and multipart parts keep their chunks in the data plane.

mod common;

use common::{block_on, body_of, collect, open_shard};
use engine::block::cid_raw;
use engine::catalog::MemoryCatalog;
use engine::io::sim::SimDisk;
use engine::segment::Plane;
use engine::{PutOptions, Shard, ShardConfig};
use std::sync::Arc;

type SimShard = Shard<SimDisk, MemoryCatalog>;

const CHUNK_BYTES: usize = 4096;

fn config(meta_body_bytes: u64) -> ShardConfig {
    ShardConfig {
        seal_bytes: 1 << 20,
        chunk_bytes: CHUNK_BYTES,
        meta_body_bytes,
        ..ShardConfig::default()
    }
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i / 251) as u8)
        .collect()
}

/// Declares the length, as every S3 PUT with Content-Length does.
fn declared(data: &[u8]) -> PutOptions {
    PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    }
}

fn planes_of(shard: &SimShard, data: &[u8]) -> Vec<Option<Plane>> {
    data.chunks(CHUNK_BYTES)
        .map(|c| shard.block_plane(&cid_raw(c)))
        .collect()
}

#[test]
fn a_small_declared_body_is_committed_with_one_fsync_in_the_catalog_plane() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config(16 << 10)).await;
        shard.create_bucket("bkt").await.expect("bucket");

        let small = body(10_000, 1); // three chunks, 10,000 ≤ 16,384 bytes
        let m = shard.metrics().clone();
        let (data_syncs, catalog_syncs) = (m.data_fsync.count(), m.meta_fsync.count());
        shard
            .put_object("bkt", "small", declared(&small), body_of(&small))
            .await
            .expect("small put");
        assert_eq!(
            planes_of(&shard, &small),
            vec![Some(Plane::Meta); 3],
            "every chunk of the small body is in the meta plane"
        );
        assert_eq!(m.data_fsync.count(), data_syncs, "no data-plane fsync");
        assert_eq!(m.meta_fsync.count(), catalog_syncs + 1);

        // Larger than the limit, or of unknown length: the data plane, as before.
        let large = body(16_385, 2);
        shard
            .put_object("bkt", "large", declared(&large), body_of(&large))
            .await
            .expect("large put");
        assert!(
            planes_of(&shard, &large)
                .iter()
                .all(|p| *p == Some(Plane::Data))
        );
        assert!(
            m.data_fsync.count() > data_syncs,
            "the large body was synced"
        );
        let unknown = body(3000, 3);
        shard
            .put_object("bkt", "unknown", PutOptions::default(), body_of(&unknown))
            .await
            .expect("put of unknown length");
        assert_eq!(planes_of(&shard, &unknown), vec![Some(Plane::Data)]);

        // Power fails right after the acknowledgements: every unsynced page is lost.
        let after = disk.crash(|_, _| false);
        let shard = open_shard(&after, &catalog, config(16 << 10)).await;
        for (key, want) in [("small", &small), ("large", &large), ("unknown", &unknown)] {
            let got = shard.get_object("bkt", key, None).await.expect("get");
            assert_eq!(&collect(got.body).await.expect("body"), want, "{key}");
        }
        assert!(shard.verify_object("bkt", "small").await.is_ok());
    });
}

#[test]
fn turned_off_every_body_goes_to_the_data_plane() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config(0)).await;
        shard.create_bucket("bkt").await.expect("bucket");
        let small = body(100, 4);
        let syncs = shard.metrics().data_fsync.count();
        shard
            .put_object("bkt", "k", declared(&small), body_of(&small))
            .await
            .expect("put");
        assert_eq!(planes_of(&shard, &small), vec![Some(Plane::Data)]);
        assert_eq!(shard.metrics().data_fsync.count(), syncs + 1);
    });
}

#[test]
fn a_small_body_stored_before_in_the_data_plane_is_journalled_again_with_its_manifest() {
    // The data-plane copy may not be durable when the manifest's commit syncs; the
    // meta plane gets its own copy, and the index points at it.
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config(16 << 10)).await;
        shard.create_bucket("bkt").await.expect("bucket");
        let data = body(2000, 5);
        shard
            .put_object("bkt", "first", PutOptions::default(), body_of(&data))
            .await
            .expect("put of unknown length");
        assert_eq!(planes_of(&shard, &data), vec![Some(Plane::Data)]);
        shard
            .put_object("bkt", "second", declared(&data), body_of(&data))
            .await
            .expect("declared put");
        assert_eq!(planes_of(&shard, &data), vec![Some(Plane::Meta)]);
        let after = disk.crash(|_, _| false);
        let shard = open_shard(&after, &catalog, config(16 << 10)).await;
        for key in ["first", "second"] {
            let got = shard.get_object("bkt", key, None).await.expect("get");
            assert_eq!(collect(got.body).await.expect("body"), data, "{key}");
        }
    });
}
