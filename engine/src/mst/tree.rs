//! The tree operations: get, insert-or-update, remove and commit (`docs/format.md` §1.4, §1.8).
//!
//! Nodes are immutable and shared (`Arc`); a mutation copies the nodes on its path and
//! leaves them `Dirty` until [`Mst::commit`] encodes, hashes and writes them, children
//! before parents, in one place. A failed operation (for instance a node that is not
//! cached yet) leaves the tree exactly as it was.
//!
//! Shape invariants kept by every operation (they make the root a function of the key set):
//! - a node at height `h` holds exactly the keys of height `h` in its interval, and each
//!   non-empty gap between them is a child at `h - 1` (links never skip a level, so a gap
//!   holding only lower keys goes through entry-less intermediate nodes);
//! - no node below the root is entirely empty; the root holds an entry unless the tree is
//!   empty (pointer-only roots are trimmed).

use super::MstError;
use super::key::{key_height, validate_key};
use super::node::{
    EMPTY_NODE_BYTES, Entry, Link, MAX_NODE_ENTRIES, Node, NodeCid, StoredLink, ValueCid,
    encode_node,
};
use super::store::NodeLoader;
use crate::block::BlockSink;
use cid::Cid;
use std::sync::Arc;

type Result<T> = std::result::Result<T, MstError>;

/// A bucket's Merkle Search Tree. Cheap to clone (a clone shares all nodes).
#[derive(Clone, Debug, Default)]
pub struct Mst {
    /// `None` is the empty tree.
    root: Option<Link>,
    /// Height of the root node (meaningless for the empty tree).
    height: u8,
    /// Stored nodes replaced since the last commit, dropped from the cache at commit.
    replaced: Vec<NodeCid>,
}

pub(crate) fn resolve(link: &Link, height: u8, nodes: &mut impl NodeLoader) -> Result<Arc<Node>> {
    match link {
        Link::Dirty(n) => Ok(n.clone()),
        Link::Stored(s) => {
            if let Some(node) = s.loaded() {
                return Ok(node);
            }
            let node = nodes.load_node(&s.cid, Some(height))?;
            s.remember(&node);
            Ok(node)
        }
    }
}

/// The loader plus the stored nodes an operation replaces: once the operation succeeds
/// they are no longer part of the tree, and [`Mst::commit`] tells the cache to drop them
/// (so superseded path copies do not crowd out live nodes).
struct Edit<'a, L> {
    nodes: &'a mut L,
    replaced: Vec<NodeCid>,
}

impl<'a, L: NodeLoader> Edit<'a, L> {
    fn new(nodes: &'a mut L) -> Self {
        Self {
            nodes,
            replaced: Vec::new(),
        }
    }

    fn load(&mut self, link: &Link, height: u8) -> Result<Arc<Node>> {
        resolve(link, height, self.nodes)
    }

    /// Notes that `link`'s node is being replaced by an edited copy.
    fn replace(&mut self, link: &Link) {
        if let Link::Stored(s) = link {
            self.replaced.push(s.cid);
        }
    }
}

fn child_height(h: u8) -> Result<u8> {
    h.checked_sub(1)
        .ok_or(MstError::Corrupt("a height-0 node has a child"))
}

fn dirty(node: Node) -> Link {
    Link::Dirty(Arc::new(node))
}

/// `None` for a node with no entries and no child (an empty gap), the node otherwise.
fn non_empty(node: Node) -> Option<Link> {
    if node.entries.is_empty() && node.left.is_none() {
        None
    } else {
        Some(dirty(node))
    }
}

fn check_size(entries: usize) -> Result<()> {
    if entries > MAX_NODE_ENTRIES {
        Err(MstError::NodeFull)
    } else {
        Ok(())
    }
}

/// A subtree at height `h` holding only `key`: entry-less nodes down to the key's height.
fn chain(key: &[u8], value: Cid, key_h: u8, h: u8) -> Link {
    let mut link = dirty(Node {
        touched: Default::default(),
        height: key_h,
        left: None,
        entries: vec![Entry {
            key: key.into(),
            value: value.into(),
            right: None,
        }],
    });
    for height in key_h + 1..=h {
        link = dirty(Node::intermediate(height, link));
    }
    link
}

