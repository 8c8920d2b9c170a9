//! The strict node reader rejects every case of `docs/format.md` §1.7, one test each.

use cid::Cid;
use engine::block::{CODEC_DAG_CBOR, MemoryBlocks, cid_dag_cbor, cid_from_sha256, cid_raw};
use engine::cbor;
use engine::mst::{self, MstError, NodeError, decode_node};

// Keys of known height (from the interop example keys).
const H0_A: &str = "A0/374913";
const H0_C: &str = "C0/451630";
const H0_E: &str = "E0/670489";
const H1_B: &str = "B1/986427";
const H1_F: &str = "F1/085263";

fn leaf() -> Cid {
    Cid::try_from("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454").unwrap()
}

struct E {
    k: Vec<u8>,
    p: u64,
    t: Option<Cid>,
    v: Cid,
}

fn e(k: &str, p: u64) -> E {
    E {
        k: k.as_bytes().to_vec(),
        p,
        t: None,
        v: leaf(),
    }
}

/// Encodes a node exactly as given (no prefix computation, no checks).
fn raw_node(entries: &[E], l: Option<Cid>) -> Vec<u8> {
    let mut b = Vec::new();
    cbor::write_map(&mut b, 2);
    cbor::write_text(&mut b, "e");
    cbor::write_array(&mut b, entries.len());
    for en in entries {
        cbor::write_map(&mut b, 4);
        cbor::write_text(&mut b, "k");
        cbor::write_bytes(&mut b, &en.k);
        cbor::write_text(&mut b, "p");
        cbor::write_uint(&mut b, en.p);
        cbor::write_text(&mut b, "t");
        cbor::write_opt_link(&mut b, en.t.as_ref());
        cbor::write_text(&mut b, "v");
        cbor::write_link(&mut b, &en.v);
    }
    cbor::write_text(&mut b, "l");
    cbor::write_opt_link(&mut b, l.as_ref());
    b
}

fn rejects(bytes: &[u8], height: Option<u8>) -> NodeError {
    decode_node(bytes, height).expect_err("must be rejected")
}

fn is_cbor(err: &NodeError) -> bool {
    matches!(err, NodeError::Cbor(_))
}

#[test]
fn well_formed_node_is_accepted_and_round_trips() {
    let bytes = raw_node(&[e(H0_A, 0), e(H0_C, 0)], None);
    let node = decode_node(&bytes, None).unwrap();
    assert_eq!(node.entries.len(), 2);
    assert_eq!(mst::encode_node(&node), bytes);
}

// --- map shape and CBOR types ------------------------------------------------------------

