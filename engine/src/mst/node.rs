//! One MST node: its in-memory form, its canonical encoding (`docs/format.md` §1.5) and the
//! strict decoder for untrusted bytes (1.7).

use super::key::{KeyError, common_prefix_len, key_height, validate_key};
use crate::block::{CODEC_DAG_CBOR, CODEC_RAW, MH_SHA2_256, cid_from_sha256, sha256_digest};
use crate::cbor::{self, DecodeError, Decoder};
use cid::Cid;
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// Most entries one node may hold: what indigo's decoder accepts, so exported buckets
/// stay readable by it. A write that would exceed it is refused.
pub const MAX_NODE_ENTRIES: usize = 8192;

/// Bytes of the empty tree's only node, `{"e":[],"l":null}`.
pub const EMPTY_NODE_BYTES: [u8; 7] = [0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6];

/// The CID of an MST node. Node links must be CIDv1 / dag-cbor / sha2-256, so the
/// 32-byte digest identifies one completely.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeCid(pub [u8; 32]);

impl NodeCid {
    /// The node CID of `cid`, if it is a valid node link.
    pub fn from_cid(cid: &Cid) -> Option<Self> {
        if cid.version() != cid::Version::V1
            || cid.codec() != CODEC_DAG_CBOR
            || cid.hash().code() != MH_SHA2_256
        {
            return None;
        }
        cid.hash().digest().try_into().ok().map(NodeCid)
    }

    pub fn to_cid(self) -> Cid {
        cid_from_sha256(CODEC_DAG_CBOR, self.0)
    }

    /// The CID of the given node bytes.
    pub fn of(bytes: &[u8]) -> Self {
        NodeCid(Sha256::digest(bytes).into())
    }

    /// The CID of the empty tree.
    pub fn empty_tree() -> Self {
        Self::of(&EMPTY_NODE_BYTES)
    }
}

impl std::fmt::Debug for NodeCid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_cid())
    }
}

impl std::fmt::Display for NodeCid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_cid())
    }
}

impl Hash for NodeCid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniformly distributed: eight bytes of it are a hash.
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(w));
    }
}

/// Hasher for maps keyed by [`NodeCid`] (or any key hashing one `u64`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl BuildHasher for DigestHasher {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// A link to a child node: either stored (by CID) or a node changed since the last
/// commit, held in memory until [`super::Mst::commit`] writes it.
#[derive(Clone, Debug)]
pub enum Link {
    Stored(StoredLink),
    Dirty(Arc<Node>),
}

impl Link {
    pub fn stored(cid: NodeCid) -> Self {
        Link::Stored(StoredLink::new(cid))
    }

    /// A copy to follow the link with: unlike `clone`, it keeps the pointer to a loaded
    /// node, so a walk that holds copies (LIST) does not look each node up in the cache.
    pub fn follow(&self) -> Link {
        match self {
            Link::Dirty(n) => Link::Dirty(n.clone()),
            Link::Stored(s) => Link::Stored(StoredLink {
                cid: s.cid,
                node: s.node.clone(),
            }),
        }
    }
}

/// A link by CID, with a weak pointer to the node once it has been loaded: a walk down
/// the tree follows pointers instead of looking every node up in the cache. The cache
/// still owns the nodes (so memory stays bounded); when it drops one, the pointer dies
/// and the lookup by CID takes over.
pub struct StoredLink {
    pub cid: NodeCid,
    node: OnceLock<Weak<Node>>,
}

impl StoredLink {
    pub fn new(cid: NodeCid) -> Self {
        Self {
            cid,
            node: OnceLock::new(),
        }
    }

    /// A link to a node that is in memory now.
    pub fn with_node(cid: NodeCid, node: &Arc<Node>) -> Self {
        let s = Self::new(cid);
        let _ = s.node.set(Arc::downgrade(node));
        s
    }

    /// The node, if it was loaded through this link and is still cached.
    pub fn loaded(&self) -> Option<Arc<Node>> {
        let node = self.node.get().and_then(Weak::upgrade)?;
        node.touched.mark();
        Some(node)
    }

    /// Remembers where the node is (the first time only).
    pub fn remember(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }
}