/// Splits the subtree `link` (at height `h`) into the keys below and above `key`, which
/// is not in it.
fn split(
    link: &Link,
    h: u8,
    key: &[u8],
    ed: &mut Edit<'_, impl NodeLoader>,
) -> Result<(Option<Link>, Option<Link>)> {
    let node = ed.load(link, h)?;
    let i = node
        .search(key)
        .err()
        .ok_or(MstError::Corrupt("split key found below its height"))?;
    let (gap_left, gap_right) = match node.gap(i) {
        Some(g) => split(g, child_height(h)?, key, ed)?,
        None => (None, None),
    };
    // A side that keeps the whole subtree keeps its node as is (no rewrite).
    if i == node.entries.len() && gap_right.is_none() {
        return Ok((Some(link.clone()), None));
    }
    if i == 0 && gap_left.is_none() {
        return Ok((None, Some(link.clone())));
    }
    ed.replace(link);
    let mut left = Node {
        touched: Default::default(),
        height: h,
        left: node.left.clone(),
        entries: node.entries[..i].to_vec(),
    };
    left.set_gap(i, gap_left);
    let right = Node {
        touched: Default::default(),
        height: h,
        left: gap_right,
        entries: node.entries[i..].to_vec(),
    };
    Ok((non_empty(left), non_empty(right)))
}

/// Joins two subtrees at height `h` whose keys are all ordered `a` < `b`.
fn merge(
    a: Option<Link>,
    b: Option<Link>,
    h: u8,
    ed: &mut Edit<'_, impl NodeLoader>,
) -> Result<Option<Link>> {
    let (a, b) = match (a, b) {
        (None, x) | (x, None) => return Ok(x),
        (Some(a), Some(b)) => (a, b),
    };
    let na = ed.load(&a, h)?;
    let nb = ed.load(&b, h)?;
    check_size(na.entries.len() + nb.entries.len())?;
    let last = na.entries.len();
    let (a_edge, b_edge) = (na.gap(last).cloned(), nb.left.clone());
    let middle = if a_edge.is_some() || b_edge.is_some() {
        merge(a_edge, b_edge, child_height(h)?, ed)?
    } else {
        None
    };
    ed.replace(&a);
    ed.replace(&b);
    let mut joined = Arc::unwrap_or_clone(na);
    joined.set_gap(last, middle);
    joined.entries.extend(nb.entries.iter().cloned());
    Ok(Some(dirty(joined)))
}

/// Inserts or updates `key` (height `key_h` ≤ `h`) in the subtree `link` at height `h`.
/// Returns the new subtree and the previous value, or `None` when nothing changed.
fn insert_at(
    link: &Link,
    h: u8,
    key: &[u8],
    key_h: u8,
    value: Cid,
    ed: &mut Edit<'_, impl NodeLoader>,
) -> Result<Option<(Link, Option<Cid>)>> {
    let node = ed.load(link, h)?;
    let pos = node.search(key);
    if key_h == h {
        let mut n = Arc::unwrap_or_clone(node);
        let prev = match pos {
            Ok(i) => {
                let value = ValueCid::from(value);
                if n.entries[i].value == value {
                    return Ok(None);
                }
                ed.replace(link);
                Some(std::mem::replace(&mut n.entries[i].value, value).to_cid())
            }
            Err(i) => {
                check_size(n.entries.len() + 1)?;
                let (l, r) = match n.gap(i) {
                    Some(g) => split(g, child_height(h)?, key, ed)?,
                    None => (None, None),
                };
                ed.replace(link);
                n.set_gap(i, l);
                n.entries.insert(
                    i,
                    Entry {
                        key: key.into(),
                        value: value.into(),
                        right: r,
                    },
                );
                None
            }
        };
        return Ok(Some((dirty(n), prev)));
    }
    let i = pos.err().ok_or(MstError::Corrupt(
        "key found at a height other than its own",
    ))?;
    let ch = child_height(h)?;
    let (child, prev) = match node.gap(i) {
        Some(g) => match insert_at(g, ch, key, key_h, value, ed)? {
            Some(changed) => changed,
            None => return Ok(None),
        },
        None => (chain(key, value, key_h, ch), None),
    };
    ed.replace(link);
    let mut n = Arc::unwrap_or_clone(node);
    n.set_gap(i, Some(child));
    Ok(Some((dirty(n), prev)))
}

