//! Ordered walk over a tree's entries from a start bound, resumable after a missing node.

use super::MstError;
use super::node::{Link, Node};
use super::store::NodeLoader;
use super::tree::{Mst, resolve};
use cid::Cid;
use std::ops::Bound;
use std::sync::Arc;

/// A key and its value, as the walk yields them.
pub type WalkEntry = (Box<[u8]>, Cid);

#[derive(Debug)]
struct Frame {
    node: Arc<Node>,
    /// Next position in the node's sequence gap0, entry0, gap1, …, entryN-1, gapN:
    /// even = gap `pos / 2`, odd = entry `pos / 2`.
    pos: usize,
}

/// The link to a subtree the walk enters next. A child is reached through the link in
/// its parent (the top frame), not a copy, so the pointer resolving it sets stays in the
/// tree and the next walk or GET follows it without a cache lookup.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Root,
    /// Gap `i` of the top frame's node.
    Gap(usize),
}

/// Iterates `(key, value)` pairs in key order. On [`MstError::Missing`] nothing is lost:
/// load the node and call [`Walker::next_entry`] again.
#[derive(Debug)]
pub struct Walker {
    stack: Vec<Frame>,
    /// A subtree to enter next (with its height), kept here so a missing node can be
    /// retried.
    pending: Option<(Pending, u8)>,
    /// Keys below this bound are skipped while descending.
    start: Bound<Box<[u8]>>,
    root: Option<Link>,
    root_height: u8,
}

impl Walker {
    /// A walk over `tree` from `start`.
    pub fn new(tree: &Mst, start: Bound<&[u8]>) -> Self {
        let root = tree.root_link().map(Link::follow);
        let mut w = Self {
            stack: Vec::new(),
            pending: None,
            start: Bound::Unbounded,
            root,
            root_height: tree.height(),
        };
        w.seek(start);
        w
    }

    /// Repositions the walk at the first key within `start`. Used by LIST to jump over a
    /// whole common prefix.
    pub fn seek(&mut self, start: Bound<&[u8]>) {
        self.stack.clear();
        self.start = start.map(Box::from);
        self.pending = self
            .root
            .as_ref()
            .map(|_| (Pending::Root, self.root_height));
    }

    /// Index of the first entry inside the start bound.
    fn first_index(&self, node: &Node) -> usize {
        match &self.start {
            Bound::Unbounded => 0,
            Bound::Included(k) => node.entries.partition_point(|e| *e.key < **k),
            Bound::Excluded(k) => node.entries.partition_point(|e| *e.key <= **k),
        }
    }

    /// The next entry in key order, or `None` at the end.
    pub fn next_entry(
        &mut self,
        nodes: &mut impl NodeLoader,
    ) -> Result<Option<WalkEntry>, MstError> {
        loop {
            if let Some((pending, h)) = self.pending {
                let link = match pending {
                    Pending::Root => self.root.as_ref(),
                    Pending::Gap(i) => self.stack.last().and_then(|f| f.node.gap(i)),
                };
                let link = link.ok_or(MstError::Corrupt("a walk lost its next subtree"))?;
                let node = resolve(link, h, nodes)?;
                self.pending = None;
                let i = self.first_index(&node);
                self.stack.push(Frame { node, pos: 2 * i });
                continue;
            }
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            let n = top.node.entries.len();
            if top.pos > 2 * n {
                self.stack.pop();
                continue;
            }
            let pos = top.pos;
            top.pos += 1;
            if pos % 2 == 0 {
                if top.node.gap(pos / 2).is_some() {
                    let h = top
                        .node
                        .height
                        .checked_sub(1)
                        .ok_or(MstError::Corrupt("a height-0 node has a child"))?;
                    self.pending = Some((Pending::Gap(pos / 2), h));
                }
                continue;
            }
            let e = &top.node.entries[pos / 2];
            return Ok(Some((Box::from(&*e.key), e.value.to_cid())));
        }
    }
}
