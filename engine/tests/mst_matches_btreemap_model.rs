//! Property tests: the MST against a `BTreeMap` model, and history independence.

use cid::Cid;
use engine::block::{MemoryBlocks, cid_raw};
use engine::mst::{ListItem, ListQuery, Lister, Mst, MstError, NodeCid, NodeStore, Walker};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

type Store = NodeStore<MemoryBlocks>;

fn value(n: u32) -> Cid {
    cid_raw(&n.to_be_bytes())
}

/// Keys from a small alphabet (so prefixes, delimiters and collisions are common), with
/// multi-byte characters, of every length from 1 to 12 characters.
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let chars = prop::sample::select(vec!["a", "b", "c", "/", "-", "ö", "😀", "z", "0"]);
    prop::collection::vec(chars, 1..12).prop_map(|parts| parts.concat().into_bytes())
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, u32),
    Delete(Vec<u8>),
    /// Commit, then reopen the tree from its stored blocks with a cold cache.
    CommitReopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key_strategy(), 0u32..4).prop_map(|(k, v)| Op::Put(k, v)),
        3 => key_strategy().prop_map(Op::Delete),
        1 => Just(Op::CommitReopen),
    ]
}

fn walk_all(tree: &Mst, start: Bound<&[u8]>, nodes: &mut Store) -> Vec<(Vec<u8>, Cid)> {
    let mut w = Walker::new(tree, start);
    let mut out = Vec::new();
    while let Some((k, v)) = w.next_entry(nodes).unwrap() {
        out.push((k.into_vec(), v));
    }
    out
}

/// Root of a tree built from scratch by inserting the sorted pairs.
fn fresh_root(model: &BTreeMap<Vec<u8>, Cid>) -> Cid {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
    let mut t = Mst::new();
    for (k, v) in model {
        t.insert(k, *v, &mut nodes).unwrap();
    }
    t.commit(&mut nodes, &mut MemoryBlocks::new())
}

fn commit_reopen(tree: &mut Mst, nodes: &mut Store) {
    let mut written = MemoryBlocks::new();
    let root = tree.commit(nodes, &mut written);
    let mut blocks = nodes.source().clone();
    for (c, b) in written.iter() {
        blocks.insert(*c, b.to_vec());
    }
    *nodes = NodeStore::new(blocks, 1 << 24);
    *tree = Mst::open(&root, nodes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn ops_agree_with_btreemap(ops in prop::collection::vec(op_strategy(), 1..160)) {
        let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
        let mut tree = Mst::new();
        let mut model: BTreeMap<Vec<u8>, Cid> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Put(k, v) => {
                    let prev = tree.insert(k, value(*v), &mut nodes).unwrap();
                    prop_assert_eq!(prev, model.insert(k.clone(), value(*v)));
                }
                Op::Delete(k) => {
                    let prev = tree.remove(k, &mut nodes).unwrap();
                    prop_assert_eq!(prev, model.remove(k));
                }
                Op::CommitReopen => commit_reopen(&mut tree, &mut nodes),
            }
        }
        for (k, v) in &model {
            prop_assert_eq!(tree.get(k, &mut nodes).unwrap(), Some(*v));
        }
        for op in &ops {
            if let Op::Delete(k) = op {
                prop_assert_eq!(tree.get(k, &mut nodes).unwrap(), model.get(k).copied());
            }
        }
        let walked = walk_all(&tree, Bound::Unbounded, &mut nodes);
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(walked.len(), model.len());
        prop_assert_eq!(walked, want);
        // History independence: the same map built from scratch has the same root.
        let root = tree.commit(&mut nodes, &mut MemoryBlocks::new());
        prop_assert_eq!(root, fresh_root(&model));
    }

    #[test]
    fn same_map_in_any_order_has_one_root(
        keys in prop::collection::btree_set(key_strategy(), 0..120),
        noise in prop::collection::btree_set(key_strategy(), 0..40),
        seed in any::<u64>(),
    ) {
        let model: BTreeMap<Vec<u8>, Cid> =
            keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u32))).collect();
        let want = fresh_root(&model);
        // Shuffle, and interleave keys that are added and removed again.
        let mut order: Vec<&Vec<u8>> = keys.iter().collect();
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
        let mut tree = Mst::new();
        let extra: Vec<&Vec<u8>> = noise.iter().filter(|k| !keys.contains(*k)).collect();
        for (i, k) in order.iter().enumerate() {
            if let Some(n) = extra.get(i) {
                tree.insert(n, value(9999), &mut nodes).unwrap();
            }
            tree.insert(k, value(7777), &mut nodes).unwrap();
            tree.insert(k, model[*k], &mut nodes).unwrap();
            if i % 7 == 3 {
                commit_reopen(&mut tree, &mut nodes);
            }
        }
        for n in &extra {
            tree.insert(n, value(9999), &mut nodes).unwrap();
            prop_assert_eq!(tree.remove(n, &mut nodes).unwrap(), Some(value(9999)));
        }
        prop_assert_eq!(tree.commit(&mut nodes, &mut MemoryBlocks::new()), want);
    }

    #[test]
    fn walk_from_any_bound_matches_range(
        keys in prop::collection::btree_set(key_strategy(), 0..100),
        start in key_strategy(),
        inclusive in any::<bool>(),
    ) {
        let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
        let mut tree = Mst::new();
        for k in &keys {
            tree.insert(k, value(1), &mut nodes).unwrap();
        }
        commit_reopen(&mut tree, &mut nodes);
        let bound = if inclusive { Bound::Included(start.as_slice()) } else { Bound::Excluded(start.as_slice()) };
        let got: Vec<Vec<u8>> = walk_all(&tree, bound, &mut nodes).into_iter().map(|(k, _)| k).collect();
        let want: Vec<Vec<u8>> = keys.range::<[u8], _>((bound, Bound::Unbounded)).cloned().collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn list_pages_match_model(
        keys in prop::collection::btree_set(key_strategy(), 0..100),
        prefix in prop::sample::select(vec!["", "a", "a/", "b", "ö", "😀/"]),
        delimiter in prop::sample::select(vec![None, Some("/"), Some("-"), Some("ö")]),
        max_keys in 1usize..7,
        start_after in prop::option::of(key_strategy()),
    ) {
        let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
        let mut tree = Mst::new();
        for k in &keys {
            tree.insert(k, value(1), &mut nodes).unwrap();
        }
        let want = model_list(&keys, prefix.as_bytes(), delimiter.map(str::as_bytes), start_after.as_deref());
        // Page through with the last marker of each page, as a client does.
        let mut got = Vec::new();
        let mut marker = start_after.clone();
        for _ in 0..=want.len() {
            let q = ListQuery {
                prefix: prefix.as_bytes().to_vec(),
                delimiter: delimiter.map(|d| d.as_bytes().to_vec()),
                start_after: marker.clone(),
                max_keys,
            };
            let page = Lister::new(&tree, q).run(&mut nodes).unwrap();
            prop_assert!(page.items.len() <= max_keys);
            let last = page.items.last().map(|i| i.marker().to_vec());
            got.extend(page.items);
            if !page.truncated {
                break;
            }
            marker = last;
        }
        prop_assert_eq!(got, want);
    }
}

