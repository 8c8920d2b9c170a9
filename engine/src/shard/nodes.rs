//! MST nodes for a shard's tree operations: fetched from the meta plane when the node
//! cache lacks them. A point lookup fetches the one node it misses; a walk over a key
//! range (LIST) also reads ahead the nodes below it that the walk will need next, so a
//! page of cold nodes costs a few round trips per tree level instead of one per node.

use super::Shard;
use crate::catalog::Catalog;
use crate::error::EngineResult;
use crate::io::Disk;
use crate::mst::node::Link;
use crate::mst::{MstError, NodeCid, NodeStore, decode_node};
use futures_util::{StreamExt, stream};

/// Levels below a missing node that a range walk reads ahead.
const READ_AHEAD_LEVELS: usize = 2;
/// Most nodes read ahead for one missing node (bounds what a walk that stops early has
/// read for nothing).
const READ_AHEAD_NODES: usize = 64;
/// Node reads in flight at once.
const READS_IN_FLIGHT: usize = 32;

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Runs a tree operation, fetching each node it finds missing and retrying.
    pub(crate) async fn with_nodes<T>(
        &self,
        op: impl FnMut(&mut NodeStore) -> Result<T, MstError>,
    ) -> EngineResult<T> {
        self.walk(None, op).await
    }

    /// [`Shard::with_nodes`] for a walk over the keys from `from` on: a missing node is
    /// fetched together with its descendants (to [`READ_AHEAD_LEVELS`]) in gaps that can
    /// hold keys at or after `from`. Read-ahead blocks the walk did not use are dropped
    /// when it ends.
    pub(crate) async fn with_nodes_from<T>(
        &self,
        from: &[u8],
        op: impl FnMut(&mut NodeStore) -> Result<T, MstError>,
    ) -> EngineResult<T> {
        self.walk(Some(from), op).await
    }

    async fn walk<T>(
        &self,
        read_ahead_from: Option<&[u8]>,
        mut op: impl FnMut(&mut NodeStore) -> Result<T, MstError>,
    ) -> EngineResult<T> {
        let mut ahead = Vec::new();
        let result = loop {
            let r = op(&mut self.blocks.nodes.borrow_mut());
            match r {
                Err(MstError::Missing(nc)) => {
                    if let Err(e) = self.fetch_node(nc).await {
                        break Err(e);
                    }
                    if let Some(from) = read_ahead_from {
                        self.read_ahead(nc, from, &mut ahead).await;
                    }
                }
                other => break other.map_err(super::mst_error),
            }
        };
        self.blocks.nodes.borrow_mut().discard_fetched(&ahead);
        result
    }

    async fn fetch_node(&self, nc: NodeCid) -> EngineResult<()> {
        let bytes = self.read_block(&nc.to_cid()).await?;
        self.blocks
            .nodes
            .borrow_mut()
            .insert_block(&nc, bytes.to_vec())
            .map_err(super::mst_error)
    }

    /// Reads the descendants of the (just fetched) node `nc` that a walk from `from`
    /// will visit, level by level, each level's reads concurrently. Best effort: a block
    /// that fails to read or decode is skipped here and reported when the walk needs it.
    async fn read_ahead(&self, nc: NodeCid, from: &[u8], ahead: &mut Vec<NodeCid>) {
        let mut parents = vec![nc];
        let mut budget = READ_AHEAD_NODES;
        for _ in 0..READ_AHEAD_LEVELS {
            let mut level = Vec::new();
            {
                let nodes = self.blocks.nodes.borrow();
                for p in &parents {
                    let Some(bytes) = nodes.fetched_block(p) else {
                        continue;
                    };
                    for c in children_from(bytes, from) {
                        if level.len() < budget && !nodes.has_node(&c) {
                            level.push(c);
                        }
                    }
                }
            }
            if level.is_empty() {
                return;
            }
            budget -= level.len();
            let mut reads = stream::iter(
                level
                    .iter()
                    .map(|c| async move { (*c, self.read_block(&c.to_cid()).await) }),
            )
            .buffer_unordered(READS_IN_FLIGHT);
            parents.clear();
            while let Some((c, bytes)) = reads.next().await {
                let Ok(bytes) = bytes else { continue };
                if self
                    .blocks
                    .nodes
                    .borrow_mut()
                    .insert_block(&c, bytes.to_vec())
                    .is_ok()
                {
                    ahead.push(c);
                    parents.push(c);
                }
            }
        }
    }
}

/// The stored children of an encoded node whose gaps can hold keys at or after `from`
/// (gap `i` holds keys below entry `i`'s key).
fn children_from(bytes: &[u8], from: &[u8]) -> Vec<NodeCid> {
    let Ok(node) = decode_node(bytes, None) else {
        return Vec::new();
    };
    (0..=node.entries.len())
        .filter(|&i| node.entries.get(i).is_none_or(|e| &*e.key > from))
        .filter_map(|i| match node.gap(i) {
            Some(Link::Stored(s)) => Some(s.cid),
            _ => None,
        })
        .collect()
}
