//! A shard's object API on a simulated disk: what a PUT stores a GET returns (whole and
//! ranged), HEAD/DELETE/LIST/COPY behave as S3 does, bad input changes nothing, and
//! everything acknowledged is there after a clean restart.

mod common;

use common::{block_on, body_of, collect, open_shard};
use engine::catalog::MemoryCatalog;
use engine::format::ObjectHeaders;
use engine::io::sim::SimDisk;
use engine::{ByteRange, EngineError, ListRequest, PutOptions, Shard, ShardConfig};
use md5::{Digest, Md5};
use std::rc::Rc;
use std::sync::Arc;

type SimShard = Shard<SimDisk, MemoryCatalog>;

fn small_config() -> ShardConfig {
    ShardConfig {
        seal_bytes: 1 << 20,
        chunk_bytes: 4096,
        ..ShardConfig::default()
    }
}

async fn put(
    shard: &SimShard,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> engine::EngineResult<engine::ObjectInfo> {
    shard
        .put_object(bucket, key, PutOptions::default(), body_of(data))
        .await
}

async fn get(
    shard: &Rc<SimShard>,
    bucket: &str,
    key: &str,
    range: Option<ByteRange>,
) -> engine::EngineResult<Vec<u8>> {
    let out = shard.get_object(bucket, key, range).await?;
    collect(out.body).await
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn put_get_head_delete_round_trip() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("photos").await.expect("create");
        assert!(matches!(
            shard.create_bucket("photos").await,
            Err(EngineError::BucketAlreadyExists(_))
        ));
        let data = body(10_000, 3);
        let info = put(&shard, "photos", "a/b.jpg", &data).await.expect("put");
        let md5: [u8; 16] = Md5::digest(&data).into();
        assert_eq!(info.manifest.md5, md5);
        assert_eq!(info.manifest.size, 10_000);
        assert_eq!(get(&shard, "photos", "a/b.jpg", None).await.unwrap(), data);
        let head = shard.head_object("photos", "a/b.jpg").await.unwrap();
        assert_eq!(head.manifest_cid, info.manifest_cid);
        // Ranges inside one chunk, across chunks, suffix, open-ended, past the end.
        for (r, want) in [
            (
                ByteRange::FromTo {
                    first: 10,
                    last: 19,
                },
                &data[10..20],
            ),
            (
                ByteRange::FromTo {
                    first: 4000,
                    last: 8200,
                },
                &data[4000..8201],
            ),
            (ByteRange::Suffix { len: 5 }, &data[9995..]),
            (ByteRange::From { first: 9000 }, &data[9000..]),
            (
                ByteRange::FromTo {
                    first: 9990,
                    last: 1 << 40,
                },
                &data[9990..],
            ),
        ] {
            assert_eq!(
                get(&shard, "photos", "a/b.jpg", Some(r)).await.unwrap(),
                want,
                "{r:?}"
            );
        }
        assert!(matches!(
            get(
                &shard,
                "photos",
                "a/b.jpg",
                Some(ByteRange::From { first: 10_000 })
            )
            .await,
            Err(EngineError::InvalidRange { size: 10_000 })
        ));
        assert_eq!(
            shard.delete_object("photos", "a/b.jpg").await.unwrap(),
            Some(info.manifest_cid)
        );
        assert_eq!(
            shard.delete_object("photos", "a/b.jpg").await.unwrap(),
            None,
            "idempotent"
        );
        assert!(matches!(
            shard.head_object("photos", "a/b.jpg").await,
            Err(EngineError::NoSuchKey)
        ));
        shard
            .delete_bucket("photos")
            .await
            .expect("empty bucket deletes");
        assert!(matches!(
            put(&shard, "photos", "x", b"1").await,
            Err(EngineError::NoSuchBucket(_))
        ));
    });
}

