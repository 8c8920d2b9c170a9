//! The public MST vectors (`tests/vectors/mst/`, atproto's interop set and ours; see its README):
//! key heights, common prefixes, every known-root map, every commit-proof before/after
//! root, and the DAG-CBOR data-model fixtures through our encoder.

use cid::Cid;
use engine::block::{MemoryBlocks, cid_dag_cbor};
use engine::cbor;
use engine::mst::{self, Mst, MstError, NodeStore};
use ipld_core::ipld::Ipld;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn vectors() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mst"))
}

fn load_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(vectors().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cid(s: &str) -> Cid {
    Cid::try_from(s).unwrap()
}

/// Builds a tree by inserting `pairs` in order, commits it, and returns the root.
fn root_of(pairs: &[(Vec<u8>, Cid)]) -> Result<Cid, MstError> {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 20);
    let mut tree = Mst::new();
    for (k, v) in pairs {
        tree.insert(k, *v, &mut nodes)?;
    }
    let mut sink = MemoryBlocks::new();
    let root = tree.commit(&mut nodes, &mut sink);
    // The committed blocks form a tree that passes the strict whole-tree checks.
    let mut seen = 0;
    mst::verify_tree(&root, &sink, &mut |_, _| seen += 1).unwrap();
    assert_eq!(seen, pairs.len());
    Ok(root)
}

#[test]
fn key_heights() {
    let cases = load_json("interop/mst/key_heights.json");
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let key = c["key"].as_str().unwrap();
        let want = c["height"].as_u64().unwrap();
        assert_eq!(u64::from(mst::key_height(key.as_bytes())), want, "{key:?}");
    }
}

#[test]
fn example_keys_carry_their_height() {
    let text = std::fs::read_to_string(vectors().join("interop/mst/example_keys.txt")).unwrap();
    let mut n = 0;
    for key in text.lines().filter(|l| !l.is_empty()) {
        let want = key.as_bytes()[1] - b'0';
        assert_eq!(mst::key_height(key.as_bytes()), want, "{key}");
        n += 1;
    }
    assert_eq!(n, 156);
}

#[test]
fn common_prefixes() {
    let cases = load_json("interop/mst/common_prefix.json");
    for c in cases.as_array().unwrap() {
        let (l, r) = (c["left"].as_str().unwrap(), c["right"].as_str().unwrap());
        let want = c["len"].as_u64().unwrap() as usize;
        assert_eq!(
            mst::key::common_prefix_len(l.as_bytes(), r.as_bytes()),
            want,
            "{l:?} {r:?}"
        );
    }
}

#[test]
fn known_roots() {
    let cases = load_json("known-roots.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 25);
    let mut rejected = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let pairs: Vec<(Vec<u8>, Cid)> = c["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().as_bytes().to_vec(),
                    cid(p[1].as_str().unwrap()),
                )
            })
            .collect();
        let want = cid(c["root"].as_str().unwrap());
        let valid = pairs.iter().all(|(k, _)| mst::validate_key(k).is_ok());
        if !valid {
            // `tricky-non-atproto-keys` holds "" and a NUL: refused, not built.
            assert_eq!(name, "tricky-non-atproto-keys");
            assert!(
                matches!(root_of(&pairs), Err(MstError::InvalidKey(_))),
                "{name}"
            );
            rejected += 1;
            continue;
        }
        assert_eq!(root_of(&pairs).unwrap(), want, "{name}: sorted order");
        let mut reversed = pairs.clone();
        reversed.reverse();
        assert_eq!(root_of(&reversed).unwrap(), want, "{name}: reverse order");
    }
    assert_eq!(rejected, 1);
}

#[test]
fn tricky_keys_without_the_invalid_ones_build_the_bytewise_tree() {
    // The valid keys of the tricky vector exercise a prefix split inside a UTF-8
    // character (coöperative / coüperative share 3 bytes).
    let leaf = cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454");
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 20);
    let mut tree = Mst::new();
    for k in ["coöperative", "coüperative"] {
        tree.insert(k.as_bytes(), leaf, &mut nodes).unwrap();
    }
    let mut sink = Vec::new();
    tree.commit(&mut nodes, &mut sink);
    let root_bytes = &sink.last().unwrap().1;
    // The second entry's prefix length is 3 bytes and its suffix starts at 0xBC.
    let second_k = [0x61, b'k', 0x49, 0xbc];
    assert!(
        root_bytes.windows(4).any(|w| w == second_k),
        "{root_bytes:x?}"
    );
}

