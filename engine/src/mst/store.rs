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
#[cfg(any(test, feature = "testing"))]
pub const DEFAULT_NODE_CACHE_BYTES: usize = 64 << 20;

#[derive(Debug)]
struct Slot {
    node: Arc<Node>,
    size: usize,
}

/// Most slots the clock hand looks at per insert, so no single insert pays for a long
/// eviction sweep (the cache may overshoot its budget briefly instead).
pub(crate) const MAX_EVICTION_STEPS: usize = 32;
/// Clock slots looked at per removal once stale slots (of removed nodes) make up about
/// half the clock. A removal leaves one stale slot and a step drops one at that share,
/// so four steps bring the clock back under the bound a little at a time. A pass over
/// the whole clock instead (it did that, once per as many removals as live nodes) took
/// 44 ms with 67,000 live nodes and 138 ms with 330,000, a stall of the shard thread
/// every second or so under 4 KiB PUTs.
const SWEEP_STEPS: usize = 4;
/// Stale slots allowed beyond as many as there are live nodes.
const STALE_SLACK: usize = 1024;

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
    /// Slots the clock hand looked at in the last call (tests bound it).
    #[cfg(test)]
    last_steps: usize,
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
            #[cfg(test)]
            last_steps: 0,
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
        #[cfg(test)]
        {
            self.last_steps = 0;
        }
        for _ in 0..MAX_EVICTION_STEPS {
            if self.bytes <= self.capacity_bytes {
                return;
            }
            let Some(cid) = self.clock.pop_front() else {
                return;
            };
            #[cfg(test)]
            {
                self.last_steps += 1;
            }
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

    /// Drops a node. Its clock slot goes stale and is skipped (or swept away).
    pub fn remove(&mut self, cid: &NodeCid) {
        if let Some(gone) = self.map.remove(cid) {
            self.bytes -= gone.size;
        }
        self.sweep();
    }

    /// Keeps the clock from filling with stale slots when removals keep the cache under
    /// budget (the hand moves only when it is over): past twice the live nodes, the hand
    /// drops the stale slots it passes and moves live ones to the back, evicting nothing.
    fn sweep(&mut self) {
        #[cfg(test)]
        {
            self.last_steps = 0;
        }
        if self.clock.len() <= 2 * self.map.len() + STALE_SLACK {
            return;
        }
        for _ in 0..SWEEP_STEPS {
            let Some(cid) = self.clock.pop_front() else {
                return;
            };
            #[cfg(test)]
            {
                self.last_steps += 1;
            }
            if self.map.contains_key(&cid) {
                self.clock.push_back(cid);
            }
        }
    }

    /// Nodes held now.
    #[cfg(any(test, feature = "testing"))]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Estimated heap bytes held.
    #[cfg(any(test, feature = "testing"))]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// (hits, misses) since creation.
    #[cfg(any(test, feature = "testing"))]
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

    #[cfg(any(test, feature = "testing"))]
    pub fn source(&self) -> &S {
        &self.source
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    #[cfg(any(test, feature = "testing"))]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u64) -> NodeCid {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&n.to_le_bytes());
        d[24..].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        NodeCid(d)
    }

    fn node() -> Arc<Node> {
        Arc::new(Node::intermediate(
            1,
            super::super::node::Link::stored(cid(u64::MAX)),
        ))
    }

    #[test]
    fn churn_under_budget_keeps_the_clock_bounded_with_bounded_work_per_call() {
        let mut c = NodeCache::new(1 << 30);
        let live = 50_000u64;
        for n in 0..live {
            c.insert(cid(n), node());
        }
        // A tree under writes: every commit replaces nodes, old and new, all over the
        // tree, with new ones.
        let mut ids: Vec<u64> = (0..live).collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut most_steps = 0;
        let mut longest = 0;
        for n in 0..400_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let gone = ids.swap_remove((x % ids.len() as u64) as usize);
            c.remove(&cid(gone));
            most_steps = most_steps.max(c.last_steps);
            c.insert(cid(live + n), node());
            most_steps = most_steps.max(c.last_steps);
            ids.push(live + n);
            longest = longest.max(c.clock.len());
        }
        assert_eq!(c.len(), live as usize);
        assert!(most_steps <= SWEEP_STEPS, "{most_steps}");
        assert!(longest <= 2 * live as usize + STALE_SLACK + 1, "{longest}");
        // Every live node still has its slot: the hand can reach it.
        let slotted: std::collections::HashSet<_> = c.clock.iter().copied().collect();
        assert!(ids.iter().all(|n| slotted.contains(&cid(*n))));
    }

    #[test]
    fn eviction_over_budget_still_drops_untouched_nodes_first() {
        let per_node = node().approx_bytes();
        let mut c = NodeCache::new(per_node * 100);
        for n in 0..100 {
            c.insert(cid(n), node());
        }
        // Touch the first ten; the next inserts evict untouched ones.
        for n in 0..10 {
            assert!(c.get(&cid(n)).is_some());
        }
        for n in 100..150 {
            c.insert(cid(n), node());
            assert!(c.last_steps <= MAX_EVICTION_STEPS);
        }
        assert!(c.bytes() <= per_node * 100);
        assert!(
            (0..10).all(|n| c.contains(&cid(n))),
            "touched nodes were evicted"
        );
    }
}