#[test]
fn node_map_with_an_extra_key() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    b[0] = 0xa3; // map(3)
    b.extend_from_slice(&[0x61, b'x', 0x00]);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn node_map_without_l() {
    let mut b = vec![0xa1, 0x61, b'e', 0x80];
    assert!(is_cbor(&rejects(&b, None)));
    b[0] = 0xa2;
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn node_map_keys_in_wrong_order() {
    let b = [0xa2, 0x61, b'l', 0xf6, 0x61, b'e', 0x80];
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn node_e_is_not_an_array() {
    let b = [0xa2, 0x61, b'e', 0xa0, 0x61, b'l', 0xf6];
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn node_l_is_not_a_link_or_null() {
    let b = [0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0x40];
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn entry_with_an_extra_key() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.iter().position(|&x| x == 0xa4).unwrap();
    b[at] = 0xa5;
    let end = b.len() - 3; // before "l": null
    b.splice(end..end, [0x61, b'x', 0x00]);
    assert!(is_cbor(&rejects(&b, None)));
}

/// The e/l wire form cannot place two child links side by side: every `t` follows a key.
/// The closest shape, a TS-style "tree entry" holding a link but no key and value, is an
/// entry without `k` and `v`, and is refused.
#[test]
fn entry_that_is_only_a_link_adjacent_to_another() {
    let child = cid_dag_cbor(b"child");
    let mut b = vec![0xa2, 0x61, b'e', 0x81, 0xa1, 0x61, b't'];
    cbor::write_link(&mut b, &child);
    b.extend_from_slice(&[0x61, b'l']);
    cbor::write_link(&mut b, &child);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn entry_key_as_text_instead_of_bytes() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.windows(2).position(|w| w == [0x61, b'k']).unwrap() + 2;
    b[at] = 0x60 | (b[at] & 0x1f); // byte string head -> text string head
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn entry_prefix_negative() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.windows(2).position(|w| w == [0x61, b'p']).unwrap() + 2;
    b[at] = 0x20; // -1
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn entry_t_not_a_link_or_null() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.windows(2).position(|w| w == [0x61, b't']).unwrap() + 2;
    b[at] = 0x05;
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn entry_v_not_a_link() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.windows(2).position(|w| w == [0x61, b'v']).unwrap() + 2;
    b.truncate(at);
    b.extend_from_slice(&[0xf6, 0x61, b'l', 0xf6]);
    assert!(is_cbor(&rejects(&b, None)));
}

// --- canonical CBOR ---------------------------------------------------------------------

#[test]
fn non_shortest_integer_for_p() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    let at = b.windows(2).position(|w| w == [0x61, b'p']).unwrap() + 2;
    b.splice(at..at + 1, [0x18, 0x00]);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn indefinite_length_entry_array() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    b[3] = 0x9f; // array(*) in place of array(1)
    let end = b.len() - 3;
    b.insert(end, 0xff);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn trailing_bytes_after_the_node() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    b.push(0x00);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn value_cid_not_in_canonical_binary_form() {
    let mut b = raw_node(&[e(H0_A, 0)], None);
    // The value link: d8 2a 58 25 00 01 71 ...; re-encode the codec varint 0x71 as 0xf1 0x00.
    let at = b
        .windows(7)
        .position(|w| w == [0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x71])
        .unwrap();
    b[at + 3] = 0x26;
    b.splice(at + 6..at + 7, [0xf1, 0x00]);
    assert!(is_cbor(&rejects(&b, None)));
}

#[test]
fn value_may_be_any_cid_and_round_trips() {
    let v0 = Cid::try_from("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n").unwrap();
    let raw = cid_raw(b"x");
    let entries = [
        E {
            v: v0,
            ..e(H0_A, 0)
        },
        E {
            v: raw,
            ..e(H0_C, 0)
        },
    ];
    let b = raw_node(&entries, None);
    let node = decode_node(&b, None).unwrap();
    assert_eq!(node.entries[0].value.to_cid(), v0);
    assert_eq!(node.entries[1].value.to_cid(), raw);
    assert_eq!(mst::encode_node(&node), b);
}

// --- prefix compression -----------------------------------------------------------------

#[test]
fn prefix_longer_than_previous_key() {
    let b = raw_node(
        &[
            e(H0_A, 0),
            E {
                k: b"x".to_vec(),
                ..e("", 10)
            },
        ],
        None,
    );
    assert!(matches!(
        rejects(&b, None),
        NodeError::PrefixTooLong { index: 1, p: 10 }
    ));
}

#[test]
fn prefix_not_maximal() {
    // "A0/374913" then "C0/451630" written as p=0 is fine; "A0/374913" then "A0/9"
    // must share 3 bytes, so p=2 with suffix "/9" is a suboptimal prefix.
    let b = raw_node(
        &[
            e("A0/374913", 0),
            E {
                k: b"/9".to_vec(),
                ..e("", 2)
            },
        ],
        None,
    );
    assert!(matches!(
        rejects(&b, None),
        NodeError::PrefixNotMaximal { index: 1 }
    ));
}

#[test]
fn first_entry_with_nonzero_prefix() {
    let b = raw_node(
        &[E {
            k: b"0/374913".to_vec(),
            ..e("", 1)
        }],
        None,
    );
    assert_eq!(rejects(&b, None), NodeError::FirstPrefixNotZero);
}

// --- key order, heights, validity -------------------------------------------------------

#[test]
fn keys_not_strictly_increasing() {
    let equal = raw_node(
        &[
            e(H0_A, 0),
            E {
                k: vec![],
                ..e("", 9)
            },
        ],
        None,
    );
    assert!(matches!(
        rejects(&equal, None),
        NodeError::KeysNotIncreasing { index: 1 }
    ));
    let decreasing = raw_node(&[e(H0_C, 0), e(H0_A, 0)], None);
    assert!(matches!(
        rejects(&decreasing, None),
        NodeError::KeysNotIncreasing { index: 1 }
    ));
}

#[test]
fn keys_of_different_heights_in_one_node() {
    let b = raw_node(&[e(H0_A, 0), e(H1_B, 0)], None);
    assert!(matches!(
        rejects(&b, None),
        NodeError::WrongHeight {
            index: 1,
            got: 1,
            want: 0
        }
    ));
}

#[test]
fn key_height_differs_from_what_the_parent_implies() {
    let b = raw_node(&[e(H0_A, 0)], None);
    assert!(matches!(
        rejects(&b, Some(1)),
        NodeError::WrongHeight {
            index: 0,
            got: 0,
            want: 1
        }
    ));
}

fn bad_key(key: &[u8]) -> NodeError {
    let b = raw_node(
        &[E {
            k: key.to_vec(),
            ..e("", 0)
        }],
        None,
    );
    rejects(&b, None)
}

#[test]
fn key_empty() {
    assert!(matches!(
        bad_key(b""),
        NodeError::BadKey {
            err: mst::KeyError::Empty,
            ..
        }
    ));
}

#[test]
fn key_with_nul() {
    assert!(matches!(
        bad_key(b"a\0b"),
        NodeError::BadKey {
            err: mst::KeyError::Nul,
            ..
        }
    ));
}

#[test]
fn key_not_utf8() {
    assert!(matches!(
        bad_key(&[b'a', 0xc3]),
        NodeError::BadKey {
            err: mst::KeyError::NotUtf8,
            ..
        }
    ));
}

#[test]
fn key_too_long() {
    let err = bad_key(&[b'a'; 1025]);
    assert!(matches!(
        err,
        NodeError::BadKey {
            err: mst::KeyError::TooLong { len: 1025 },
            ..
        }
    ));
}

#[test]
fn too_many_entries() {
    let mut b = vec![0xa2, 0x61, b'e'];
    cbor::write_array(&mut b, 8193);
    b.resize(b.len() + 8193 * 8, 0xa0);
    assert_eq!(rejects(&b, None), NodeError::TooManyEntries(8193));
}

// --- links and shape --------------------------------------------------------------------

#[test]
fn node_link_with_raw_codec() {
    let b = raw_node(
        &[E {
            t: Some(cid_raw(b"x")),
            ..e(H1_B, 0)
        }],
        None,
    );
    assert!(matches!(rejects(&b, None), NodeError::BadNodeLink(_)));
}

#[test]
fn node_link_cidv0() {
    let v0 = Cid::try_from("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n").unwrap();
    let b = raw_node(&[e(H1_B, 0)], Some(v0));
    assert!(matches!(rejects(&b, None), NodeError::BadNodeLink(_)));
}

#[test]
fn node_link_with_another_hash() {
    let mh = multihash::Multihash::<64>::wrap(0x13, &[7u8; 64]).unwrap(); // sha2-512
    let b = raw_node(&[e(H1_B, 0)], Some(Cid::new_v1(CODEC_DAG_CBOR, mh)));
    assert!(matches!(rejects(&b, None), NodeError::BadNodeLink(_)));
}

#[test]
fn height_zero_node_with_a_child() {
    let child = cid_from_sha256(CODEC_DAG_CBOR, [1; 32]);
    let b = raw_node(&[e(H0_A, 0)], Some(child));
    assert_eq!(rejects(&b, None), NodeError::ChildBelowLeaf);
}

#[test]
fn root_that_is_only_a_pointer() {
    let child = cid_from_sha256(CODEC_DAG_CBOR, [1; 32]);
    let b = raw_node(&[], Some(child));
    assert_eq!(rejects(&b, None), NodeError::PointerOnlyRoot);
}

#[test]
fn empty_node_below_the_root() {
    let b = raw_node(&[], None);
    assert_eq!(rejects(&b, Some(0)), NodeError::EmptyNonRoot);
    assert!(
        decode_node(&b, None).is_ok(),
        "the empty tree's root is the one exception"
    );
}

// --- checks across nodes (whole-tree verification) ---------------------------------------

fn store(blocks: &[&[u8]]) -> MemoryBlocks {
    let mut m = MemoryBlocks::new();
    for b in blocks {
        m.insert(cid_dag_cbor(b), b.to_vec());
    }
    m
}

fn verify(root: &[u8], blocks: &MemoryBlocks) -> Result<mst::TreeStats, MstError> {
    mst::verify_tree(&cid_dag_cbor(root), blocks, &mut |_, _| {})
}

#[test]
fn valid_two_level_tree_verifies() {
    let child = raw_node(&[e(H0_A, 0)], None);
    let root = raw_node(&[e(H1_B, 0)], Some(cid_dag_cbor(&child)));
    let stats = verify(&root, &store(&[&root, &child])).unwrap();
    assert_eq!((stats.nodes, stats.entries, stats.height), (2, 2, 1));
}

#[test]
fn child_not_one_level_lower() {
    // Root at height 1 whose child holds a height-1 key.
    let child = raw_node(&[e(H1_B, 0)], None);
    let root = raw_node(&[e(H1_F, 0)], Some(cid_dag_cbor(&child)));
    let err = verify(&root, &store(&[&root, &child])).unwrap_err();
    assert!(
        matches!(
            err,
            MstError::BadNode {
                err: NodeError::WrongHeight { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn child_keys_outside_their_gap() {
    // "E0/…" sorts after "B1/…" but sits in the gap before it.
    let child = raw_node(&[e(H0_E, 0)], None);
    let root = raw_node(&[e(H1_B, 0)], Some(cid_dag_cbor(&child)));
    let err = verify(&root, &store(&[&root, &child])).unwrap_err();
    assert!(matches!(err, MstError::KeyOutsideGap(_)), "{err}");
}

#[test]
fn empty_intermediate_node_without_a_child() {
    let empty = raw_node(&[], None);
    let root = raw_node(&[e(H1_B, 0)], Some(cid_dag_cbor(&empty)));
    let err = verify(&root, &store(&[&root, &empty])).unwrap_err();
    assert!(
        matches!(
            err,
            MstError::BadNode {
                err: NodeError::EmptyNonRoot,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_and_altered_nodes() {
    let child = raw_node(&[e(H0_A, 0)], None);
    let root = raw_node(&[e(H1_B, 0)], Some(cid_dag_cbor(&child)));
    let err = verify(&root, &store(&[&root])).unwrap_err();
    assert!(matches!(err, MstError::Missing(_)), "{err}");
    let mut blocks = store(&[&root]);
    let mut altered = child.clone();
    altered[5] ^= 1;
    blocks.insert(cid_dag_cbor(&child), altered);
    let err = verify(&root, &blocks).unwrap_err();
    assert!(matches!(err, MstError::HashMismatch(_)), "{err}");
}