#[test]
fn commit_proofs_before_and_after() {
    let cases = load_json("interop/firehose/commit-proof-fixtures.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let name = c["comment"].as_str().unwrap();
        let leaf = cid(c["leafValue"].as_str().unwrap());
        let strs = |f: &str| -> Vec<String> {
            c[f].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let (keys, adds, dels) = (strs("keys"), strs("adds"), strs("dels"));

        let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 20);
        let mut tree = Mst::new();
        for k in &keys {
            tree.insert(k.as_bytes(), leaf, &mut nodes).unwrap();
        }
        let mut blocks = MemoryBlocks::new();
        let before = tree.commit(&mut nodes, &mut blocks);
        assert_eq!(
            before,
            cid(c["rootBeforeCommit"].as_str().unwrap()),
            "{name}: before"
        );

        // Apply the commit incrementally, on a tree reopened from its stored blocks.
        let mut nodes = NodeStore::new(blocks, 1 << 20);
        let mut tree = Mst::open(&before, &mut nodes).unwrap();
        for k in &adds {
            assert_eq!(tree.insert(k.as_bytes(), leaf, &mut nodes).unwrap(), None);
        }
        for k in &dels {
            assert_eq!(tree.remove(k.as_bytes(), &mut nodes).unwrap(), Some(leaf));
        }
        let mut new_blocks = Vec::new();
        let after = tree.commit(&mut nodes, &mut new_blocks);
        assert_eq!(
            after,
            cid(c["rootAfterCommit"].as_str().unwrap()),
            "{name}: after"
        );

        // Only changed nodes were written, and each proof block is among the nodes of
        // the new tree (written now or already stored).
        let proof: Vec<Cid> = strs("blocksInProof").iter().map(|s| cid(s)).collect();
        for (written, _) in &new_blocks {
            assert!(
                nodes.source().get(written).is_none(),
                "{name}: rewrote {written}"
            );
        }
        for p in &proof {
            let known = new_blocks.iter().any(|(c, _)| c == p) || nodes.source().get(p).is_some();
            assert!(known, "{name}: proof block {p} not in the tree");
        }
    }
}

// ---------------------------------------------------------------------------------------
// DAG-CBOR data-model fixtures

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == ch).unwrap() as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn json_to_ipld(v: &Value) -> Ipld {
    match v {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => Ipld::Integer(i128::from(n.as_i64().unwrap())),
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(a) => Ipld::List(a.iter().map(json_to_ipld).collect()),
        Value::Object(o) => {
            if o.len() == 1 {
                if let Some(Value::String(l)) = o.get("$link") {
                    return Ipld::Link(cid(l));
                }
                if let Some(Value::String(b)) = o.get("$bytes") {
                    return Ipld::Bytes(base64_decode(b));
                }
            }
            Ipld::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), json_to_ipld(v)))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
    }
}

#[test]
fn data_model_fixtures_through_our_encoder() {
    let cases = load_json("interop/data-model/data-model-fixtures.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let want_bytes = base64_decode(c["cbor_base64"].as_str().unwrap());
        let want_cid = cid(c["cid"].as_str().unwrap());
        let value = json_to_ipld(&c["json"]);
        let mut ours = Vec::new();
        cbor::encode_ipld(&value, &mut ours);
        assert_eq!(ours, want_bytes, "{}", c["cid"]);
        assert_eq!(cid_dag_cbor(&ours), want_cid);
        // Our strict reader accepts the fixture and gives back the same value.
        assert_eq!(cbor::decode_ipld(&want_bytes).unwrap(), value);
        // The independent encoder agrees for generic maps.
        let theirs = serde_ipld_dagcbor::to_vec(&value).unwrap();
        assert_eq!(theirs, want_bytes);
    }
}

/// The check of the DAG-CBOR library: does serde_ipld_dagcbor emit canonical map
/// order for every shape our formats use? Structs declared out of order, keys of
/// different lengths (length-first order), generic maps and keyed unions all come out
/// canonical, byte-identical to our writer. Our formats still go through our own writer
/// (one allocation-free pass, links written without serde), and this test keeps the two
/// in agreement.
#[test]
fn serde_dagcbor_emits_canonical_order_for_our_shapes() {
    #[derive(serde::Serialize)]
    struct DeclaredOutOfOrder {
        version: u64,
        l: Option<u8>,
        cs: u64,
        e: Vec<u8>,
    }
    let v = DeclaredOutOfOrder {
        version: 1,
        l: None,
        cs: 7,
        e: vec![],
    };
    let theirs = serde_ipld_dagcbor::to_vec(&v).unwrap();
    // canonical: "e", "l" (length 1), then "cs", then "version"
    let want = [
        0xa4, 0x61, b'e', 0x80, 0x61, b'l', 0xf6, 0x62, b'c', b's', 0x07, 0x67, b'v', b'e', b'r',
        b's', b'i', b'o', b'n', 0x01,
    ];
    assert_eq!(theirs, want);
    assert!(cbor::decode_ipld(&theirs).is_ok());

    let mut generic = BTreeMap::new();
    for k in ["bucket", "aa", "b", "seq", "prev", "root", "time"] {
        generic.insert(k.to_owned(), Ipld::Integer(1));
    }
    let keyed_union = Ipld::Map(BTreeMap::from([(
        "/objectmanifest/1".to_owned(),
        Ipld::Map(generic.clone()),
    )]));
    for value in [Ipld::Map(generic), keyed_union] {
        let mut ours = Vec::new();
        cbor::encode_ipld(&value, &mut ours);
        assert_eq!(serde_ipld_dagcbor::to_vec(&value).unwrap(), ours);
    }
}