/// Removes `key` (height `key_h` ≤ `h`) from the subtree `link`. Returns the new subtree
/// (`None` when it became empty) and the removed value, or `None` if the key is absent.
fn remove_at(
    link: &Link,
    h: u8,
    key: &[u8],
    key_h: u8,
    ed: &mut Edit<'_, impl NodeLoader>,
) -> Result<Option<(Option<Link>, Cid)>> {
    let node = ed.load(link, h)?;
    match node.search(key) {
        Ok(i) if key_h == h => {
            let before = node.gap(i).cloned();
            let after = node.entries[i].right.clone();
            let merged = if before.is_some() || after.is_some() {
                merge(before, after, child_height(h)?, ed)?
            } else {
                None
            };
            ed.replace(link);
            let mut n = Arc::unwrap_or_clone(node);
            let removed = n.entries.remove(i);
            n.set_gap(i, merged);
            Ok(Some((non_empty(n), removed.value.to_cid())))
        }
        Ok(_) => Err(MstError::Corrupt(
            "key found at a height other than its own",
        )),
        Err(_) if key_h == h => Ok(None),
        Err(i) => {
            let Some(g) = node.gap(i) else {
                return Ok(None);
            };
            let Some((child, old)) = remove_at(g, child_height(h)?, key, key_h, ed)? else {
                return Ok(None);
            };
            ed.replace(link);
            let mut n = Arc::unwrap_or_clone(node);
            n.set_gap(i, child);
            Ok(Some((non_empty(n), old)))
        }
    }
}

