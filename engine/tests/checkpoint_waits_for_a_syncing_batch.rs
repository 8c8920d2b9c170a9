//! A head checkpoint must never be taken while a batch's commit is appended but not yet
//! published: the data stage's seal timer can roll the catalog segment while the catalog
//! stage waits for its fdatasync. A checkpoint taken then would name the new segment
//! while the batch's commit sits in the old one, and would not include the batch's
//! head (not dirty yet): after a restart the acknowledged PUT would be gone.

mod common;

use common::{block_on, body_of, open_shard, wait_until};
use engine::catalog::MemoryCatalog;
use engine::io::sim::SimDisk;
use engine::{PutOptions, ShardConfig};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

fn config() -> ShardConfig {
    ShardConfig {
        seal_bytes: 1 << 20,
        // The data stage checks for due seals this often while it has nothing to do.
        seal_age: Duration::from_millis(100),
        chunk_bytes: 4096,
        ..ShardConfig::default()
    }
}

fn declared(data: &[u8]) -> PutOptions {
    PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    }
}

#[test]
fn a_put_acknowledged_across_a_timed_seal_survives_a_restart() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config()).await;
        shard.create_bucket("bkt").await.expect("bucket");
        let a = b"first object".to_vec();
        shard
            .put_object("bkt", "a", declared(&a), body_of(&a))
            .await
            .expect("put a");

        // B's catalog fdatasync stalls, as on a slow disk; meanwhile the catalog segment
        // (open for longer than seal_age by then) is sealed by the data stage's timer.
        let sealed = shard.metrics().segments_sealed.clone();
        let sealed_before = sealed.load(Relaxed);
        let hold = disk.hold_next_sync("catalog-");
        let b = b"second object".to_vec();
        let put_b = {
            let (shard, b) = (shard.clone(), b.clone());
            monoio::spawn(async move {
                shard
                    .put_object("bkt", "b", declared(&b), body_of(&b))
                    .await
            })
        };
        wait_until("B's catalog sync is held", async || hold.is_waiting()).await;
        wait_until("the timer sealed the catalog segment", async || {
            sealed.load(Relaxed) > sealed_before
        })
        .await;
        hold.release();
        put_b.await.expect("put b is acknowledged");

        // Power fails (nothing unsynced survives) and the shard starts again.
        let after = disk.crash(|_, _| false);
        let shard = open_shard(&after, &catalog, config()).await;
        for (key, want) in [("a", &a), ("b", &b)] {
            let info = shard.head_object("bkt", key).await;
            let info = info.unwrap_or_else(|e| panic!("{key} lost after restart: {e}"));
            assert_eq!(info.manifest.size, want.len() as u64, "{key}");
        }
    });
}
