//! Every decoder of untrusted bytes returns `Ok` or `Err` on any input: random bytes, and
//! valid encodings with random damage (flips, truncations, insertions). A decode that
//! succeeds must be canonical: encoding the result gives back the input.

use engine::block::{MemoryBlocks, cid_dag_cbor, cid_raw};
use engine::cbor;
use engine::format::{
    Checksum, ChecksumAlgorithm, ChecksumType, ChunkIndex, Commit, ObjectHeaders, ObjectManifest,
    PartBody, Run, UploadTemplate,
};
use engine::mst::{Mst, NodeStore, decode_node, encode_node};
use engine::segment::{
    Frames, Plane, SegmentId, SegmentIndex, read_frame, read_header, write_frame,
};
use proptest::prelude::*;

/// Runs every decoder on `bytes`; checks canonical round trips where decoding succeeds.
fn decode_all(bytes: &[u8]) {
    if let Ok(v) = cbor::decode_ipld(bytes) {
        let mut again = Vec::new();
        cbor::encode_ipld(&v, &mut again);
        assert_eq!(again, bytes, "generic DAG-CBOR round trip");
    }
    for h in [None, Some(0), Some(1), Some(5)] {
        if let Ok(n) = decode_node(bytes, h) {
            assert_eq!(encode_node(&n), bytes, "node round trip");
        }
    }
    if let Ok(m) = ObjectManifest::decode(bytes) {
        assert_eq!(m.encode(), bytes, "manifest round trip");
    }
    if let Ok(c) = ChunkIndex::decode(bytes) {
        assert_eq!(c.encode(), bytes, "chunk index round trip");
        let (o, n) = c.span();
        let _ = c.locate(o, o.saturating_add(n));
    }
    if let Ok(c) = Commit::decode(bytes) {
        assert_eq!(c.encode(), bytes, "commit round trip");
    }
    if let Ok(p) = PartBody::decode(bytes) {
        assert_eq!(p.encode(), bytes, "part round trip");
    }
    if let Ok(t) = UploadTemplate::decode(bytes) {
        assert_eq!(t.encode(), bytes, "upload template round trip");
    }
    let _ = read_frame(bytes);
    let _ = read_header(bytes);
    for f in Frames::new(bytes) {
        let _ = f;
    }
    if let Ok(i) = SegmentIndex::decode(bytes) {
        assert_eq!(i.encode(), bytes, "segment index round trip");
    }
    let _ = SegmentIndex::from_car(bytes);
}

/// Valid encodings of every format, to be damaged.
fn seeds() -> Vec<Vec<u8>> {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 20);
    let mut tree = Mst::new();
    for i in 0..60 {
        tree.insert(format!("k/{i}").as_bytes(), cid_raw(&[i]), &mut nodes)
            .unwrap();
    }
    let mut out: Vec<(cid::Cid, Vec<u8>)> = Vec::new();
    let root = tree.commit(&mut nodes, &mut out);
    let mut seeds: Vec<Vec<u8>> = out.iter().map(|(_, b)| b.clone()).collect();
    let idx = ChunkIndex::Leaf(vec![Run {
        offset: 0,
        len: 9,
        chunk_size: 4,
        chunks: vec![cid_raw(b"a"), cid_raw(b"b"), cid_raw(b"c")],
    }]);
    seeds.push(idx.encode());
    let m = ObjectManifest {
        key: "k".into(),
        size: 9,
        etag: "e".into(),
        md5: [1; 16],
        sha256: Some([2; 32]),
        mtime_ms: 3,
        headers: ObjectHeaders {
            content_type: Some("t".into()),
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: Some("c".into()),
            expires: None,
            website_redirect: None,
            meta: [("m".to_owned(), "v".to_owned())].into(),
        },
        checksum: None,
        body: Some(cid_dag_cbor(&idx.encode())),
        parts: Some(vec![4, 5]),
        upload_id: Some("u1".into()),
    };
    seeds.push(m.encode());
    let mut t = m.clone();
    (t.size, t.body, t.parts) = (0, None, None);
    seeds.push(
        UploadTemplate {
            manifest: t,
            checksum: Some((ChecksumAlgorithm::Crc32, ChecksumType::FullObject)),
        }
        .encode(),
    );
    let ChunkIndex::Leaf(runs) = idx.clone() else {
        unreachable!()
    };
    seeds.push(
        PartBody {
            runs,
            checksum: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32,
                kind: ChecksumType::FullObject,
                value: vec![1, 2, 3, 4],
            }),
        }
        .encode(),
    );
    seeds.push(
        Commit {
            bucket: "b".into(),
            root,
            prev: None,
            seq: 1,
            time_ms: 4,
        }
        .encode(),
    );
    let id = SegmentId {
        plane: Plane::Meta,
        shard: 1,
        seq: 2,
    };
    let mut car = id.header();
    for (c, b) in out.iter().take(4) {
        write_frame(&mut car, c, b);
    }
    seeds.push(SegmentIndex::from_car(&car).unwrap().encode());
    seeds.push(car);
    seeds
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Damage::Insert(i, x)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

fn apply(mut b: Vec<u8>, d: &Damage) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    match *d {
        Damage::Flip(i, x) => {
            let i = i % b.len();
            b[i] ^= x;
        }
        Damage::Truncate(i) => b.truncate(i % b.len()),
        Damage::Insert(i, x) => b.insert(i % (b.len() + 1), x),
        Damage::Remove(i) => {
            b.remove(i % b.len());
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn damaged_valid_encodings(which in any::<prop::sample::Index>(), ds in prop::collection::vec(damage(), 1..4)) {
        let seeds = seeds();
        let mut b = which.get(&seeds).clone();
        for d in &ds {
            b = apply(b, d);
        }
        decode_all(&b);
    }
}

#[test]
fn seeds_decode() {
    // The seeds themselves are valid, so the damage tests start from real encodings.
    let seeds = seeds();
    assert!(seeds.len() > 10);
    for s in &seeds {
        decode_all(s);
    }
}
