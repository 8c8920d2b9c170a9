//! Golden vectors for every block format: the bytes and CID of fixed examples are
//! committed in `tests/golden/`, and each must encode to exactly those bytes, decode back
//! to the same value, and be canonical by an independent DAG-CBOR implementation.
//! Regenerate after a deliberate format change with `INGOT_UPDATE_GOLDEN=1` (and update
//! `docs/format.md`).

use cid::Cid;
use engine::block::{MemoryBlocks, cid_dag_cbor, cid_raw};
use engine::format::{
    Checksum, ChecksumAlgorithm, ChecksumType, ChunkIndex, Commit, ObjectHeaders, ObjectManifest,
    Run, chunks::ChildIndex,
};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).join(format!("{name}.txt"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Compares `bytes` with the golden file `name` (or writes it when updating).
fn check_golden(name: &str, bytes: &[u8]) {
    let cid = cid_dag_cbor(bytes);
    let text = format!("cid: {cid}\nbytes: {}\n", hex(bytes));
    let path = golden_path(name);
    if std::env::var_os("INGOT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = want.lines();
    let want_cid = lines.next().unwrap().strip_prefix("cid: ").unwrap();
    let want_bytes = unhex(lines.next().unwrap().strip_prefix("bytes: ").unwrap());
    assert_eq!(hex(bytes), hex(&want_bytes), "{name}: bytes");
    assert_eq!(cid.to_string(), want_cid, "{name}: cid");
    // An independent implementation reads the block and writes back the same bytes.
    let value: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(bytes).unwrap();
    assert_eq!(
        serde_ipld_dagcbor::to_vec(&value).unwrap(),
        bytes,
        "{name}: not canonical"
    );
}

fn chunk(data: &[u8]) -> Cid {
    cid_raw(data)
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    Md5::digest(b).into()
}

fn hello_index() -> ChunkIndex {
    ChunkIndex::Leaf(vec![Run {
        offset: 0,
        len: 5,
        chunk_size: 1 << 20,
        chunks: vec![chunk(b"hello")],
    }])
}

fn small_manifest() -> ObjectManifest {
    ObjectManifest {
        key: "photos/2026/cat.jpg".into(),
        size: 5,
        etag: "5d41402abc4b2a76b9719d911017c592".into(),
        md5: md5_of(b"hello"),
        sha256: None,
        mtime_ms: 1_795_305_600_000,
        headers: ObjectHeaders {
            content_type: Some("image/jpeg".into()),
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            website_redirect: None,
            meta: BTreeMap::from([("camera".into(), "x100".into())]),
        },
        checksum: None,
        body: Some(cid_dag_cbor(&hello_index().encode())),
        parts: None,
        upload_id: None,
    }
}

fn full_manifest() -> ObjectManifest {
    let parts_index = multipart_index();
    ObjectManifest {
        key: "coöperative/report 😀.pdf".into(),
        size: 15 << 20,
        etag: "0c78aef83f66abc1fa1e8477f296d394-2".into(),
        md5: md5_of(b"not the body: multipart md5 is of the whole body"),
        sha256: Some([0xab; 32]),
        mtime_ms: 1_795_305_600_123,
        headers: ObjectHeaders {
            content_type: Some("application/pdf".into()),
            content_encoding: Some("gzip".into()),
            content_disposition: Some("attachment; filename=\"report.pdf\"".into()),
            content_language: Some("de-DE".into()),
            cache_control: Some("max-age=3600".into()),
            expires: Some("Thu, 01 Dec 2026 16:00:00 GMT".into()),
            website_redirect: Some("/other".into()),
            meta: BTreeMap::from([
                ("a".into(), "1".into()),
                ("zz".into(), "2".into()),
                ("b".into(), "ünïcode".into()),
            ]),
        },
        checksum: Some(Checksum {
            algorithm: ChecksumAlgorithm::Crc32c,
            kind: ChecksumType::Composite,
            value: vec![0xde, 0xad, 0xbe, 0xef],
        }),
        body: Some(cid_dag_cbor(&parts_index.encode())),
        parts: Some(vec![10 << 20, 5 << 20]),
        upload_id: None,
    }
}

fn empty_manifest() -> ObjectManifest {
    ObjectManifest {
        key: "empty".into(),
        size: 0,
        etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        md5: md5_of(b""),
        body: None,
        headers: ObjectHeaders::default(),
        ..small_manifest()
    }
}

fn multipart_index() -> ChunkIndex {
    let mib = 1u64 << 20;
    let part = |tag: u8, n: usize| (0..n).map(|i| chunk(&[tag, i as u8])).collect::<Vec<_>>();
    ChunkIndex::Leaf(vec![
        Run {
            offset: 0,
            len: 10 * mib,
            chunk_size: 4 * mib,
            chunks: part(1, 3),
        },
        Run {
            offset: 10 * mib,
            len: 5 * mib,
            chunk_size: 4 * mib,
            chunks: part(2, 2),
        },
    ])
}

fn interior_index() -> ChunkIndex {
    ChunkIndex::Interior(vec![
        ChildIndex {
            offset: 0,
            len: 4096 << 20,
            link: cid_dag_cbor(b"leaf one"),
        },
        ChildIndex {
            offset: 4096 << 20,
            len: 7,
            link: cid_dag_cbor(b"leaf two"),
        },
    ])
}

fn first_commit() -> Commit {
    Commit {
        bucket: "my-bucket".into(),
        root: Cid::try_from("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm").unwrap(),
        prev: None,
        seq: 1,
        time_ms: 1_795_305_600_000,
    }
}

fn next_commit() -> Commit {
    Commit {
        root: Cid::try_from("bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu").unwrap(),
        prev: Some(first_commit().cid()),
        seq: 2,
        time_ms: 1_795_305_600_250,
        ..first_commit()
    }
}

#[test]
fn manifests() {
    for (name, m) in [
        ("manifest_small", small_manifest()),
        ("manifest_full", full_manifest()),
        ("manifest_empty_body", empty_manifest()),
    ] {
        let bytes = m.encode();
        check_golden(name, &bytes);
        assert_eq!(ObjectManifest::decode(&bytes).unwrap(), m, "{name}");
        assert_eq!(m.cid(), cid_dag_cbor(&bytes));
    }
}

#[test]
fn chunk_indexes() {
    for (name, idx) in [
        ("chunks_single_part", hello_index()),
        ("chunks_multipart", multipart_index()),
        ("chunks_interior", interior_index()),
    ] {
        let bytes = idx.encode();
        check_golden(name, &bytes);
        assert_eq!(ChunkIndex::decode(&bytes).unwrap(), idx, "{name}");
    }
    // The builder makes the same single-part block.
    let mut blocks = MemoryBlocks::new();
    let root = engine::format::build_chunk_index(
        vec![Run {
            offset: 0,
            len: 5,
            chunk_size: 1 << 20,
            chunks: vec![chunk(b"hello")],
        }],
        &mut blocks,
    );
    assert_eq!(root, Some(cid_dag_cbor(&hello_index().encode())));
}

#[test]
fn commits() {
    for (name, c) in [
        ("commit_first", first_commit()),
        ("commit_next", next_commit()),
    ] {
        let bytes = c.encode();
        check_golden(name, &bytes);
        assert_eq!(Commit::decode(&bytes).unwrap(), c, "{name}");
    }
}

#[test]
fn decoders_refuse_altered_blocks() {
    // Unknown field, missing field, wrong length, non-canonical order, bad links.
    let m = small_manifest().encode();
    let mut wrong_tag = m.clone();
    let at = wrong_tag
        .windows(17)
        .position(|w| w == b"/objectmanifest/1")
        .unwrap();
    wrong_tag[at + 16] = b'2';
    assert!(ObjectManifest::decode(&wrong_tag).is_err());
    assert!(ObjectManifest::decode(&m[..m.len() - 1]).is_err());
    let mut trailing = m.clone();
    trailing.push(0);
    assert!(ObjectManifest::decode(&trailing).is_err());

    let mut bad_md5 = small_manifest();
    bad_md5.body = None; // size 5 without a body
    assert!(ObjectManifest::decode(&bad_md5.encode()).is_err());
    let mut bad_key = small_manifest();
    bad_key.key = "a\0b".into();
    assert!(ObjectManifest::decode(&bad_key.encode()).is_err());
    let mut bad_parts = full_manifest();
    bad_parts.parts = Some(vec![1, 2]);
    assert!(ObjectManifest::decode(&bad_parts.encode()).is_err());
    let mut raw_body = small_manifest();
    raw_body.body = Some(chunk(b"x"));
    assert!(ObjectManifest::decode(&raw_body.encode()).is_err());
    let mut empty_header = small_manifest();
    empty_header.headers.content_type = Some(String::new());
    assert!(ObjectManifest::decode(&empty_header.encode()).is_err());

    let mut c = next_commit();
    c.prev = None; // seq 2 without prev
    assert!(Commit::decode(&c.encode()).is_err());
    let mut c = first_commit();
    c.root = chunk(b"not a node");
    assert!(Commit::decode(&c.encode()).is_err());
    let mut c = first_commit();
    c.seq = 0;
    assert!(Commit::decode(&c.encode()).is_err());
}