/// A copy starts without the pointer: copying it would touch (and count a reference on)
/// the child, one cache miss per entry of every node a mutation copies. A walk that
/// follows the link uses [`Link::follow`].
impl Clone for StoredLink {
    fn clone(&self) -> Self {
        Self::new(self.cid)
    }
}

impl std::fmt::Debug for StoredLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cid.fmt(f)
    }
}

/// Keys up to this many bytes live inside the entry, so a binary search over a node's
/// entries touches no other allocation (most S3 keys are shorter).
const INLINE_KEY_BYTES: usize = 46;

/// A whole key (prefix compression exists only in the encoding).
#[derive(Clone)]
pub struct Key(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline {
        len: u8,
        buf: [u8; INLINE_KEY_BYTES],
    },
    Heap(Box<[u8]>),
}

impl From<&[u8]> for Key {
    fn from(k: &[u8]) -> Self {
        if k.len() <= INLINE_KEY_BYTES {
            let mut buf = [0u8; INLINE_KEY_BYTES];
            buf[..k.len()].copy_from_slice(k);
            Key(KeyRepr::Inline {
                len: k.len() as u8,
                buf,
            })
        } else {
            Key(KeyRepr::Heap(k.into()))
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, buf } => &buf[..usize::from(*len)],
            KeyRepr::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// An entry's value CID, stored compactly: values are almost always CIDv1 sha2-256
/// (manifests), and a full `Cid` is 96 bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ValueCid {
    DagCbor([u8; 32]),
    Raw([u8; 32]),
    Other(Box<Cid>),
}

impl From<Cid> for ValueCid {
    fn from(c: Cid) -> Self {
        match (sha256_digest(&c), c.codec()) {
            (Some(d), CODEC_DAG_CBOR) => ValueCid::DagCbor(d),
            (Some(d), CODEC_RAW) => ValueCid::Raw(d),
            _ => ValueCid::Other(Box::new(c)),
        }
    }
}

impl ValueCid {
    pub fn to_cid(&self) -> Cid {
        match self {
            ValueCid::DagCbor(d) => cid_from_sha256(CODEC_DAG_CBOR, *d),
            ValueCid::Raw(d) => cid_from_sha256(CODEC_RAW, *d),
            ValueCid::Other(c) => **c,
        }
    }

    fn write(&self, buf: &mut Vec<u8>) {
        let (codec, d) = match self {
            ValueCid::DagCbor(d) => (0x71, d),
            ValueCid::Raw(d) => (0x55, d),
            ValueCid::Other(c) => return cbor::write_link(buf, c),
        };
        buf.extend_from_slice(&[0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, codec, 0x12, 0x20]);
        buf.extend_from_slice(d);
    }
}

/// One key of a node, with its value and the child for the gap after it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: Key,
    pub value: ValueCid,
    /// Child covering the keys between this entry and the next (`t`).
    pub right: Option<Link>,
}

/// Set whenever a node is used; the node cache's clock hand clears it (second chance).
/// It lives in the node so that a walk following pointers marks it without a lookup.
#[derive(Debug, Default)]
pub struct Touched(AtomicBool);

impl Touched {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the node was used since the last call, clearing the mark.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Clone for Touched {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// A decoded or in-memory node. All keys share `height`; children are at `height - 1`.
#[derive(Clone, Debug)]
pub struct Node {
    pub touched: Touched,
    pub height: u8,
    /// Child covering the keys before the first entry (`l`).
    pub left: Option<Link>,
    pub entries: Vec<Entry>,
}

impl Node {
    /// An entry-less node at `height` whose only child is `child`.
    pub fn intermediate(height: u8, child: Link) -> Self {
        Node {
            touched: Touched::default(),
            height,
            left: Some(child),
            entries: Vec::new(),
        }
    }

    /// Index of `key` (`Ok`) or of the gap it falls in (`Err`): gap `i` lies before
    /// entry `i`.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    /// The child in gap `i` (0 = before the first entry).
    pub fn gap(&self, i: usize) -> Option<&Link> {
        if i == 0 {
            self.left.as_ref()
        } else {
            self.entries.get(i - 1).and_then(|e| e.right.as_ref())
        }
    }

    pub fn set_gap(&mut self, i: usize, link: Option<Link>) {
        if i == 0 {
            self.left = link;
        } else if let Some(e) = self.entries.get_mut(i - 1) {
            e.right = link;
        }
    }

