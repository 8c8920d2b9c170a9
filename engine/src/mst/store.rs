//! Where MST nodes come from: a bounded cache of decoded nodes in front of a block source.
//!
//! Loading is synchronous. A source that does not have a block answers `Ok(None)`, the
//! operation fails with [`MstError::Missing`] without changing anything, and an async
//! caller fetches the block, hands it to [`NodeStore::insert_block`] and runs the
//! operation again (each retry finds at least one more node cached, so it terminates).

use super::node::{DigestHasher, Node, NodeCid, NodeError, decode_node};
use super::MstError;
use crate::block::{BlockSource, NoBlocks};
use std::collections::HashMap;
use std::sync::Arc;

/// Default node cache budget.
pub const DEFAULT_NODE_CACHE_BYTES: usize = 64 << 20;

type NodeMap = HashMap<NodeCid, (Arc<Node>, usize), DigestHasher>;

/// A two-generation cache: hits in the old generation move to the new one; when the new
/// generation fills half the budget it becomes the old one and the old one is dropped.
/// O(1) per operation and close to LRU for the access pattern of tree paths.
#[derive(Debug)]
pub struct NodeCache {
    young: NodeMap,
    old: NodeMap,
    young_bytes: usize,
    capacity_bytes: usize,
    hits: u64,
    misses: u64,
}

impl NodeCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            young: HashMap::default(),
            old: HashMap::default(),
            young_bytes: 0,
            capacity_bytes,
            hits: 0,
            misses: 0,
        }
    }

    pub fn get(&mut self, cid: &NodeCid) -> Option<Arc<Node>> {
        if let Some((node, _)) = self.young.get(cid) {
            self.hits += 1;
            return Some(node.clone());
        }
        if let Some((node, size)) = self.old.remove(cid) {
            self.hits += 1;
            self.insert_sized(*cid, node.clone(), size);
            return Some(node);
        }
        self.misses += 1;
        None
    }

    pub fn insert(&mut self, cid: NodeCid, node: Arc<Node>) {
        let size = node.approx_bytes();
        self.insert_sized(cid, node, size);
    }

    fn insert_sized(&mut self, cid: NodeCid, node: Arc<Node>, size: usize) {
        if self.young.insert(cid, (node, size)).is_none() {
            self.young_bytes += size;
        }
        if self.young_bytes > self.capacity_bytes / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
    }

    /// Nodes held now.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
}

fn bad_node(cid: NodeCid, err: NodeError) -> MstError {
    MstError::BadNode { cid, err }
}

impl<S: BlockSource> NodeLoader for NodeStore<S> {
    fn load_node(&mut self, cid: &NodeCid, height: Option<u8>) -> Result<Arc<Node>, MstError> {
        if let Some(node) = self.cache.get(cid) {
            if let Some(h) = height {
                if node.height != h {
                    return Err(MstError::Corrupt("cached node reached at a different height"));
                }
            }
            return Ok(node);
        }
        let bytes = match self.fetched.remove(cid) {
            Some(b) => b,
            None => {
                let b = self.source.get_block(&cid.to_cid()).map_err(MstError::Source)?;
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
}