/// S3 listing from first principles: every key after the marker with the prefix; keys
/// whose rest contains the delimiter roll up into one common prefix each, which is only
/// reported if it sorts after the marker.
fn model_list(
    keys: &std::collections::BTreeSet<Vec<u8>>,
    prefix: &[u8],
    delimiter: Option<&[u8]>,
    start_after: Option<&[u8]>,
) -> Vec<ListItem> {
    let mut out: Vec<ListItem> = Vec::new();
    for k in keys {
        if !k.starts_with(prefix) || start_after.is_some_and(|s| k.as_slice() <= s) {
            continue;
        }
        let rest = &k[prefix.len()..];
        let cp = delimiter.and_then(|d| {
            rest.windows(d.len())
                .position(|w| w == d)
                .map(|at| k[..prefix.len() + at + d.len()].to_vec())
        });
        match cp {
            Some(cp) => {
                if start_after.is_some_and(|s| cp.as_slice() <= s) {
                    continue;
                }
                if out.last().map(|i| i.marker()) != Some(cp.as_slice()) {
                    out.push(ListItem::CommonPrefix(cp.into()));
                }
            }
            None => out.push(ListItem::Object {
                key: k.clone().into(),
                value: value(1),
            }),
        }
    }
    out
}

#[test]
fn node_size_limit_refuses_the_write_and_changes_nothing() {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 26);
    let mut tree = Mst::new();
    // 8,192 keys that all have height 0 land in one leaf.
    let height0 = (0u32..)
        .map(|i| format!("k{i:07}"))
        .filter(|k| engine::mst::key_height(k.as_bytes()) == 0);
    let keys: Vec<String> = height0.take(8193).collect();
    for k in &keys[..8192] {
        tree.insert(k.as_bytes(), value(1), &mut nodes).unwrap();
    }
    let before = tree.commit(&mut nodes, &mut MemoryBlocks::new());
    assert_eq!(tree.height(), 0);
    let err = tree
        .insert(keys[8192].as_bytes(), value(1), &mut nodes)
        .unwrap_err();
    assert!(matches!(err, MstError::NodeFull), "{err}");
    assert_eq!(tree.get(keys[8192].as_bytes(), &mut nodes).unwrap(), None);
    assert_eq!(tree.commit(&mut nodes, &mut MemoryBlocks::new()), before);
}

