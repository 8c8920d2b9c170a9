//! The bucket Merkle Search Tree: atproto's repository MST byte for byte, with S3 keys
//! (`docs/format.md` §1).
//!
//! - [`key`]: key rules, heights, prefixes.
//! - [`node`]: node encoding and the strict decoder.
//! - [`store`]: the node cache over a block source.
//! - [`tree`]: get, insert, remove, commit.
//! - [`walk`] and [`list`]: ordered walks and S3 LIST pages.
//! - [`verify`]: whole-tree checks of untrusted trees.

pub mod key;
pub mod list;
pub mod node;
pub mod store;
pub mod tree;
#[cfg(any(test, feature = "testing"))]
pub mod verify;
pub mod walk;

pub use key::{KeyError, validate_key};
pub use list::{ListItem, ListQuery, Lister};
pub use node::{MAX_NODE_ENTRIES, NodeCid, NodeError, decode_node};
pub use store::NodeStore;
pub use tree::Mst;
// Reached by tests, benchmarks and fuzzers only.
#[cfg(feature = "testing")]
pub use {
    key::{MAX_KEY_BYTES, key_height},
    list::ListPage,
    node::{Node, encode_node},
    store::{DEFAULT_NODE_CACHE_BYTES, NodeCache, NodeLoader},
    verify::{TreeStats, verify_tree},
    walk::Walker,
};

use crate::block::SourceError;
use cid::Cid;

/// Errors of tree operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MstError {
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    /// The change would make a node hold more than [`MAX_NODE_ENTRIES`] entries.
    #[error("the change would put more than {MAX_NODE_ENTRIES} entries in one tree node")]
    NodeFull,
    /// The node is not in the cache and the source does not have it: fetch it, hand it
    /// to [`NodeStore::insert_block`], and retry.
    #[error("tree node {0} is not available")]
    Missing(NodeCid),
    #[error("block fetched as {0} does not hash to it")]
    HashMismatch(NodeCid),
    #[error("invalid tree node {cid}: {err}")]
    BadNode { cid: NodeCid, err: NodeError },
    #[error("tree node {0} holds a key outside the gap its parent gives it")]
    #[cfg(any(test, feature = "testing"))]
    KeyOutsideGap(NodeCid),
    #[error("root {0} is not a CIDv1 dag-cbor sha2-256 link")]
    BadRootLink(Box<Cid>),
    #[error("tree is inconsistent: {0}")]
    Corrupt(&'static str),
    #[error("block source failed: {0}")]
    Source(SourceError),
}
