//! A head checkpoint must never be taken while a batch's commit is appended but not yet
//! published: the data stage's seal timer can roll the catalog segment while the catalog
//! stage waits for its fdatasync. A checkpoint taken then would name the new segment
//! while the batch's commit sits in the old one, and would not include the batch's
//! head (not dirty yet): after a restart the acknowledged PUT would be gone.

mod common;

use common::{block_on, body_of};
use engine::catalog::MemoryCatalog;
use engine::io::sim::SimDisk;
use engine::{PutOptions, Shard, ShardConfig};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

type SimShard = Shard<SimDisk, MemoryCatalog>;

fn config() -> ShardConfig {
    ShardConfig {
        seal_bytes: 1 << 20,
        // The data stage checks for due seals this often while it has nothing to do.
        seal_age: Duration::from_millis(100),
        chunk_bytes: 4096,
        ..ShardConfig::default()
    }
}

async fn open(disk: &SimDisk, catalog: &Arc<MemoryCatalog>) -> Rc<SimShard> {
    let (shard, _) = Shard::open(0, Rc::new(disk.clone()), catalog.clone(), config())
        .await
        .expect("open shard");
    monoio::spawn(shard.clone().run_commits());
    shard
}

fn declared(data: &[u8]) -> PutOptions {
    PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    }
}

/// Polls `done` every millisecond for at most ten seconds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_put_acknowledged_across_a_timed_seal_survives_a_restart() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open(&disk, &catalog).await;
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
        wait_until("B's catalog sync is held", || hold.is_waiting()).await;
        wait_until("the timer sealed the catalog segment", || {
            sealed.load(Relaxed) > sealed_before
        })
        .await;
        hold.release();
        put_b.await.expect("put b is acknowledged");

        // Power fails (nothing unsynced survives) and the shard starts again.
        let after = disk.crash(|_, _| false);
        let shard = open(&after, &catalog).await;
        for (key, want) in [("a", &a), ("b", &b)] {
            let info = shard.head_object("bkt", key).await;
            let info = info.unwrap_or_else(|e| panic!("{key} lost after restart: {e}"));
            assert_eq!(info.manifest.size, want.len() as u64, "{key}");
        }
    });
}
