//! Multipart uploads through the engine handle, on real files: parts stream to the
//! bucket's shard, Complete makes one object over the parts' chunks, every error of
//! Complete is its own, uploads survive a restart, and Abort racing Complete loses.

use bytes::Bytes;
use engine::checksum::ChecksumHasher;
use engine::format::{Checksum, ChecksumAlgorithm, ChecksumType, ObjectHeaders};
use engine::{
    ByteRange, CompleteOptions, CompletePart, Engine, EngineConfig, EngineError, IoMode,
    MIN_PART_BYTES, PartInfo, PutOptions, ShardConfig,
};
use md5::Digest as _;
use std::path::Path;

fn config(dir: &Path, cores: usize) -> EngineConfig {
    EngineConfig {
        cores,
        pin_cores: false,
        io: IoMode::Auto,
        shard: ShardConfig {
            seal_bytes: 8 << 20,
            chunk_bytes: 64 << 10,
            ..ShardConfig::default()
        },
        ..EngineConfig::new(dir)
    }
}

fn body(n: usize, seed: u8) -> Bytes {
    Bytes::from(engine::testing::pseudo_random_bytes(n, u64::from(seed)))
}

fn channel_of(data: Bytes) -> engine::BodyReceiver {
    let (tx, rx) = engine::body_channel();
    tokio::spawn(async move {
        let mut at = 0;
        while at < data.len() {
            let end = (at + (100 << 10)).min(data.len());
            if tx.send(Ok(data.slice(at..end))).await.is_err() {
                return;
            }
            at = end;
        }
    });
    rx
}

async fn read(e: &Engine, bucket: &str, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let mut got = e.get_object(bucket, key, range).await.expect("get");
    let mut out = Vec::new();
    while let Some(p) = got.body.recv().await {
        out.extend_from_slice(&p.expect("body piece"));
    }
    out
}

async fn put_part(e: &Engine, b: &str, k: &str, id: &str, n: u32, data: &Bytes) -> PartInfo {
    let opts = PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    };
    e.upload_part(b, k, id, n, opts, channel_of(data.clone()))
        .await
        .expect("upload part")
}

fn named(parts: &[&PartInfo]) -> Vec<CompletePart> {
    parts
        .iter()
        .map(|p| CompletePart {
            part_number: p.part_number,
            etag: format!("\"{}\"", p.etag),
            checksum: None,
        })
        .collect()
}

fn none() -> CompleteOptions {
    CompleteOptions::default()
}