#[test]
fn reads_share_one_decoded_manifest_and_stay_exact() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("bkt").await.expect("create");
        let data = body(20_000, 5);
        put(&shard, "bkt", "k", &data).await.expect("put");
        let first = shard.head_object("bkt", "k").await.unwrap();
        let second = shard.head_object("bkt", "k").await.unwrap();
        // The second read found the manifest decoded in the block cache.
        assert!(Arc::ptr_eq(&first.manifest, &second.manifest));
        // Repeated whole and ranged reads (the chunk index decoded once) stay exact.
        for _ in 0..3 {
            assert_eq!(get(&shard, "bkt", "k", None).await.unwrap(), data);
            let r = ByteRange::FromTo {
                first: 4090,
                last: 12_300,
            };
            assert_eq!(
                get(&shard, "bkt", "k", Some(r)).await.unwrap(),
                &data[4090..12_301]
            );
        }
        // A range inside one chunk, with the index and chunk cached, is answered with
        // its bytes already in the channel (and the channel closed behind them); a
        // range over several chunks is streamed by a task that has not run yet.
        let r = ByteRange::FromTo {
            first: 5000,
            last: 5099,
        };
        let mut out = shard.get_object("bkt", "k", Some(r)).await.unwrap();
        assert_eq!(out.body.try_recv().unwrap().unwrap(), &data[5000..5100]);
        assert!(matches!(
            out.body.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        ));
        let mut out = shard.get_object("bkt", "k", None).await.unwrap();
        assert!(matches!(
            out.body.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty)
        ));
        assert_eq!(collect(out.body).await.unwrap(), data);
        // An overwrite is a new manifest: reads see it, not the kept one.
        let data2 = body(9_000, 6);
        let info2 = put(&shard, "bkt", "k", &data2).await.expect("overwrite");
        let third = shard.head_object("bkt", "k").await.unwrap();
        assert_eq!(third.manifest_cid, info2.manifest_cid);
        assert_eq!(third.manifest.size, 9_000);
        assert_eq!(get(&shard, "bkt", "k", None).await.unwrap(), data2);
    });
}

#[test]
fn empty_object_has_no_body_and_ranges_on_it_fail() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("b-1").await.unwrap();
        let info = put(&shard, "b-1", "empty", b"").await.unwrap();
        assert_eq!(info.manifest.etag, "d41d8cd98f00b204e9800998ecf8427e");
        assert!(info.manifest.body.is_none());
        assert_eq!(get(&shard, "b-1", "empty", None).await.unwrap(), b"");
        assert!(matches!(
            get(&shard, "b-1", "empty", Some(ByteRange::From { first: 0 })).await,
            Err(EngineError::InvalidRange { size: 0 })
        ));
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("bkt").await.unwrap();
        let head_before = shard.head("bkt").unwrap();
        let data = body(5000, 1);
        let wrong_md5 = PutOptions {
            content_md5: Some([0; 16]),
            ..PutOptions::default()
        };
        let r = shard
            .put_object("bkt", "k", wrong_md5, body_of(&data))
            .await;
        assert!(matches!(r, Err(EngineError::BadDigest)));
        let short = PutOptions {
            content_length: Some(6000),
            ..PutOptions::default()
        };
        let r = shard.put_object("bkt", "k", short, body_of(&data)).await;
        assert!(matches!(
            r,
            Err(EngineError::IncompleteBody {
                got: 5000,
                expected: 6000
            })
        ));
        let long = PutOptions {
            content_length: Some(100),
            ..PutOptions::default()
        };
        let r = shard.put_object("bkt", "k", long, body_of(&data)).await;
        assert!(matches!(r, Err(EngineError::EntityTooLarge { .. })));
        let sha = PutOptions {
            content_sha256: Some([7; 32]),
            ..PutOptions::default()
        };
        let r = shard.put_object("bkt", "k", sha, body_of(&data)).await;
        assert!(matches!(r, Err(EngineError::Sha256Mismatch)));
        let (tx, rx) = engine::body_channel();
        tx.try_send(Ok(bytes::Bytes::from_static(b"partial")))
            .unwrap();
        tx.try_send(Err(EngineError::Body("client went away".into())))
            .unwrap();
        let r = shard
            .put_object("bkt", "k", PutOptions::default(), rx)
            .await;
        assert!(matches!(r, Err(EngineError::Body(_))));
        let long_key = "k".repeat(1025);
        assert!(matches!(
            put(&shard, "bkt", &long_key, b"x").await,
            Err(EngineError::InvalidKey(_))
        ));
        assert!(matches!(
            put(&shard, "bkt", "a\0b", b"x").await,
            Err(EngineError::InvalidKey(_))
        ));
        assert!(matches!(
            shard.create_bucket("Bad_Name").await,
            Err(EngineError::InvalidBucketName { .. })
        ));
        assert_eq!(
            shard.head("bkt").unwrap(),
            head_before,
            "no commit happened"
        );
        assert!(matches!(
            shard.head_object("bkt", "k").await,
            Err(EngineError::NoSuchKey)
        ));
        // The bucket is empty and deletable; a non-empty one is not.
        put(&shard, "bkt", "real", b"data").await.unwrap();
        assert!(matches!(
            shard.delete_bucket("bkt").await,
            Err(EngineError::BucketNotEmpty(_))
        ));
    });
}

