//! Where MST nodes come from: a bounded cache of decoded nodes in front of a block source.
//!
//! Loading is synchronous. A source that does not have a block answers `Ok(None)`, the
//! operation fails with [`MstError::Missing`] without changing anything, and an async
//! caller fetches the block, hands it to [`NodeStore::insert_block`] and runs the
//! operation again (each retry finds at least one more node cached, so it terminates).

use super::MstError;
use super::node::{DigestHasher, Node, NodeCid, NodeError, decode_node};
use crate::block::{BlockSource, NoBlocks};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Default node cache budget.
pub const DEFAULT_NODE_CACHE_BYTES: usize = 64 << 20;

#[derive(Debug)]
struct Slot {
    node: Arc<Node>,
    size: usize,
}

/// Most slots the clock hand looks at per insert, so no single insert pays for a long
/// eviction sweep (the cache may overshoot its budget briefly instead).
const MAX_EVICTION_STEPS: usize = 32;

/// A CLOCK cache of decoded nodes, bounded by an estimate of their heap bytes. Every
/// operation is O(1) amortized and no call does unbounded work.
#[derive(Debug)]
pub struct NodeCache {
    map: HashMap<NodeCid, Slot, DigestHasher>,
    clock: VecDeque<NodeCid>,
    bytes: usize,
    capacity_bytes: usize,
    hits: u64,
    misses: u64,
}

/// The cache's tables are made at start for a budget full of nodes about this large
/// (decoded, a node of four entries is ~0.7 KiB): a table that doubles moves every
/// entry at once, a stall of the shard thread.
const PRESIZE_NODE_BYTES: usize = 1024;

impl NodeCache {
    pub fn new(capacity_bytes: usize) -> Self {
        let slots = capacity_bytes / PRESIZE_NODE_BYTES;
        Self {
            map: HashMap::with_capacity_and_hasher(slots, DigestHasher::default()),
            clock: VecDeque::with_capacity(slots),
            bytes: 0,
            capacity_bytes,
            hits: 0,
            misses: 0,
        }
    }

    pub fn get(&mut self, cid: &NodeCid) -> Option<Arc<Node>> {
        match self.map.get_mut(cid) {
            Some(slot) => {
                self.hits += 1;
                slot.node.touched.mark();
                Some(slot.node.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Whether the node is cached (without counting a hit or touching it).
    pub fn contains(&self, cid: &NodeCid) -> bool {
        self.map.contains_key(cid)
    }

    pub fn insert(&mut self, cid: NodeCid, node: Arc<Node>) {
        let size = node.approx_bytes();
        let slot = Slot { node, size };
        match self.map.insert(cid, slot) {
            Some(old) => self.bytes -= old.size,
            None => self.clock.push_back(cid),
        }
        self.bytes += size;
        self.evict();
    }

    fn evict(&mut self) {
        for _ in 0..MAX_EVICTION_STEPS {
            if self.bytes <= self.capacity_bytes {
                return;
            }
            let Some(cid) = self.clock.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get_mut(&cid) else {
                continue;
            };
            if slot.node.touched.take() {
                self.clock.push_back(cid);
            } else if let Some(gone) = self.map.remove(&cid) {
                self.bytes -= gone.size;
            }
        }
    }

    /// Drops a node. Its clock slot goes stale and is skipped (or compacted away).
    pub fn remove(&mut self, cid: &NodeCid) {
        if let Some(gone) = self.map.remove(cid) {
            self.bytes -= gone.size;
        }
        // Keep the clock from filling with stale slots when removals keep the cache under
        // budget (the hand only moves when it is over).
        if self.clock.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.clock.retain(|c| map.contains_key(c));
        }
    }

    /// Nodes held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Estimated heap bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// (hits, misses) since creation.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// Loads nodes by CID for the tree operations.
pub trait NodeLoader {
    /// The node `cid`, decoded with the height its parent implies (`None` for a root).
    fn load_node(&mut self, cid: &NodeCid, height: Option<u8>) -> Result<Arc<Node>, MstError>;
    /// Keeps a node just written by a commit.
    fn keep_node(&mut self, cid: NodeCid, node: Arc<Node>);
    /// A hint that a committed change replaced this node: it can leave the cache.
    fn forget_node(&mut self, _cid: &NodeCid) {}
}

/// A node cache over a block source.
#[derive(Debug)]
pub struct NodeStore<S = NoBlocks> {
    source: S,
    cache: NodeCache,
    /// Verified blocks handed over by the caller, not yet decoded.
    fetched: HashMap<NodeCid, Vec<u8>, DigestHasher>,
}

impl<S: BlockSource> NodeStore<S> {
    pub fn new(source: S, cache_bytes: usize) -> Self {
        Self {
            source,
            cache: NodeCache::new(cache_bytes),
            fetched: HashMap::default(),
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    pub fn cache(&self) -> &NodeCache {
        &self.cache
    }

    /// Hands over a node block the caller fetched after a [`MstError::Missing`]. It is
    /// checked against its CID now and decoded, at the height the tree needs, when the
    /// retried operation reaches it.
    pub fn insert_block(&mut self, cid: &NodeCid, bytes: Vec<u8>) -> Result<(), MstError> {
        if NodeCid::of(&bytes) != *cid {
            return Err(MstError::HashMismatch(*cid));
        }
        self.fetched.insert(*cid, bytes);
        Ok(())
    }

    /// A handed-over block not yet decoded.
    pub fn fetched_block(&self, cid: &NodeCid) -> Option<&[u8]> {
        self.fetched.get(cid).map(Vec::as_slice)
    }

    /// Whether a node is at hand: cached, or handed over and not yet decoded.
    pub fn has_node(&self, cid: &NodeCid) -> bool {
        self.cache.contains(cid) || self.fetched.contains_key(cid)
    }

    /// Drops handed-over blocks no operation decoded (read ahead, then not needed), so
    /// undecoded blocks never pile up outside the bounded cache.
    pub fn discard_fetched(&mut self, cids: &[NodeCid]) {
        for cid in cids {
            self.fetched.remove(cid);
        }
    }
}

fn bad_node(cid: NodeCid, err: NodeError) -> MstError {
    MstError::BadNode { cid, err }
}

impl<S: BlockSource> NodeLoader for NodeStore<S> {
    fn load_node(&mut self, cid: &NodeCid, height: Option<u8>) -> Result<Arc<Node>, MstError> {
        if let Some(node) = self.cache.get(cid) {
            if let Some(h) = height
                && node.height != h
            {
                return Err(MstError::Corrupt(
                    "cached node reached at a different height",
                ));
            }
            return Ok(node);
        }
        let bytes = match self.fetched.remove(cid) {
            Some(b) => b,
            None => {
                let b = self
                    .source
                    .get_block(&cid.to_cid())
                    .map_err(MstError::Source)?;
                let b = b.ok_or(MstError::Missing(*cid))?;
                if NodeCid::of(&b) != *cid {
                    return Err(MstError::HashMismatch(*cid));
                }
                b
            }
        };
        let node = Arc::new(decode_node(&bytes, height).map_err(|e| bad_node(*cid, e))?);
        self.cache.insert(*cid, node.clone());
        Ok(node)
    }

    fn keep_node(&mut self, cid: NodeCid, node: Arc<Node>) {
        self.cache.insert(cid, node);
    }

    fn forget_node(&mut self, cid: &NodeCid) {
        self.cache.remove(cid);
    }
}