impl Mst {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the tree whose root node is `root`, loading (and strictly checking) the root.
    pub fn open(root: &Cid, nodes: &mut impl NodeLoader) -> Result<Self> {
        let nc = NodeCid::from_cid(root).ok_or(MstError::BadRootLink(Box::new(*root)))?;
        let node = nodes.load_node(&nc, None)?;
        if node.entries.is_empty() {
            // decode_node only lets the canonical empty node through here.
            return Ok(Self::new());
        }
        Ok(Self {
            root: Some(Link::Stored(StoredLink::with_node(nc, &node))),
            height: node.height,
            replaced: Vec::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Height of the root node (0 for the empty tree).
    pub fn height(&self) -> u8 {
        self.height
    }

    /// The root CID if every change has been committed.
    #[cfg(any(test, feature = "testing"))]
    pub fn root_cid(&self) -> Option<Cid> {
        match &self.root {
            None => Some(NodeCid::empty_tree().to_cid()),
            Some(Link::Stored(s)) => Some(s.cid.to_cid()),
            Some(Link::Dirty(_)) => None,
        }
    }

    pub(crate) fn root_link(&self) -> Option<&Link> {
        self.root.as_ref()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8], nodes: &mut impl NodeLoader) -> Result<Option<Cid>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let key_h = key_height(key);
        if key_h > self.height {
            return Ok(None);
        }
        // Children are followed by reference: a cloned link would lose its pointer and
        // cost a cache lookup per level.
        let mut h = self.height;
        let mut node = resolve(root, h, nodes)?;
        loop {
            match node.search(key) {
                Ok(i) => return Ok(Some(node.entries[i].value.to_cid())),
                Err(_) if h == key_h => return Ok(None),
                Err(i) => match node.gap(i) {
                    Some(g) => {
                        h = child_height(h)?;
                        node = resolve(g, h, nodes)?;
                    }
                    None => return Ok(None),
                },
            }
        }
    }

    /// Sets `key` to `value`; returns the previous value. Refuses invalid keys and
    /// changes that would make a node exceed [`MAX_NODE_ENTRIES`].
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Cid,
        nodes: &mut impl NodeLoader,
    ) -> Result<Option<Cid>> {
        validate_key(key)?;
        let key_h = key_height(key);
        let Some(root) = &self.root else {
            self.root = Some(chain(key, value, key_h, key_h));
            self.height = key_h;
            return Ok(None);
        };
        if key_h > self.height {
            // The key becomes the new root; the old tree splits around it and each side
            // hangs below through entry-less nodes down to the old root height.
            let mut ed = Edit::new(nodes);
            let (mut l, mut r) = split(root, self.height, key, &mut ed)?;
            self.replaced.append(&mut ed.replaced);
            for height in self.height + 1..key_h {
                l = l.map(|c| dirty(Node::intermediate(height, c)));
                r = r.map(|c| dirty(Node::intermediate(height, c)));
            }
            let entry = Entry {
                key: key.into(),
                value: value.into(),
                right: r,
            };
            self.root = Some(dirty(Node {
                touched: Default::default(),
                height: key_h,
                left: l,
                entries: vec![entry],
            }));
            self.height = key_h;
            return Ok(None);
        }
        let mut ed = Edit::new(nodes);
        match insert_at(root, self.height, key, key_h, value, &mut ed)? {
            Some((new_root, prev)) => {
                self.replaced.append(&mut ed.replaced);
                self.root = Some(new_root);
                Ok(prev)
            }
            None => Ok(Some(value)),
        }
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&mut self, key: &[u8], nodes: &mut impl NodeLoader) -> Result<Option<Cid>> {
        validate_key(key)?;
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let key_h = key_height(key);
        if key_h > self.height {
            return Ok(None);
        }
        let mut ed = Edit::new(nodes);
        let Some((mut new_root, old)) = remove_at(root, self.height, key, key_h, &mut ed)? else {
            return Ok(None);
        };
        // Trim: a root without entries is replaced by its only child, repeatedly.
        let mut h = self.height;
        while let Some(link) = &new_root {
            let node = ed.load(link, h)?;
            if !node.entries.is_empty() {
                break;
            }
            ed.replace(link);
            new_root = node.left.clone();
            h = match (h.checked_sub(1), &new_root) {
                (Some(ch), _) => ch,
                (None, None) => 0,
                (None, Some(_)) => return Err(MstError::Corrupt("a height-0 node has a child")),
            };
        }
        self.replaced.append(&mut ed.replaced);
        self.height = if new_root.is_some() { h } else { 0 };
        self.root = new_root;
        Ok(Some(old))
    }

    /// Writes every node changed since the last commit to `sink` (children before
    /// parents), keeps them in the node cache, and returns the root CID. The empty tree's
    /// node is written too, so the returned root can always be loaded.
    pub fn commit(&mut self, nodes: &mut impl NodeLoader, sink: &mut impl BlockSink) -> Cid {
        for cid in self.replaced.drain(..) {
            nodes.forget_node(&cid);
        }
        match self.root.take() {
            None => {
                let cid = NodeCid::empty_tree();
                sink.put_block(cid.to_cid(), EMPTY_NODE_BYTES.to_vec());
                cid.to_cid()
            }
            Some(link) => {
                let stored = commit_link(link, nodes, sink);
                let cid = stored.cid.to_cid();
                self.root = Some(Link::Stored(stored));
                cid
            }
        }
    }
}

fn commit_link(link: Link, nodes: &mut impl NodeLoader, sink: &mut impl BlockSink) -> StoredLink {
    let mut arc = match link {
        Link::Stored(s) => return s,
        Link::Dirty(arc) => arc,
    };
    // Dirty nodes are normally owned by this tree alone: edit in place, no copy.
    let node = Arc::make_mut(&mut arc);
    if let Some(l) = node.left.take() {
        node.left = Some(Link::Stored(commit_link(l, nodes, sink)));
    }
    for e in &mut node.entries {
        if let Some(r) = e.right.take() {
            e.right = Some(Link::Stored(commit_link(r, nodes, sink)));
        }
    }
    let bytes = encode_node(node);
    let cid = NodeCid::of(&bytes);
    sink.put_block(cid.to_cid(), bytes);
    let stored = StoredLink::with_node(cid, &arc);
    nodes.keep_node(cid, arc);
    stored
}