#[test]
fn list_pages_with_prefix_delimiter_and_markers() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("lst").await.unwrap();
        let keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"];
        for k in keys {
            put(&shard, "lst", k, k.as_bytes()).await.unwrap();
        }
        let page = shard
            .list_objects(
                "lst",
                ListRequest {
                    max_keys: 1000,
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(got, keys);
        assert_eq!(page.objects[2].size, 1);
        assert!(!page.truncated);
        // Delimiter: prefixes count once; a page ending in a prefix resumes after it.
        let req = |after: Option<String>| ListRequest {
            delimiter: Some("/".into()),
            start_after: after,
            max_keys: 2,
            ..ListRequest::default()
        };
        let p1 = shard.list_objects("lst", req(None)).await.unwrap();
        assert_eq!(p1.common_prefixes, ["a/"]);
        assert_eq!(
            p1.objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert!(p1.truncated);
        assert_eq!(p1.next_marker.as_deref(), Some("b"));
        let p2 = shard
            .list_objects("lst", req(p1.next_marker))
            .await
            .unwrap();
        assert_eq!(p2.common_prefixes, ["c/"]);
        assert_eq!(
            p2.objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["d"]
        );
        assert!(!p2.truncated);
        let p = shard
            .list_objects(
                "lst",
                ListRequest {
                    prefix: "c/".into(),
                    max_keys: 10,
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(p.objects.len(), 2);
    });
}

#[test]
fn copy_reuses_chunks_and_writes_no_body_bytes() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("src").await.unwrap();
        shard.create_bucket("dst").await.unwrap();
        let data = body(50_000, 9);
        let src = put(&shard, "src", "o", &data).await.unwrap();
        let blocks_before = shard.stats().blocks;
        let copy = shard
            .copy_object("src", "o", "dst", "o2", None)
            .await
            .unwrap();
        assert_eq!(copy.manifest.body, src.manifest.body, "same chunk index");
        assert_eq!(copy.manifest.etag, src.manifest.etag);
        // Only the new manifest, the changed tree nodes and a commit were written.
        assert!(shard.stats().blocks - blocks_before <= 4);
        assert_eq!(get(&shard, "dst", "o2", None).await.unwrap(), data);
        let replaced = PutOptions {
            headers: ObjectHeaders {
                content_type: Some("text/plain".into()),
                ..ObjectHeaders::default()
            },
            ..PutOptions::default()
        };
        let c2 = shard
            .copy_object("src", "o", "src", "o", Some(replaced))
            .await
            .unwrap();
        assert_eq!(
            c2.manifest.headers.content_type.as_deref(),
            Some("text/plain")
        );
        assert_eq!(shard.verify_object("src", "o").await.unwrap(), 50_000);
    });
}