#[test]
fn delete_that_would_merge_past_the_limit_is_refused() {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 26);
    let mut tree = Mst::new();
    let h = |k: &String| engine::mst::key_height(k.as_bytes());
    let below: Vec<String> = (0u32..)
        .map(|i| format!("a{i:07}"))
        .filter(|k| h(k) == 0)
        .take(4100)
        .collect();
    let above: Vec<String> = (0u32..)
        .map(|i| format!("c{i:07}"))
        .filter(|k| h(k) == 0)
        .take(4100)
        .collect();
    let middle = (0u32..)
        .map(|i| format!("b{i}"))
        .find(|k| h(k) == 1)
        .unwrap();
    for k in [&middle].into_iter().chain(&below).chain(&above) {
        tree.insert(k.as_bytes(), value(1), &mut nodes).unwrap();
    }
    let before = tree.commit(&mut nodes, &mut MemoryBlocks::new());
    assert!(matches!(
        tree.remove(middle.as_bytes(), &mut nodes),
        Err(MstError::NodeFull)
    ));
    assert_eq!(
        tree.get(middle.as_bytes(), &mut nodes).unwrap(),
        Some(value(1))
    );
    assert_eq!(tree.commit(&mut nodes, &mut MemoryBlocks::new()), before);
}

#[test]
fn cold_tree_reports_missing_nodes_and_resumes() {
    // Build a tree, then open it over a source that starts empty: each operation fails
    // with Missing until the caller supplies the block, as an async shard would.
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
    let mut tree = Mst::new();
    let keys: Vec<String> = (0..300).map(|i| format!("obj/{i:04}")).collect();
    for k in &keys {
        tree.insert(k.as_bytes(), value(2), &mut nodes).unwrap();
    }
    let mut all = MemoryBlocks::new();
    let root = tree.commit(&mut nodes, &mut all);

    let mut cold = NodeStore::new(engine::block::NoBlocks, 1 << 24);
    let mut fetches = 0;
    let mut supply = |cold: &mut NodeStore<engine::block::NoBlocks>, e: MstError| {
        let MstError::Missing(c) = e else {
            panic!("{e}")
        };
        fetches += 1;
        cold.insert_block(&c, all.get(&c.to_cid()).unwrap().to_vec())
            .unwrap();
    };
    let tree = loop {
        match Mst::open(&root, &mut cold) {
            Ok(t) => break t,
            Err(e) => supply(&mut cold, e),
        }
    };
    let mut w = Walker::new(&tree, Bound::Unbounded);
    let mut seen = Vec::new();
    loop {
        match w.next_entry(&mut cold) {
            Ok(Some((k, _))) => seen.push(String::from_utf8(k.into_vec()).unwrap()),
            Ok(None) => break,
            Err(e) => supply(&mut cold, e),
        }
    }
    assert_eq!(seen, keys);
    // A point lookup and an update on the warm tree need no more fetches.
    let mut tree = tree;
    assert_eq!(tree.get(b"obj/0150", &mut cold).unwrap(), Some(value(2)));
    tree.insert(b"obj/0150", value(3), &mut cold).unwrap();
    assert!(fetches > 10, "{fetches}");
    // A wrong block handed over for a CID is refused.
    let some = NodeCid::of(b"not this");
    assert!(matches!(
        cold.insert_block(&some, b"other".to_vec()),
        Err(MstError::HashMismatch(_))
    ));
}

#[test]
fn replaced_nodes_leave_the_cache_at_commit() {
    // After any mix of inserts, updates and deletes, the cache holds exactly the live
    // tree: superseded path copies are dropped, so they never crowd out live nodes.
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 30);
    let mut tree = Mst::new();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for round in 0..40u32 {
        for _ in 0..50 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let key = format!("k/{}", s % 3000);
            if s.is_multiple_of(5) {
                tree.remove(key.as_bytes(), &mut nodes).unwrap();
            } else {
                tree.insert(key.as_bytes(), value(round), &mut nodes)
                    .unwrap();
            }
        }
        let mut written = Vec::new();
        let root = tree.commit(&mut nodes, &mut written);
        for (c, b) in written {
            nodes.source_mut().insert(c, b);
        }
        let live = engine::mst::verify_tree(&root, nodes.source(), &mut |_, _| {}).unwrap();
        assert_eq!(nodes.cache().len() as u64, live.nodes, "round {round}");
    }
}
