//! A full disk refuses writes (`EngineError::NoSpace`) without poisoning the shard:
//! nothing of a refused write is visible, before or after a restart, and writes are
//! taken again once space returns. (A failed fsync or EIO still poisons:
//! `shard_crash_recovers.rs`.)

mod common;

use common::{block_on, body_of, collect, open_shard, wait_until};
use engine::catalog::{Catalog, MemoryCatalog, SegmentState};
use engine::io::Disk;
use engine::io::sim::SimDisk;
use engine::plane::{car_name, index_name};
use engine::{EngineError, ListRequest, PutOptions, Shard, ShardConfig};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

type SimShard = Shard<SimDisk, MemoryCatalog>;

fn config() -> ShardConfig {
    ShardConfig {
        seal_bytes: 256 << 10,
        chunk_bytes: 4096,
        ..ShardConfig::default()
    }
}

/// A body of `len` bytes that no other test object shares (no deduplication).
fn body(tag: u64, len: usize) -> Vec<u8> {
    let mut rng = common::Rng::seeded(tag);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Rides in the meta plane with its manifest (declared length ≤ 16 KiB).
fn small(data: &[u8]) -> PutOptions {
    PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    }
}

async fn keys(shard: &SimShard) -> Vec<String> {
    let req = ListRequest {
        prefix: String::new(),
        delimiter: None,
        start_after: None,
        max_keys: 1000,
    };
    let page = shard.list_objects("bkt", req).await.expect("list");
    page.objects.into_iter().map(|o| o.key).collect()
}

/// Puts small objects until one is refused; returns the keys acknowledged before.
async fn fill_until_refused(shard: &SimShard, stored: &mut Vec<(String, Vec<u8>)>) -> String {
    for n in 0..500 {
        let key = format!("fill/{n:03}");
        let data = body(1000 + n, 8 << 10);
        match shard
            .put_object("bkt", &key, small(&data), body_of(&data))
            .await
        {
            Ok(_) => stored.push((key, data)),
            Err(EngineError::NoSpace(_)) => return key,
            Err(e) => panic!("{key}: {e}"),
        }
    }
    panic!("500 PUTs of 8 KiB fit in a full disk");
}

/// No segment is left half-made (`Creating`) once the spare jobs are done.
async fn no_creation_left(catalog: &MemoryCatalog) -> bool {
    let segments = catalog.segments().await.expect("segments");
    segments.iter().all(|s| s.state != SegmentState::Creating)
}

#[test]
fn a_full_disk_refuses_writes_until_space_returns() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config()).await;
        shard.create_bucket("bkt").await.expect("bucket");
        let mut stored = Vec::new();

        // Room left for index files and the like, not for a new segment and the reserve
        // beside it (as much again): what the open segments hold still takes writes, a
        // new segment is refused.
        disk.leave_free(config().seal_bytes);
        let refused = fill_until_refused(&shard, &mut stored).await;
        assert!(!stored.is_empty(), "the open segment took writes first");
        let never = body(7, 8 << 10);
        let r = shard
            .put_object("bkt", "never", small(&never), body_of(&never))
            .await;
        assert!(matches!(r, Err(EngineError::NoSpace(_))), "{r:?}");
        // A body larger than the data plane's open and spare segments together.
        let big = body(8, 600 << 10);
        let r = shard
            .put_object("bkt", "big", PutOptions::default(), body_of(&big))
            .await;
        assert!(matches!(r, Err(EngineError::NoSpace(_))), "{r:?}");

        // Refused, not failed: healthy, counted, and nothing of the refused writes shows.
        assert!(!shard.is_poisoned());
        assert!(shard.metrics().no_space_refusals.load(Relaxed) >= 3);
        for key in [refused.as_str(), "never", "big"] {
            let r = shard.head_object("bkt", key).await;
            assert!(matches!(r, Err(EngineError::NoSuchKey)), "{key}: {r:?}");
        }
        let acknowledged: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys(&shard).await, acknowledged);

        // Space returns: the same writes go through, with no restart.
        disk.limit_space(None);
        let data = body(9, 8 << 10);
        shard
            .put_object("bkt", &refused, small(&data), body_of(&data))
            .await
            .expect("the refused key once space returned");
        stored.push((refused.clone(), data));
        shard
            .put_object("bkt", "big", PutOptions::default(), body_of(&big))
            .await
            .expect("the large body once space returned");
        stored.push(("big".to_owned(), big));
        for (key, want) in &stored {
            let got = shard.get_object("bkt", key, None).await.expect("get");
            assert_eq!(&collect(got.body).await.expect("body"), want, "{key}");
        }

        // Power fails: every acknowledged write is back, the refused one is not.
        wait_until("spare jobs end", || no_creation_left(&catalog)).await;
        let shard = open_shard(&disk.crash(|_, _| false), &catalog, config()).await;
        let mut want: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
        want.sort();
        assert_eq!(keys(&shard).await, want);
        assert!(matches!(
            shard.head_object("bkt", "never").await,
            Err(EngineError::NoSuchKey)
        ));
    });
}

