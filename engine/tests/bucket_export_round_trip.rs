//! A bucket exported as one CAR file: read block for block by `iroh-car`, its tree
//! walked by an independent reader (generic DAG-CBOR decoding, not the engine's MST
//! code), imported into a fresh data directory with every object, header and listing
//! identical and the same root; the same state always exports to the same bytes; a
//! damaged file is refused whole, naming the object, and `verify` finds damage on disk.

use bytes::Bytes;
use cid::Cid;
use engine::archive::{CheckOptions, History, ProblemKind};
use engine::format::ObjectHeaders;
use engine::{Engine, EngineConfig, EngineError, IoMode, ListRequest, PutOptions, ShardConfig};
use ipld_core::ipld::Ipld;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        cores: 1,
        pin_cores: false,
        io: IoMode::Auto,
        shard: ShardConfig {
            seal_bytes: 2 << 20,
            // Small chunks: the 5 MB object needs an interior chunk index block.
            chunk_bytes: 1024,
            ..ShardConfig::default()
        },
        ..EngineConfig::new(dir)
    }
}

fn body(n: usize, seed: u64) -> Bytes {
    Bytes::from(engine::testing::pseudo_random_bytes(n, seed))
}

/// The bucket: 300 small objects (a tree of several levels), empty and odd sizes, one
/// with 5,000 chunks, headers and metadata, and a same-shard copy sharing chunks.
async fn fill(e: &Engine, bucket: &str) {
    e.create_bucket(bucket).await.unwrap();
    for i in 0..300u64 {
        let key = format!("dir{}/obj-{i:04}", i % 7);
        e.put_bytes(
            bucket,
            &key,
            PutOptions::default(),
            body((i * 37 % 3000) as usize, i),
        )
        .await
        .unwrap();
    }
    let mut opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("image/png".into()),
            cache_control: Some("max-age=60".into()),
            ..ObjectHeaders::default()
        },
        want_sha256: true,
        ..PutOptions::default()
    };
    opts.headers.meta.insert("colour".into(), "blue".into());
    e.put_bytes(bucket, "big/five-mb", opts, body(5_000_000, 99))
        .await
        .unwrap();
    e.put_bytes(bucket, "empty", PutOptions::default(), Bytes::new())
        .await
        .unwrap();
    e.copy_object(bucket, "big/five-mb", bucket, "big/copy", None)
        .await
        .unwrap();
    e.delete_object(bucket, "dir0/obj-0000").await.unwrap();
}

async fn export(e: &Engine, bucket: &str, history: History) -> Result<Vec<u8>, EngineError> {
    let (head, blocks) = e.export_bucket(bucket, history).await?;
    let (forward, mut rx) = engine::car_bytes(&head, blocks);
    let task = tokio::spawn(forward);
    let mut out = Vec::new();
    while let Some(p) = rx.recv().await {
        out.extend_from_slice(&p?);
    }
    task.await.unwrap();
    Ok(out)
}

async fn import(
    e: &Engine,
    bucket: &str,
    car: &[u8],
) -> Result<engine::archive::ImportReport, EngineError> {
    let (tx, rx) = engine::body_channel();
    let data = Bytes::copy_from_slice(car);
    let feed = tokio::spawn(async move {
        for piece in data.chunks(100_000) {
            if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                return;
            }
        }
    });
    let r = e.import_bucket(bucket, rx).await;
    feed.await.unwrap();
    r
}

/// Every key's manifest CID, size and body, read through the engine's S3 operations.
async fn contents(e: &Engine, bucket: &str) -> BTreeMap<String, (Cid, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let req = ListRequest {
            start_after: after.clone(),
            max_keys: 1000,
            ..ListRequest::default()
        };
        let page = e.list_objects(bucket, req).await.unwrap();
        for o in &page.objects {
            let info = e.head_object(bucket, &o.key).await.unwrap();
            let mut got = e.get_object(bucket, &o.key, None).await.unwrap();
            let mut data = Vec::new();
            while let Some(p) = got.body.recv().await {
                data.extend_from_slice(&p.unwrap());
            }
            assert_eq!(o.size, data.len() as u64);
            out.insert(o.key.clone(), (info.manifest_cid, data));
        }
        if !page.truncated {
            return out;
        }
        after = page.next_marker;
    }
}