    /// Rough heap footprint, for cache accounting.
    pub fn approx_bytes(&self) -> usize {
        64 + self
            .entries
            .iter()
            .map(|e| e.key.len().saturating_sub(INLINE_KEY_BYTES) + std::mem::size_of::<Entry>())
            .sum::<usize>()
    }
}

fn write_node_link(buf: &mut Vec<u8>, link: Option<&Link>) {
    match link {
        None => cbor::write_null(buf),
        Some(Link::Stored(StoredLink { cid: c, .. })) => {
            // d8 2a: tag 42; 58 25: 37 bytes; 00; 01 71 12 20: CIDv1 dag-cbor sha2-256/32
            buf.extend_from_slice(&[0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x71, 0x12, 0x20]);
            buf.extend_from_slice(&c.0);
        }
        Some(Link::Dirty(_)) => {
            unreachable!("Mst::commit stores every child before encoding its parent")
        }
    }
}

/// Encodes a node whose links are all stored. Map keys in canonical order:
/// node `e`, `l`; entry `k`, `p`, `t`, `v`.
pub fn encode_node(node: &Node) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + node.entries.len() * 96);
    buf.extend_from_slice(&[0xa2, 0x61, b'e']);
    cbor::write_array(&mut buf, node.entries.len());
    let mut prev: &[u8] = &[];
    for e in &node.entries {
        let p = common_prefix_len(prev, &e.key);
        buf.extend_from_slice(&[0xa4, 0x61, b'k']);
        cbor::write_bytes(&mut buf, &e.key[p..]);
        buf.extend_from_slice(&[0x61, b'p']);
        cbor::write_uint(&mut buf, p as u64);
        buf.extend_from_slice(&[0x61, b't']);
        write_node_link(&mut buf, e.right.as_ref());
        buf.extend_from_slice(&[0x61, b'v']);
        e.value.write(&mut buf);
        prev = &e.key;
    }
    buf.extend_from_slice(&[0x61, b'l']);
    write_node_link(&mut buf, node.left.as_ref());
    buf
}

/// Why bytes are not a valid MST node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Cbor(#[from] DecodeError),
    #[error("node holds {0} entries; the limit is {MAX_NODE_ENTRIES}")]
    TooManyEntries(usize),
    #[error("entry {index}: prefix length {p} is longer than the previous key")]
    PrefixTooLong { index: usize, p: u64 },
    #[error("entry {index}: prefix length is not the maximal common prefix")]
    PrefixNotMaximal { index: usize },
    #[error("first entry has a non-zero prefix length")]
    FirstPrefixNotZero,
    #[error("entry {index}: keys are not strictly increasing")]
    KeysNotIncreasing { index: usize },
    #[error("entry {index}: invalid key: {err}")]
    BadKey { index: usize, err: KeyError },
    #[error("entry {index}: key height {got} differs from the node height {want}")]
    WrongHeight { index: usize, got: u8, want: u8 },
    #[error("link is not a CIDv1 dag-cbor sha2-256 node link: {0}")]
    BadNodeLink(Box<Cid>),
    #[error("non-root node has no entries and no child")]
    EmptyNonRoot,
    #[error("root node has no entries but a child (a pointer-only root must be trimmed)")]
    PointerOnlyRoot,
    #[error("node at height 0 links to a child")]
    ChildBelowLeaf,
    #[error("re-encoding the node does not reproduce its bytes")]
    NotCanonical,
}

fn read_node_link(d: &mut Decoder<'_>) -> Result<Option<Link>, NodeError> {
    match d.opt_link()? {
        None => Ok(None),
        Some(cid) => match NodeCid::from_cid(&cid) {
            Some(nc) => Ok(Some(Link::stored(nc))),
            None => Err(NodeError::BadNodeLink(Box::new(cid))),
        },
    }
}

