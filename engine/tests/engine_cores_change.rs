//! The engine on real files, driven from a tokio runtime as the frontend drives it:
//! buckets stay readable and writable when the core count changes (2 → 1 → 2), the
//! data directory admits one process, bodies stream across runtimes, and a GET decides
//! on the shard, from the object it found, what to read.

use bytes::Bytes;
use engine::{Engine, EngineConfig, EngineError, IoMode, PutOptions, ShardConfig};
use std::path::Path;

fn config(dir: &Path, cores: usize) -> EngineConfig {
    EngineConfig {
        cores,
        pin_cores: false,
        io: IoMode::Auto,
        shard: ShardConfig {
            seal_bytes: 4 << 20,
            chunk_bytes: 64 << 10,
            ..ShardConfig::default()
        },
        ..EngineConfig::new(dir)
    }
}

fn body(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

async fn read(e: &Engine, bucket: &str, key: &str) -> Vec<u8> {
    drain(e.get_object(bucket, key, None).await.expect("get")).await
}

async fn drain(got: engine::GetOutcome) -> Vec<u8> {
    let mut body = got.body;
    let mut out = Vec::new();
    while let Some(p) = body.recv().await {
        out.extend_from_slice(&p.expect("body piece"));
    }
    out
}

/// Two bucket names the engine places on different shards of a 2-core start.
fn names_on_two_shards() -> (String, String) {
    let mut on = [None, None];
    for i in 0.. {
        let n = format!("bucket-{i}");
        let s = engine::placement_shard(&n, 2) as usize;
        on[s].get_or_insert(n);
        if let [Some(a), Some(b)] = &on {
            return (a.clone(), b.clone());
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "current_thread")]
async fn buckets_survive_core_count_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = names_on_two_shards();
    let mut expect: Vec<(String, String, Bytes)> = Vec::new();
    for (round, cores) in [2usize, 1, 2].into_iter().enumerate() {
        let e = Engine::open(config(dir.path(), cores)).expect("start");
        assert_eq!(e.cores(), cores);
        if round == 0 {
            e.create_bucket(&a).await.unwrap();
            e.create_bucket(&b).await.unwrap();
            let shards: Vec<u32> = e
                .list_buckets()
                .await
                .unwrap()
                .iter()
                .map(|b| b.shard)
                .collect();
            assert_eq!(shards.len(), 2);
            assert_ne!(shards[0], shards[1], "buckets on different shards");
        }
        // Everything written before is still there…
        for (bk, k, data) in &expect {
            assert_eq!(
                &read(&e, bk, k).await,
                data,
                "{bk}/{k} after restart on {cores} cores"
            );
        }
        // …and both buckets take writes, including a large streamed body.
        for (i, bk) in [&a, &b].into_iter().enumerate() {
            let key = format!("round{round}/obj{i}");
            let data = body(300_000 + round * 1000 + i, round as u8);
            let info = e
                .put_bytes(bk, &key, PutOptions::default(), data.clone())
                .await
                .unwrap();
            assert_eq!(info.manifest.size, data.len() as u64);
            expect.push((bk.clone(), key, data));
        }
        let created = format!("made-on-{cores}-cores-{round}");
        e.create_bucket(&created).await.unwrap();
        e.put_bytes(&created, "k", PutOptions::default(), body(10, 1))
            .await
            .unwrap();
        expect.push((created, "k".into(), body(10, 1)));
        // Copy across shards streams and checks the body.
        let copied = e
            .copy_object(&a, &expect[0].1.clone(), &b, &format!("copy{round}"), None)
            .await
            .unwrap();
        assert_eq!(
            copied.manifest.md5,
            e.head_object(&a, &expect[0].1).await.unwrap().manifest.md5
        );
        e.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn second_process_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path(), 1)).expect("start");
    match Engine::open(config(dir.path(), 1)) {
        Err(EngineError::Startup(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("second open must fail, got {other:?}"),
    }
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_io_mode_works_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1);
    c.io = IoMode::Blocking;
    let e = Engine::open(c.clone()).expect("start");
    assert!(!e.uses_io_uring());
    e.create_bucket("blocking").await.unwrap();
    e.put_bytes("blocking", "x", PutOptions::default(), body(5000, 2))
        .await
        .unwrap();
    e.shutdown().await.unwrap();
    drop(e);
    let e = Engine::open(c).expect("restart");
    assert_eq!(read(&e, "blocking", "x").await, body(5000, 2));
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_get_chooses_what_to_read_from_the_object_it_found() {
    use engine::ByteRange;
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path(), 1)).expect("start");
    e.create_bucket("chosen").await.expect("bucket");
    let data = body(200_000, 4);
    let put = e
        .put_bytes("chosen", "k", PutOptions::default(), data.clone())
        .await
        .expect("put");
    // `choose` sees the object found and its answer comes back with the bytes.
    let (info, etag, got) = e
        .get_object_chosen("chosen", "k", |info| {
            (info.manifest.etag.clone(), Some(None))
        })
        .await
        .expect("whole");
    assert_eq!(info.manifest_cid, put.manifest_cid);
    assert_eq!(etag, put.manifest.etag);
    assert_eq!(drain(got.expect("a body")).await, data);
    // A range across chunks.
    let (_, (), got) = e
        .get_object_chosen("chosen", "k", |_| {
            (
                (),
                Some(Some(ByteRange::FromTo {
                    first: 65_000,
                    last: 140_000,
                })),
            )
        })
        .await
        .expect("range");
    let got = got.expect("a body");
    assert_eq!(got.range, (65_000, 140_001));
    assert_eq!(drain(got).await, &data[65_000..140_001]);
    // Nothing to read (a failed condition): the object, no body.
    let (info, size, got) = e
        .get_object_chosen("chosen", "k", |info| (info.manifest.size, None))
        .await
        .expect("nothing");
    assert_eq!(size, 200_000);
    assert_eq!(info.manifest_cid, put.manifest_cid);
    assert!(got.is_none());
    // A missing key never reaches `choose`.
    let missing = e
        .get_object_chosen("chosen", "absent", |_| -> ((), _) {
            panic!("choose ran for a missing key")
        })
        .await;
    assert!(matches!(missing, Err(EngineError::NoSuchKey)));
    // A range past the end is refused by the engine.
    let bad = e
        .get_object_chosen("chosen", "k", |_| {
            ((), Some(Some(ByteRange::From { first: 200_000 })))
        })
        .await;
    assert!(matches!(
        bad,
        Err(EngineError::InvalidRange { size: 200_000 })
    ));
}
