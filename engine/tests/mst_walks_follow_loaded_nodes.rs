//! Once a tree's nodes are loaded, a GET and a walk follow the links' pointers: they do
//! not look each node up in the node cache again (a lookup per level is a cache miss
//! each on a large table).

use cid::Cid;
use engine::block::{MemoryBlocks, cid_raw};
use engine::mst::{Mst, MstError, Node, NodeCid, NodeLoader, NodeStore, Walker};
use std::ops::Bound;
use std::sync::Arc;

/// Counts the lookups that reach the store.
struct Counting {
    store: NodeStore<MemoryBlocks>,
    loads: usize,
}

impl NodeLoader for Counting {
    fn load_node(&mut self, cid: &NodeCid, height: Option<u8>) -> Result<Arc<Node>, MstError> {
        self.loads += 1;
        self.store.load_node(cid, height)
    }

    fn keep_node(&mut self, cid: NodeCid, node: Arc<Node>) {
        self.store.keep_node(cid, node);
    }

    fn forget_node(&mut self, cid: &NodeCid) {
        self.store.forget_node(cid);
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("dir{}/object-{i:05}", i % 7).into_bytes()
}

fn value(i: u32) -> Cid {
    cid_raw(&i.to_be_bytes())
}

/// A tree of `n` keys, committed and reopened from its blocks with a cold cache.
fn reopened(n: u32) -> (Mst, Counting) {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 26);
    let mut tree = Mst::new();
    for i in 0..n {
        tree.insert(&key(i), value(i), &mut nodes).unwrap();
    }
    let mut written = MemoryBlocks::new();
    let root = tree.commit(&mut nodes, &mut written);
    let mut loader = Counting {
        store: NodeStore::new(written, 1 << 26),
        loads: 0,
    };
    let tree = Mst::open(&root, &mut loader).unwrap();
    (tree, loader)
}

#[test]
fn gets_after_the_first_look_nothing_up() {
    let n = 3000;
    let (tree, mut nodes) = reopened(n);
    for i in 0..n {
        assert_eq!(tree.get(&key(i), &mut nodes).unwrap(), Some(value(i)));
    }
    let first = nodes.loads;
    assert!(first > 0, "the cold tree had to load its nodes");
    for i in 0..n {
        assert_eq!(tree.get(&key(i), &mut nodes).unwrap(), Some(value(i)));
        assert_eq!(tree.get(b"absent/key", &mut nodes).unwrap(), None);
    }
    assert_eq!(nodes.loads, first, "a second round of GETs looked nodes up");
}

#[test]
fn walks_after_the_first_look_nothing_up() {
    let n = 3000;
    let (tree, mut nodes) = reopened(n);
    let walk = |nodes: &mut Counting, start: Bound<&[u8]>| {
        let mut w = Walker::new(&tree, start);
        let mut count = 0;
        while w.next_entry(nodes).unwrap().is_some() {
            count += 1;
        }
        count
    };
    assert_eq!(walk(&mut nodes, Bound::Unbounded), n as usize);
    let first = nodes.loads;
    assert!(first > 0);
    assert_eq!(walk(&mut nodes, Bound::Unbounded), n as usize);
    let from = key(1234);
    let after = (0..n).filter(|i| key(*i) > from).count();
    assert_eq!(walk(&mut nodes, Bound::Excluded(&from)), after);
    assert_eq!(nodes.loads, first, "a second walk looked nodes up");
}
