//! Crash tests of a whole shard on the simulated disk: concurrent writers PUT and
//! DELETE while the process "dies" after a random number of I/O operations; then the
//! power fails (each unsynced page kept or dropped at random) and the shard reopens.
//!
//! After recovery: every acknowledged write is there with its exact bytes; a write
//! that failed is either wholly there or wholly absent; every bucket's tree is complete
//! (listing walks every node, reading every object verifies every block); and the
//! recovered shard takes new writes.

mod common;

use common::{Rng, block_on, body_of, collect};
use engine::catalog::MemoryCatalog;
use engine::io::sim::SimDisk;
use engine::{EngineError, ListRequest, PutOptions, Shard, ShardConfig};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

type SimShard = Shard<SimDisk, MemoryCatalog>;
type Value = Option<Vec<u8>>;

fn config(rng: &mut Rng) -> ShardConfig {
    ShardConfig {
        seal_bytes: (64 << 10) * (1 + rng.below(3)),
        chunk_bytes: 4096,
        write_behind_bytes: 8192,
        ..ShardConfig::default()
    }
}

/// What each key may hold after the crash: the value of its last acknowledged write,
/// or (if the write after it failed) that write's value.
#[derive(Default, Debug)]
struct KeyModel {
    acked: Value,
    maybe: Option<Value>,
}

async fn open(
    disk: &SimDisk,
    catalog: &Arc<MemoryCatalog>,
    cfg: &ShardConfig,
) -> Result<Rc<SimShard>, EngineError> {
    let (shard, _) = Shard::open(0, Rc::new(disk.clone()), catalog.clone(), cfg.clone()).await?;
    monoio::spawn(shard.clone().run_commits());
    Ok(shard)
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(3000) as usize,
        _ => rng.below(30_000) as usize,
    };
    let seed = rng.next();
    (0..len)
        .map(|i| (seed >> (i % 8 * 8)) as u8 ^ (i / 7) as u8)
        .collect()
}

async fn writer(
    shard: Rc<SimShard>,
    mut rng: Rng,
    keys: Vec<String>,
    model: Rc<RefCell<BTreeMap<String, KeyModel>>>,
) {
    for _ in 0..40 {
        let key = &keys[rng.below(keys.len() as u64) as usize];
        let new: Value = if rng.below(5) == 0 {
            None
        } else {
            Some(value(&mut rng))
        };
        let r = match &new {
            Some(v) => shard
                .put_object("crash", key, declare_or_not(&mut rng, v), body_of_any(v))
                .await
                .map(|_| ()),
            None => shard.delete_object("crash", key).await.map(|_| ()),
        };
        let mut m = model.borrow_mut();
        let k = m.entry(key.clone()).or_default();
        match r {
            Ok(()) => k.acked = new,
            Err(_) => {
                k.maybe = Some(new);
                return; // the process is dead from here on
            }
        }
    }
}

/// Half the PUTs declare their length, so bodies up to `meta_body_bytes` ride in
/// the meta plane and the others go to the data plane.
fn declare_or_not(rng: &mut Rng, v: &[u8]) -> PutOptions {
    PutOptions {
        content_length: (rng.below(2) == 0).then_some(v.len() as u64),
        ..PutOptions::default()
    }
}