#[test]
fn identical_bodies_are_stored_once() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("dup").await.unwrap();
        let data = body(40_000, 5);
        put(&shard, "dup", "one", &data).await.unwrap();
        let blocks_after_first = shard.stats().blocks;
        put(&shard, "dup", "two", &data).await.unwrap();
        // A manifest, the tree's changed nodes and a commit: no chunk, no chunk index.
        let added = shard.stats().blocks - blocks_after_first;
        assert!(added <= 4, "second copy added {added} blocks");
    });
}

#[test]
fn acknowledged_objects_survive_clean_restart() {
    let disk = SimDisk::new();
    let catalog = Arc::new(MemoryCatalog::new());
    let mut expect = Vec::new();
    block_on(async {
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("keep").await.unwrap();
        for i in 0..50 {
            let data = body(i * 300, i as u8);
            put(&shard, "keep", &format!("k{i:03}"), &data)
                .await
                .unwrap();
            expect.push(data);
        }
        shard.delete_object("keep", "k007").await.unwrap();
        shard.close().await.unwrap();
    });
    block_on(async {
        let shard = open_shard(&disk, &catalog, small_config()).await;
        for (i, data) in expect.iter().enumerate() {
            let r = get(&shard, "keep", &format!("k{i:03}"), None).await;
            if i == 7 {
                assert!(matches!(r, Err(EngineError::NoSuchKey)));
            } else {
                assert_eq!(&r.unwrap(), data);
            }
        }
    });
}

#[test]
fn conditional_puts_are_checked_in_the_shard() {
    use engine::PutCondition;
    let disk = SimDisk::new();
    let catalog = Arc::new(MemoryCatalog::new());
    block_on(async {
        let shard = open_shard(&disk, &catalog, small_config()).await;
        shard.create_bucket("cond").await.unwrap();
        let when = |c: PutCondition| PutOptions {
            condition: Some(c),
            ..PutOptions::default()
        };
        let put_if = |key: &'static str, data: Vec<u8>, c: PutCondition| {
            let shard = shard.clone();
            async move { shard.put_object("cond", key, when(c), body_of(&data)).await }
        };
        // If-None-Match: * creates once, then refuses.
        let first = put_if("k", b"one".to_vec(), PutCondition::IfNoneMatchAny)
            .await
            .unwrap();
        let again = put_if("k", b"two".to_vec(), PutCondition::IfNoneMatchAny).await;
        assert_eq!(again.unwrap_err(), EngineError::PreconditionFailed);
        assert_eq!(get(&shard, "cond", "k", None).await.unwrap(), b"one");
        // If-Match: only the current ETag wins; a missing key is NoSuchKey.
        let stale = put_if("k", b"x".to_vec(), PutCondition::IfMatch("0".repeat(32))).await;
        assert_eq!(stale.unwrap_err(), EngineError::PreconditionFailed);
        let etag = first.manifest.etag.clone();
        put_if("k", b"three".to_vec(), PutCondition::IfMatch(etag.clone()))
            .await
            .unwrap();
        assert_eq!(get(&shard, "cond", "k", None).await.unwrap(), b"three");
        let gone = put_if("none", b"x".to_vec(), PutCondition::IfMatch(etag)).await;
        assert_eq!(gone.unwrap_err(), EngineError::NoSuchKey);
        // Racing creators in one group commit: exactly one wins.
        let racers: Vec<_> = (0..8u8)
            .map(|i| put_if("race", vec![i; 10], PutCondition::IfNoneMatchAny))
            .collect();
        let mut won = 0;
        for r in futures_join_all(racers).await {
            match r {
                Ok(_) => won += 1,
                Err(e) => assert_eq!(e, EngineError::PreconditionFailed),
            }
        }
        assert_eq!(won, 1, "exactly one racing If-None-Match: * write may win");
    });
}

/// Runs futures concurrently on the shard's executor and collects their results.
async fn futures_join_all<F: std::future::Future + 'static>(fs: Vec<F>) -> Vec<F::Output>
where
    F::Output: 'static,
{
    let handles: Vec<_> = fs.into_iter().map(monoio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}