#[test]
fn an_allocation_refused_after_the_free_space_check_leaves_nothing_behind() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config()).await;
        shard.create_bucket("bkt").await.expect("bucket");
        // The filesystem does not tell its free space (or another writer takes it
        // between the look and the allocation): the fallocate is what finds out.
        disk.hide_free_space(true);
        disk.leave_free(64 << 10);
        let mut stored = Vec::new();
        fill_until_refused(&shard, &mut stored).await;
        assert!(!shard.is_poisoned());

        // The half-made segment's file and record are gone: every file has its record,
        // no creation is left to finish, and a restart finds the same.
        wait_until("spare jobs end", || no_creation_left(&catalog)).await;
        let records = catalog.segments().await.expect("segments");
        let named: BTreeSet<String> = records
            .iter()
            .flat_map(|r| [car_name(r.id), index_name(r.id)])
            .collect();
        for file in disk.list().await.expect("files") {
            assert!(named.contains(&file), "{file} has no record");
        }
        let shard = open_shard(&disk.crash(|_, _| false), &catalog, config()).await;
        let acknowledged: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys(&shard).await, acknowledged);
    });
}

/// One batch changing two buckets appends both buckets' commits; a full disk must
/// refuse it before the first, or the next commit of the same segment would make that
/// commit durable, and recovery would take it as the
/// bucket's head: a refused write would come back. Pairs of PUTs share batches; each
/// round fills a fresh disk until a pair is refused, with bodies sized so the space
/// runs out at a different point of the batch, then commits a batch that appends
/// nothing and loses power.
#[test]
fn a_refused_batch_leaves_no_commit_for_recovery_to_find() {
    block_on(async {
        for round in 0..12u64 {
            let disk = SimDisk::new();
            let catalog = Arc::new(MemoryCatalog::default());
            let shard = open_shard(&disk, &catalog, config()).await;
            for b in ["one", "two", "three"] {
                shard.create_bucket(b).await.expect("bucket");
            }
            disk.leave_free(config().seal_bytes);
            let refused = fill_pairs_until_refused(&shard, round).await;
            // A batch that appends nothing still commits whatever the log holds.
            shard
                .delete_object("three", "absent")
                .await
                .expect("a delete appends nothing");
            assert!(!shard.is_poisoned());
            wait_until("spare jobs end", || no_creation_left(&catalog)).await;
            let shard = open_shard(&disk.crash(|_, _| false), &catalog, config()).await;
            for (b, key) in &refused {
                let r = shard.head_object(b, key).await;
                let round_key = format!("round {round}: {b}/{key}");
                assert!(
                    matches!(r, Err(EngineError::NoSuchKey)),
                    "{round_key}: {r:?}"
                );
            }
        }
    });
}

/// PUTs the same key to buckets `one` and `two` at once (one batch) until a PUT is
/// refused; returns the refused (bucket, key) pairs.
async fn fill_pairs_until_refused(shard: &Rc<SimShard>, round: u64) -> Vec<(&'static str, String)> {
    for n in 0..2_000u64 {
        let key = format!("k{n:05}");
        let puts: Vec<_> = ["one", "two"]
            .into_iter()
            .map(|b| {
                let (shard, key) = (shard.clone(), key.clone());
                let len = 100 + ((n * 37 + round * 211) % 900) as usize;
                let data = body(n * 2 + (b == "two") as u64 + round * 10_000, len);
                monoio::spawn(async move {
                    shard
                        .put_object(b, &key, small(&data), body_of(&data))
                        .await
                })
            })
            .collect();
        let mut refused = Vec::new();
        for (b, put) in ["one", "two"].into_iter().zip(puts) {
            match put.await {
                Ok(_) => {}
                Err(EngineError::NoSpace(_)) => refused.push((b, key.clone())),
                Err(e) => panic!("{b}/{key}: {e}"),
            }
        }
        if !refused.is_empty() {
            return refused;
        }
    }
    panic!("2,000 pairs of PUTs fit in a full disk");
}

/// What is not a full disk still poisons: a failed fsync fails its write with the I/O
/// error (not `NoSpace`), and the shard takes no more writes even once the disk works.
#[test]
fn a_failed_fsync_still_poisons_the_shard() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::default());
        let shard = open_shard(&disk, &catalog, config()).await;
        shard.create_bucket("bkt").await.expect("bucket");
        disk.fail_sync_after(0);
        let data = body(1, 4096);
        let r = shard
            .put_object("bkt", "a", small(&data), body_of(&data))
            .await;
        assert!(matches!(r, Err(EngineError::Io { .. })), "{r:?}");
        assert!(shard.is_poisoned());
        assert_eq!(shard.metrics().no_space_refusals.load(Relaxed), 0);
        disk.fail_sync_after(u64::MAX);
        let r = shard
            .put_object("bkt", "b", small(&data), body_of(&data))
            .await;
        assert!(matches!(r, Err(EngineError::Poisoned(0))), "{r:?}");
    });
}