/// A body channel fed with `v` in pieces (bodies may exceed the channel's capacity).
fn body_of_any(v: &[u8]) -> engine::BodyReceiver {
    if v.len() <= 3 * 4096 {
        return body_of(v);
    }
    let (tx, rx) = engine::body_channel();
    let v = v.to_vec();
    monoio::spawn(async move {
        for piece in v.chunks(5000) {
            if tx
                .send(Ok(bytes::Bytes::copy_from_slice(piece)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

async fn case(seed: u64) -> (usize, bool) {
    let mut rng = Rng::seeded(seed);
    let cfg = config(&mut rng);
    let disk = SimDisk::new();
    let catalog = Arc::new(MemoryCatalog::new());
    let model = Rc::new(RefCell::new(BTreeMap::<String, KeyModel>::new()));
    {
        let shard = open(&disk, &catalog, &cfg).await.expect("fresh open");
        shard.create_bucket("crash").await.expect("create");
        disk.die_after(rng.below(400));
        let writers = 1 + rng.below(6) as usize;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let keys: Vec<String> = (0..4).map(|i| format!("w{w}/k{i}")).collect();
            let r = Rng::seeded(rng.next());
            tasks.push(monoio::spawn(writer(shard.clone(), r, keys, model.clone())));
        }
        for t in tasks {
            t.await;
        }
        shard.close().await.ok();
    }
    let keep_ratio = rng.below(3); // 0: drop all unsynced pages, 1: keep all, 2: random
    let crashed = disk.crash(|_, _| match keep_ratio {
        0 => false,
        1 => true,
        _ => rng.below(2) == 0,
    });
    let shard = open(&crashed, &catalog, &cfg)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    // Every key holds an allowed value.
    let model = std::mem::take(&mut *model.borrow_mut());
    for (key, k) in model.iter() {
        let got: Value = match shard.get_object("crash", key, None).await {
            Ok(o) => Some(
                collect(o.body)
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: {key}: {e}")),
            ),
            Err(EngineError::NoSuchKey) => None,
            Err(e) => panic!("seed {seed}: {key}: {e}"),
        };
        let ok = got == k.acked || k.maybe.as_ref().is_some_and(|m| *m == got);
        assert!(
            ok,
            "seed {seed}: {key} holds {:?} bytes; acked {:?}, maybe {:?}",
            got.as_ref().map(Vec::len),
            k.acked.as_ref().map(Vec::len),
            k.maybe.as_ref().map(|m| m.as_ref().map(Vec::len))
        );
    }
    // The whole tree is readable: no node or block is missing.
    let page = shard
        .list_objects(
            "crash",
            ListRequest {
                max_keys: 10_000,
                ..ListRequest::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: list: {e}"));
    for o in &page.objects {
        assert!(
            model.contains_key(&o.key),
            "seed {seed}: unknown key {}",
            o.key
        );
        shard
            .verify_object("crash", &o.key)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", o.key));
    }
    // The recovered shard takes writes and keeps them across a clean restart.
    shard
        .put_object("crash", "after", PutOptions::default(), body_of(b"after"))
        .await
        .expect("write after recovery");
    shard.close().await.expect("close");
    let reopened = open(&crashed, &catalog, &cfg).await.expect("reopen");
    let after = reopened
        .get_object("crash", "after", None)
        .await
        .expect("after");
    assert_eq!(collect(after.body).await.unwrap(), b"after");
    (
        page.objects.len(),
        model.values().any(|k| k.maybe.is_some()),
    )
}

#[test]
fn acknowledged_writes_survive_crashes_at_random_points() {
    let cases: u64 = std::env::var("INGOT_CRASH_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let (mut objects, mut interrupted) = (0, 0);
    block_on(async {
        for seed in 0..cases {
            let (n, cut) = case(seed).await;
            objects += n;
            interrupted += usize::from(cut);
        }
    });
    // The cases really crash mid-write and really hold data.
    assert!(
        interrupted as u64 > cases / 2,
        "only {interrupted} of {cases} cases crashed mid-write"
    );
    assert!(objects as u64 > cases, "cases held only {objects} objects");
}

#[test]
fn failed_fsync_poisons_the_shard_and_nothing_after_is_acknowledged() {
    block_on(async {
        let mut rng = Rng::seeded(7);
        let cfg = config(&mut rng);
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open(&disk, &catalog, &cfg).await.unwrap();
        shard.create_bucket("crash").await.unwrap();
        shard
            .put_object("crash", "before", PutOptions::default(), body_of(b"one"))
            .await
            .unwrap();
        disk.fail_sync_after(0);
        let r = shard
            .put_object("crash", "during", PutOptions::default(), body_of(b"two"))
            .await;
        assert!(r.is_err(), "a write whose fsync failed is not acknowledged");
        assert!(shard.is_poisoned());
        assert!(
            shard
                .metrics()
                .poisoned
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        disk.fail_sync_after(u64::MAX); // the disk "recovers": the shard must not
        for key in ["after1", "after2"] {
            let r = shard
                .put_object("crash", key, PutOptions::default(), body_of(b"x"))
                .await;
            assert!(matches!(r, Err(EngineError::Poisoned(0))), "{key}: {r:?}");
        }
        assert!(matches!(
            shard.delete_object("crash", "before").await,
            Err(EngineError::Poisoned(0))
        ));
        assert!(matches!(
            shard.create_bucket("other").await,
            Err(EngineError::Poisoned(0))
        ));
        // Reads of acknowledged data still work.
        let got = shard.get_object("crash", "before", None).await.unwrap();
        assert_eq!(collect(got.body).await.unwrap(), b"one");
        // After a restart the acknowledged write is there and the refused ones are not.
        let crashed = disk.crash(|_, _| false);
        let shard = open(&crashed, &catalog, &cfg).await.unwrap();
        assert!(shard.head_object("crash", "before").await.is_ok());
        for key in ["during", "after1", "after2"] {
            assert!(
                matches!(
                    shard.head_object("crash", key).await,
                    Err(EngineError::NoSuchKey)
                ),
                "{key}"
            );
        }
    });
}