async fn read_with_iroh_car(car: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let mut reader = iroh_car::CarReader::new(car).await.unwrap();
    let roots = reader.header().roots().to_vec();
    let mut out = Vec::new();
    while let Some(b) = reader.next_block().await.unwrap() {
        out.push(b);
    }
    (roots, out)
}

fn map<'a>(v: &'a Ipld, what: &str) -> &'a BTreeMap<String, Ipld> {
    match v {
        Ipld::Map(m) => m,
        other => panic!("{what} is not a map: {other:?}"),
    }
}

/// The atproto MST height of a key: leading zero bit pairs of its SHA-256.
fn height(key: &[u8]) -> u32 {
    let d = Sha256::digest(key);
    let mut zeros = 0;
    for b in d {
        if b == 0 {
            zeros += 8;
            continue;
        }
        zeros += b.leading_zeros();
        break;
    }
    zeros / 2
}

/// An MST reader written from the spec alone: decodes nodes as generic IPLD, rebuilds
/// keys from prefix lengths, checks order and heights, and returns (key, value) pairs.
fn walk_mst(blocks: &HashMap<Cid, Vec<u8>>, cid: &Cid, out: &mut Vec<(Vec<u8>, Cid)>) -> u32 {
    let node: Ipld = serde_ipld_dagcbor::from_slice(&blocks[cid]).unwrap();
    let node = map(&node, "node");
    let mut h = None;
    let visit = |link: &Ipld, out: &mut Vec<(Vec<u8>, Cid)>| {
        if let Ipld::Link(c) = link {
            walk_mst(blocks, c, out)
        } else {
            assert_eq!(link, &Ipld::Null);
            u32::MAX
        }
    };
    let left_h = visit(&node["l"], out);
    let Ipld::List(entries) = &node["e"] else {
        panic!("e is not a list")
    };
    let mut prev: Vec<u8> = Vec::new();
    for e in entries {
        let e = map(e, "entry");
        let (Ipld::Integer(p), Ipld::Bytes(k), Ipld::Link(v)) = (&e["p"], &e["k"], &e["v"]) else {
            panic!("bad entry {e:?}")
        };
        let mut key = prev[..*p as usize].to_vec();
        key.extend_from_slice(k);
        assert!(key > prev || prev.is_empty());
        let kh = height(&key);
        assert_eq!(*h.get_or_insert(kh), kh, "keys of one node share a height");
        out.push((key.clone(), *v));
        let right_h = visit(&e["t"], out);
        assert!(right_h == u32::MAX || right_h + 1 == kh);
        prev = key;
    }
    let h = h.unwrap_or(left_h.wrapping_add(1));
    assert!(left_h == u32::MAX || left_h + 1 == h);
    h
}

#[tokio::test(flavor = "current_thread")]
async fn export_import_round_trip_keeps_everything() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = Engine::open(config(src_dir.path())).unwrap();
    fill(&src, "photos").await;
    let head = src.bucket_head("photos").await.unwrap();

    let car = export(&src, "photos", History::Count(0)).await.unwrap();
    assert_eq!(
        car,
        export(&src, "photos", History::Count(0)).await.unwrap()
    );

    // iroh-car reads it block for block; each block hashes to its CID, none repeats.
    let (roots, blocks) = read_with_iroh_car(&car).await;
    assert_eq!(roots, vec![head.commit]);
    let mut by_cid = HashMap::new();
    for (cid, b) in &blocks {
        let digest: [u8; 32] = Sha256::digest(b).into();
        assert_eq!(cid.hash().digest(), digest);
        assert!(by_cid.insert(*cid, b.clone()).is_none(), "{cid} repeated");
    }
    assert_eq!(blocks[0].0, head.commit, "the head commit comes first");

    // The independent reader finds exactly the engine's keys and manifests.
    let commit: Ipld = serde_ipld_dagcbor::from_slice(&by_cid[&head.commit]).unwrap();
    let Ipld::Link(root) = &map(&map(&commit, "commit")["/commit/1"], "commit")["root"] else {
        panic!("commit root is not a link")
    };
    assert_eq!(*root, head.root);
    let mut pairs = Vec::new();
    walk_mst(&by_cid, root, &mut pairs);
    let before = contents(&src, "photos").await;
    let listed: Vec<(Vec<u8>, Cid)> = before
        .iter()
        .map(|(k, (m, _))| (k.as_bytes().to_vec(), *m))
        .collect();
    assert_eq!(pairs, listed);
    assert_eq!(pairs.len(), 302);

    // Imported into a fresh data directory: identical objects, same root.
    let dst = Engine::open(config(dst_dir.path())).unwrap();
    let report = import(&dst, "photos", &car).await.unwrap();
    assert_eq!(report.head.root, head.root);
    assert_eq!(report.imported_commit, head.commit);
    assert_eq!(report.head.seq, head.seq + 1);
    assert_eq!(report.blocks, blocks.len() as u64);
    assert_eq!(report.check.objects, 302);
    assert_eq!(contents(&dst, "photos").await, before);

    // It survives a restart, verifies clean, and a second import under another name
    // on the same node stores nothing new.
    dst.shutdown().await.unwrap();
    drop(dst);
    let dst = Engine::open(config(dst_dir.path())).unwrap();
    assert_eq!(dst.bucket_head("photos").await.unwrap(), report.head);
    assert_eq!(contents(&dst, "photos").await, before);
    let v = dst
        .verify_bucket("photos", CheckOptions::full(History::Count(0)))
        .await
        .unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(v.objects, 302);
    let again = import(&dst, "photos-2", &car).await.unwrap();
    assert_eq!(again.blocks_already_stored, again.blocks);
    assert_eq!(
        import(&dst, "photos", &car).await.unwrap_err(),
        EngineError::BucketAlreadyExists("photos".into())
    );

    // With history: the previous commit and its tree come too, and import keeps them.
    let with_history = export(&src, "photos", History::Count(3)).await.unwrap();
    let (_, hblocks) = read_with_iroh_car(&with_history).await;
    assert!(hblocks.len() > blocks.len());
    let r = import(&dst, "history", &with_history).await.unwrap();
    assert_eq!(r.check.commits, 4);
    assert_eq!(contents(&dst, "history").await, before);
}