/// Strictly decodes a node. `height` is the height the parent implies, or `None` for a
/// root (whose height comes from its first key). Every check of `docs/format.md` §1.7 that
/// can be made on one node is made here; `verify.rs` adds the ones across nodes.
pub fn decode_node(bytes: &[u8], height: Option<u8>) -> Result<Node, NodeError> {
    let mut d = Decoder::new(bytes);
    if d.map()? != 2 {
        return Err(DecodeError::schema("node must be a map of exactly e and l").into());
    }
    d.expect_key("e")?;
    let n = d.array()?;
    if n > MAX_NODE_ENTRIES {
        return Err(NodeError::TooManyEntries(n));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    let mut node_height = height;
    for index in 0..n {
        let prev: &[u8] = entries.last().map_or(&[], |e| &e.key);
        let (key, right, value) = decode_entry(&mut d, index, prev)?;
        let got = key_height(&key);
        match node_height {
            None => node_height = Some(got),
            Some(want) if want != got => return Err(NodeError::WrongHeight { index, got, want }),
            Some(_) => {}
        }
        entries.push(Entry {
            key: Key::from(key.as_slice()),
            value: ValueCid::from(value),
            right,
        });
    }
    d.expect_key("l")?;
    let left = read_node_link(&mut d)?;
    d.finish()?;
    let node = Node {
        touched: Touched::default(),
        height: check_shape(node_height, height, &entries, &left)?,
        left,
        entries,
    };
    // Belt and braces: the checks above should already make this hold.
    if encode_node(&node) != bytes {
        return Err(NodeError::NotCanonical);
    }
    Ok(node)
}

/// Decodes entry `index` of a node: its whole key (checked against `prev`, the key
/// before it, for a maximal prefix and order), its right subtree and its value.
fn decode_entry(
    d: &mut Decoder<'_>,
    index: usize,
    prev: &[u8],
) -> Result<(Vec<u8>, Option<Link>, Cid), NodeError> {
    if d.map()? != 4 {
        return Err(DecodeError::schema("entry must be a map of exactly k, p, t, v").into());
    }
    d.expect_key("k")?;
    let suffix = d.bytes()?;
    d.expect_key("p")?;
    let p = d.uint()?;
    d.expect_key("t")?;
    let right = read_node_link(d)?;
    d.expect_key("v")?;
    let value = d.link()?;

    if index == 0 && p != 0 {
        return Err(NodeError::FirstPrefixNotZero);
    }
    let p = match usize::try_from(p) {
        Ok(p) if p <= prev.len() => p,
        _ => return Err(NodeError::PrefixTooLong { index, p }),
    };
    if p < prev.len() && suffix.first() == Some(&prev[p]) {
        return Err(NodeError::PrefixNotMaximal { index });
    }
    let mut key = Vec::with_capacity(p + suffix.len());
    key.extend_from_slice(&prev[..p]);
    key.extend_from_slice(suffix);
    if index > 0 && key.as_slice() <= prev {
        return Err(NodeError::KeysNotIncreasing { index });
    }
    validate_key(&key).map_err(|err| NodeError::BadKey { index, err })?;
    Ok((key, right, value))
}

/// The node's height, after the checks on its shape: an entry-less root only as the
/// canonical empty tree, no empty non-root, no child below a leaf.
fn check_shape(
    node_height: Option<u8>,
    height: Option<u8>,
    entries: &[Entry],
    left: &Option<Link>,
) -> Result<u8, NodeError> {
    let node_height = match (node_height, entries.is_empty(), left) {
        (Some(h), _, _) => h,
        // A root without entries: only the canonical empty tree is allowed.
        (None, true, None) => 0,
        (None, _, _) => return Err(NodeError::PointerOnlyRoot),
    };
    if height.is_some() && entries.is_empty() && left.is_none() {
        return Err(NodeError::EmptyNonRoot);
    }
    let has_child = left.is_some() || entries.iter().any(|e| e.right.is_some());
    if node_height == 0 && has_child {
        return Err(NodeError::ChildBelowLeaf);
    }
    Ok(node_height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_node_round_trips() {
        let node = decode_node(&EMPTY_NODE_BYTES, None).unwrap();
        assert!(node.entries.is_empty() && node.left.is_none());
        assert_eq!(encode_node(&node), EMPTY_NODE_BYTES);
        assert_eq!(
            NodeCid::empty_tree().to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
    }

    #[test]
    fn empty_node_is_not_a_valid_child() {
        assert_eq!(
            decode_node(&EMPTY_NODE_BYTES, Some(0)).unwrap_err(),
            NodeError::EmptyNonRoot
        );
    }
}
