//! Whole-tree verification of untrusted trees (import, cold-tier reads, `verify`): every
//! node is fetched, checked against its CID, strictly decoded, and checked against its
//! place in the tree (`docs/format.md` §1.7).

use super::MstError;
use super::node::{Link, NodeCid, StoredLink, decode_node};
use crate::block::BlockSource;
use cid::Cid;

/// What a verified tree holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeStats {
    pub nodes: u64,
    pub entries: u64,
    pub node_bytes: u64,
    /// Height of the root (0 for the empty tree).
    pub height: u8,
}

/// Verifies the whole tree under `root`, calling `visit(key, value)` for each entry in
/// key order. Fails on the first node that is missing, altered or out of shape.
pub fn verify_tree(
    root: &Cid,
    source: &impl BlockSource,
    visit: &mut dyn FnMut(&[u8], &Cid),
) -> Result<TreeStats, MstError> {
    let nc = NodeCid::from_cid(root).ok_or(MstError::BadRootLink(Box::new(*root)))?;
    let mut stats = TreeStats::default();
    let height = check(nc, None, None, None, source, visit, &mut stats)?;
    stats.height = height;
    Ok(stats)
}

fn fetch(cid: NodeCid, source: &impl BlockSource) -> Result<Vec<u8>, MstError> {
    let bytes = source
        .get_block(&cid.to_cid())
        .map_err(MstError::Source)?
        .ok_or(MstError::Missing(cid))?;
    if NodeCid::of(&bytes) != cid {
        return Err(MstError::HashMismatch(cid));
    }
    Ok(bytes)
}

/// Checks the subtree `cid`, whose keys must lie strictly between `lo` and `hi`.
fn check(
    cid: NodeCid,
    height: Option<u8>,
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    source: &impl BlockSource,
    visit: &mut dyn FnMut(&[u8], &Cid),
    stats: &mut TreeStats,
) -> Result<u8, MstError> {
    let bytes = fetch(cid, source)?;
    let node = decode_node(&bytes, height).map_err(|err| MstError::BadNode { cid, err })?;
    stats.nodes += 1;
    stats.node_bytes += bytes.len() as u64;
    stats.entries += node.entries.len() as u64;
    let outside = |k: &[u8]| lo.is_some_and(|lo| k <= lo) || hi.is_some_and(|hi| k >= hi);
    if node.entries.iter().any(|e| outside(&e.key)) {
        return Err(MstError::KeyOutsideGap(cid));
    }
    let h = node.height;
    for gap in 0..=node.entries.len() {
        let gap_lo = if gap == 0 {
            lo
        } else {
            Some(&*node.entries[gap - 1].key)
        };
        let gap_hi = node.entries.get(gap).map_or(hi, |e| Some(&*e.key));
        if let Some(link) = node.gap(gap) {
            let Link::Stored(StoredLink { cid: child, .. }) = link else {
                return Err(MstError::Corrupt("decoded node holds an in-memory link"));
            };
            let ch = h
                .checked_sub(1)
                .ok_or(MstError::Corrupt("a height-0 node has a child"))?;
            check(*child, Some(ch), gap_lo, gap_hi, source, visit, stats)?;
        }
        if let Some(e) = node.entries.get(gap) {
            visit(&e.key, &e.value.to_cid());
        }
    }
    Ok(h)
}