/// The frames of a CAR file: (offset, frame length, CID, block offset, block length).
fn frames(car: &[u8]) -> Vec<(usize, usize, Cid, usize, usize)> {
    let (_, mut at) = engine::segment::frame::read_header(car).unwrap();
    let mut out = Vec::new();
    while at < car.len() {
        let f = engine::segment::frame::read_frame(&car[at..]).unwrap();
        out.push((at, f.len, f.cid, at + f.block_offset, f.block.len()));
        at += f.len;
    }
    out
}

fn refusal(e: EngineError) -> String {
    match e {
        EngineError::ImportRefused(why) => why,
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_damaged_file_is_refused_whole_naming_the_object() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Engine::open(config(src_dir.path())).unwrap();
    fill(&src, "photos").await;
    let car = export(&src, "photos", History::Count(0)).await.unwrap();
    let fr = frames(&car);
    let codec_of = |c: &Cid| c.codec();
    // The manifest of "empty" and the first chunk of "big/five-mb" (after its manifest).
    let find_manifest = |key: &str| {
        fr.iter()
            .find(|f| {
                let b = &car[f.3..f.3 + f.4];
                codec_of(&f.2) == 0x71
                    && b.windows(key.len()).any(|w| w == key.as_bytes())
                    && b.starts_with(b"\xa1\x71/objectmanifest/1")
            })
            .copied()
            .unwrap()
    };
    // "big/copy" sorts first: its manifest is followed by the chunks it shares with
    // "big/five-mb" (each block is written once).
    let manifest = find_manifest("big/copy");
    let chunk = fr
        .iter()
        .skip_while(|f| f.0 <= manifest.0)
        .find(|f| codec_of(&f.2) == 0x55)
        .copied()
        .unwrap();
    let node = fr[1]; // the root node follows the commit

    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Engine::open(config(dst_dir.path())).unwrap();
    let flip = |at: usize| {
        let mut c = car.clone();
        c[at] ^= 0x10;
        c
    };
    // A flipped bit: the frame no longer matches its CID.
    for (f, what) in [
        (&chunk, "chunk"),
        (&manifest, "manifest"),
        (&node, "tree node"),
    ] {
        let why = refusal(
            import(&dst, "copy", &flip(f.3 + f.4 / 2))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            why,
            format!("block {} at byte {} does not match its CID", f.2, f.0),
            "{what}"
        );
    }
    // A missing block: the object it belongs to is named.
    let without = |f: &(usize, usize, Cid, usize, usize)| {
        let mut c = car[..f.0].to_vec();
        c.extend_from_slice(&car[f.0 + f.1..]);
        c
    };
    let why = refusal(import(&dst, "copy", &without(&chunk)).await.unwrap_err());
    assert!(
        why.starts_with(&format!(
            "the file is damaged: missing chunk at bytes 0..1024 {} of object \"big/copy\"",
            chunk.2
        )),
        "{why}"
    );
    let why = refusal(import(&dst, "copy", &without(&manifest)).await.unwrap_err());
    assert!(
        why.starts_with(&format!(
            "the file is damaged: missing manifest {} of object \"big/copy\"",
            manifest.2
        )),
        "{why}"
    );
    let why = refusal(import(&dst, "copy", &without(&node)).await.unwrap_err());
    assert!(
        why.contains(&format!("missing tree node {}", node.2)),
        "{why}"
    );
    // A file cut short, anywhere.
    for cut in [5, car.len() / 3, car.len() - 1] {
        let why = refusal(import(&dst, "copy", &car[..cut]).await.unwrap_err());
        assert!(
            why.contains("truncated") || why.contains("ends inside"),
            "{cut}: {why}"
        );
    }
    // A forged header: a root that is not a commit.
    let mut forged = Vec::new();
    engine::segment::frame::write_header(&mut forged, &[chunk.2]);
    let (_, header_len) = engine::segment::frame::read_header(&car).unwrap();
    forged.extend_from_slice(&car[header_len..]);
    let why = refusal(import(&dst, "copy", &forged).await.unwrap_err());
    assert!(why.contains("invalid commit"), "{why}");
    // Nothing of any of them became visible.
    assert!(dst.list_buckets().await.unwrap().is_empty());
    assert!(matches!(
        dst.head_bucket("copy").await,
        Err(EngineError::NoSuchBucket(_))
    ));
    // And the intact file still imports.
    import(&dst, "copy", &car).await.unwrap();
    assert_eq!(contents(&dst, "copy").await, contents(&src, "photos").await);
}

/// Offsets in the data directory's segment files where `block` is stored.
fn find_on_disk(dir: &Path, block: &[u8]) -> Vec<(std::path::PathBuf, usize)> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).unwrap().flatten() {
        if !shard.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "car") {
                let bytes = std::fs::read(f.path()).unwrap();
                if let Some(at) = bytes.windows(block.len()).position(|w| w == block) {
                    out.push((f.path(), at));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn verify_names_the_objects_of_damaged_blocks_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).unwrap();
    fill(&e, "photos").await;
    let car = export(&e, "photos", History::Count(0)).await.unwrap();
    let clean = e
        .verify_bucket("photos", CheckOptions::full(History::Count(0)))
        .await
        .unwrap();
    assert!(clean.is_ok(), "{:?}", clean.problems);
    assert_eq!(clean.objects, 302);
    e.shutdown().await.unwrap();
    drop(e);

    // Damage one chunk of "dir3/obj-0010" and the manifest of "dir1/obj-0001".
    let fr = frames(&car);
    let owned = |key: &str| {
        fr.iter()
            .position(|f| {
                let b = &car[f.3..f.3 + f.4];
                b.starts_with(b"\xa1\x71/objectmanifest/1")
                    && b.windows(key.len()).any(|w| w == key.as_bytes())
            })
            .unwrap()
    };
    let m10 = owned("dir3/obj-0010");
    let chunk = fr[m10 + 1..].iter().find(|f| f.2.codec() == 0x55).unwrap();
    let manifest = &fr[owned("dir1/obj-0001")];
    for f in [chunk, manifest] {
        let block = &car[f.3..f.3 + f.4];
        let places = find_on_disk(dir.path(), block);
        assert!(!places.is_empty());
        for (path, at) in places {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at + block.len() / 2] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let e = Engine::open(config(dir.path())).unwrap();
    let r = e
        .verify_bucket("photos", CheckOptions::full(History::Count(0)))
        .await
        .unwrap();
    assert_eq!(r.problem_count, 2, "{:?}", r.problems);
    let named: Vec<(ProblemKind, &str, Cid)> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.object.as_deref().unwrap(), p.block))
        .collect();
    assert_eq!(
        named,
        vec![
            (ProblemKind::Corrupt, "dir1/obj-0001", manifest.2),
            (ProblemKind::Corrupt, "dir3/obj-0010", chunk.2),
        ]
    );
    // The rest still checks out, and an export refuses to write a damaged file.
    assert_eq!(r.objects, 302);
    let err = export(&e, "photos", History::Count(0)).await.unwrap_err();
    assert!(err.to_string().contains("dir1/obj-0001"), "{err}");
}