fn with_checksum(c: Checksum) -> CompleteOptions {
    CompleteOptions {
        checksum: Some(c),
        ..CompleteOptions::default()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_complete_into_one_object_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let parts = [body(5 * MIB + 1, 1), body(5 * MIB, 2), body(123, 3)];
    let whole: Vec<u8> = parts.concat();
    let id;
    let p: Vec<PartInfo>;
    {
        let e = Engine::open(config(dir.path(), 1)).expect("start");
        e.create_bucket("mpu").await.unwrap();
        let opts = PutOptions {
            headers: ObjectHeaders {
                content_type: Some("text/x-test".into()),
                ..ObjectHeaders::default()
            },
            ..PutOptions::default()
        };
        id = e
            .create_upload("mpu", "big", &opts, None)
            .await
            .unwrap()
            .upload_id;
        // Part 2 first, and part 1 twice: the second upload replaces the first.
        let mut got = vec![put_part(&e, "mpu", "big", &id, 2, &parts[1]).await];
        put_part(&e, "mpu", "big", &id, 1, &body(6 * MIB, 9)).await;
        got.insert(0, put_part(&e, "mpu", "big", &id, 1, &parts[0]).await);
        got.push(put_part(&e, "mpu", "big", &id, 3, &parts[2]).await);
        assert_eq!(got[0].etag, hex(&md5::Md5::digest(&parts[0])));
        p = got;
        // No shutdown: the parts must be durable because they were acknowledged.
    }
    let e = Engine::open(config(dir.path(), 1)).expect("restart");
    let (up, listed) = e.list_parts("mpu", "big", &id).await.unwrap();
    assert_eq!(up.key, "big");
    assert_eq!(listed, p);
    let info = e
        .complete_upload("mpu", "big", &id, named(&[&p[0], &p[1], &p[2]]), none())
        .await
        .unwrap();
    let m = &info.manifest;
    let md5s: Vec<u8> = p
        .iter()
        .flat_map(|x| {
            (0..16).map(move |i| u8::from_str_radix(&x.etag[2 * i..2 * i + 2], 16).unwrap())
        })
        .collect();
    assert_eq!(m.etag, format!("{}-3", hex(&md5::Md5::digest(&md5s))));
    assert_eq!(m.parts, Some(vec![5 * MIB as u64 + 1, 5 * MIB as u64, 123]));
    assert_eq!(m.headers.content_type.as_deref(), Some("text/x-test"));
    assert_eq!(read(&e, "mpu", "big", None).await, whole);
    // A range across both part boundaries.
    let (first, last) = (5 * MIB as u64 - 10, 10 * MIB as u64 + 5);
    let r = read(&e, "mpu", "big", Some(ByteRange::FromTo { first, last })).await;
    assert_eq!(r, whole[first as usize..=last as usize]);
    assert_eq!(
        e.verify_object("mpu", "big").await.unwrap(),
        whole.len() as u64
    );
    // The upload is gone from listings; Complete again answers with the same object.
    assert!(e.list_uploads("mpu").await.unwrap().is_empty());
    let again = e
        .complete_upload("mpu", "big", &id, named(&[&p[0], &p[1], &p[2]]), none())
        .await
        .unwrap();
    assert_eq!(again.manifest_cid, info.manifest_cid);
    assert_eq!(
        e.abort_upload("mpu", "big", &id).await,
        Err(EngineError::NoSuchUpload)
    );
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_refuses_bad_part_lists_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path(), 1)).expect("start");
    e.create_bucket("mpu").await.unwrap();
    let id = e
        .create_upload("mpu", "k", &PutOptions::default(), None)
        .await
        .unwrap()
        .upload_id;
    let small = put_part(&e, "mpu", "k", &id, 1, &body(1000, 1)).await;
    let big = put_part(&e, "mpu", "k", &id, 2, &body(MIN_PART_BYTES as usize, 2)).await;
    let last = put_part(&e, "mpu", "k", &id, 3, &body(10, 3)).await;
    let complete = |parts| e.complete_upload("mpu", "k", &id, parts, none());
    assert_eq!(
        complete(named(&[&big, &small])).await,
        Err(EngineError::InvalidPartOrder)
    );
    let mut wrong_etag = named(&[&big, &last]);
    wrong_etag[0].etag = "\"00000000000000000000000000000000\"".into();
    assert!(matches!(
        complete(wrong_etag).await,
        Err(EngineError::InvalidPart(_))
    ));
    let mut missing = named(&[&big]);
    missing[0].part_number = 7;
    assert!(matches!(
        complete(missing).await,
        Err(EngineError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(named(&[&small, &big])).await,
        Err(EngineError::EntityTooSmall { part: 1, .. })
    ));
    assert!(matches!(
        e.upload_part(
            "mpu",
            "k",
            &id,
            10_001,
            PutOptions::default(),
            engine::body_channel().1
        )
        .await,
        Err(EngineError::InvalidArgument(_))
    ));
    assert_eq!(
        e.complete_upload("mpu", "other-key", &id, named(&[&big]), none())
            .await
            .map(|_| ()),
        Err(EngineError::NoSuchUpload)
    );
    // Nothing became visible, and the upload still takes a valid Complete.
    assert_eq!(
        e.head_object("mpu", "k").await.map(|_| ()),
        Err(EngineError::NoSuchKey)
    );
    assert_eq!(e.list_uploads("mpu").await.unwrap().len(), 1);
    // A single part may be small: it is the last.
    let info = complete(named(&[&small])).await.unwrap();
    assert_eq!(info.manifest.size, 1000);
    assert_eq!(read(&e, "mpu", "k", None).await, body(1000, 1));
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_racing_complete_loses_or_wins_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(Engine::open(config(dir.path(), 1)).expect("start"));
    e.create_bucket("mpu").await.unwrap();
    let mut completed = 0;
    for round in 0..6 {
        let key = format!("k{round}");
        let id = e
            .create_upload("mpu", &key, &PutOptions::default(), None)
            .await
            .unwrap()
            .upload_id;
        let p = put_part(&e, "mpu", &key, &id, 1, &body(300_000, round)).await;
        let (e1, e2) = (e.clone(), e.clone());
        let (k1, k2, i1, i2) = (key.clone(), key.clone(), id.clone(), id.clone());
        let parts = named(&[&p]);
        let c =
            tokio::spawn(async move { e1.complete_upload("mpu", &k1, &i1, parts, none()).await });
        let a = tokio::spawn(async move { e2.abort_upload("mpu", &k2, &i2).await });
        let (c, a) = (c.await.unwrap(), a.await.unwrap());
        let visible = e.head_object("mpu", &key).await.is_ok();
        match (c, a) {
            (Ok(_), Err(EngineError::NoSuchUpload)) => {
                assert!(visible);
                completed += 1;
            }
            (Err(EngineError::NoSuchUpload), Ok(())) => assert!(!visible),
            other => panic!("complete and abort both won or both lost: {other:?}"),
        }
        assert!(e.list_uploads("mpu").await.unwrap().is_empty());
    }
    eprintln!("{completed} of 6 completes won");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_copies_reuse_chunks_and_cross_shards() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path(), 2)).expect("start");
    // Two buckets on different shards.
    let mut names: [Option<String>; 2] = [None, None];
    for i in 0.. {
        let n = format!("bucket-{i}");
        names[engine::placement_shard(&n, 2) as usize].get_or_insert(n);
        if names.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(a), Some(b)] = names else {
        unreachable!()
    };
    e.create_bucket(&a).await.unwrap();
    e.create_bucket(&b).await.unwrap();
    let src = body(7 * MIB + 333, 5);
    e.put_bytes(&a, "src", PutOptions::default(), src.clone())
        .await
        .unwrap();
    let info = e.head_object(&a, "src").await.unwrap();
    let algo = Some((ChecksumAlgorithm::Crc32c, ChecksumType::FullObject));
    for dst in [&a, &b] {
        let id = e
            .create_upload(dst, "copy", &PutOptions::default(), algo)
            .await
            .unwrap()
            .upload_id;
        // An unaligned range (partial chunks at both ends), then the whole object.
        let range = (12_345u64, 12_345 + 5 * MIB as u64 + 70_000);
        let shard = engine::placement_shard(dst, 2) as usize;
        let written = || {
            e.shard_metrics()[shard]
                .chunk_bytes_written
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = written();
        let p1 = e
            .upload_part_copy(dst, "copy", &id, 1, &a, &info, range)
            .await
            .unwrap();
        let p2 = e
            .upload_part_copy(dst, "copy", &id, 2, &a, &info, (0, src.len() as u64))
            .await
            .unwrap();
        let copied = written() - before;
        if dst == &a {
            // Same shard: only the two partial chunks at the range's ends are new.
            assert!(copied < 2 * (64 << 10), "{copied} bytes written");
        } else {
            assert_eq!(copied, range.1 - range.0 + src.len() as u64);
        }
        let piece = &src[range.0 as usize..range.1 as usize];
        assert_eq!(p1.etag, hex(&md5::Md5::digest(piece)));
        assert_eq!(p2.etag, hex(&md5::Md5::digest(&src)));
        let want_full =
            ChecksumHasher::digest(ChecksumAlgorithm::Crc32c, &[piece, &src[..]].concat());
        let expected = Checksum {
            algorithm: ChecksumAlgorithm::Crc32c,
            kind: ChecksumType::FullObject,
            value: want_full,
        };
        let done = e
            .complete_upload(
                dst,
                "copy",
                &id,
                named(&[&p1, &p2]),
                with_checksum(expected.clone()),
            )
            .await
            .unwrap();
        assert_eq!(done.manifest.checksum, Some(expected));
        assert_eq!(
            read(&e, dst, "copy", None).await,
            [piece, &src[..]].concat()
        );
        e.verify_object(dst, "copy").await.unwrap();
    }
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_checksums_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path(), 1)).expect("start");
    e.create_bucket("mpu").await.unwrap();
    let algo = Some((ChecksumAlgorithm::Sha256, ChecksumType::Composite));
    let id = e
        .create_upload("mpu", "c", &PutOptions::default(), algo)
        .await
        .unwrap()
        .upload_id;
    let (d1, d2) = (body(MIN_PART_BYTES as usize, 1), body(77, 2));
    // No checksum sent with the parts: the engine computes the upload's algorithm.
    let p1 = put_part(&e, "mpu", "c", &id, 1, &d1).await;
    let p2 = put_part(&e, "mpu", "c", &id, 2, &d2).await;
    let c1 = ChecksumHasher::digest(ChecksumAlgorithm::Sha256, &d1);
    let c2 = ChecksumHasher::digest(ChecksumAlgorithm::Sha256, &d2);
    assert_eq!(p1.checksum.as_ref().unwrap().value, c1);
    let mut parts = named(&[&p1, &p2]);
    parts[1].checksum = Some(c1.clone()); // the wrong part's checksum
    assert!(matches!(
        e.complete_upload("mpu", "c", &id, parts.clone(), none())
            .await,
        Err(EngineError::InvalidPart(_))
    ));
    parts[1].checksum = Some(c2.clone());
    let done = e
        .complete_upload("mpu", "c", &id, parts, none())
        .await
        .unwrap();
    let c = done.manifest.checksum.clone().unwrap();
    assert_eq!(c.kind, ChecksumType::Composite);
    assert_eq!(
        c.value,
        ChecksumHasher::digest(ChecksumAlgorithm::Sha256, &[c1, c2].concat())
    );

    // Expiry: only uploads started at or before the cutoff go.
    let old = e
        .create_upload("mpu", "old", &PutOptions::default(), None)
        .await
        .unwrap();
    put_part(&e, "mpu", "old", &old.upload_id, 1, &d2).await;
    assert_eq!(e.expire_uploads(old.created_ms - 1).await.unwrap(), 0);
    assert_eq!(e.expire_uploads(old.created_ms).await.unwrap(), 1);
    assert_eq!(
        e.list_parts("mpu", "old", &old.upload_id).await.map(|_| ()),
        Err(EngineError::NoSuchUpload)
    );
    // Deleting a bucket drops its uploads.
    e.create_bucket("gone").await.unwrap();
    e.create_upload("gone", "x", &PutOptions::default(), None)
        .await
        .unwrap();
    e.delete_bucket("gone").await.unwrap();
    e.create_bucket("gone").await.unwrap();
    assert!(e.list_uploads("gone").await.unwrap().is_empty());
    e.shutdown().await.unwrap();
}
