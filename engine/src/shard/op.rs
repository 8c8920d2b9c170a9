//! What a group commit carries: the changes waiting for it ([`Op`]), their answers and
//! the blocks they append. Shared by the commit loop (`commit.rs`), its state
//! (`group_commit.rs`) and the requests that submit changes.
use crate::api::PutCondition;
use crate::error::EngineResult;
use crate::mst::Mst;
use cid::Cid;
use tokio::sync::oneshot;

/// Blocks at most this large are kept in the block cache when written.
pub(crate) const CACHE_ON_WRITE_BYTES: usize = 64 << 10;

/// Blocks to append, in order, with their CIDs.
pub(crate) type Blocks = Vec<(Cid, Vec<u8>)>;

/// A change waiting for the next group commit.
#[derive(Debug)]
pub(crate) struct Op {
    pub bucket: String,
    pub kind: OpKind,
    pub reply: oneshot::Sender<EngineResult<OpDone>>,
}

#[derive(Debug)]
pub(crate) enum OpKind {
    /// Sets `key` to `manifest`; `blocks` (chunk index, manifest) go to the meta plane.
    Put {
        key: String,
        manifest: Cid,
        blocks: Vec<(Cid, Vec<u8>)>,
        condition: Option<PutCondition>,
    },
    Delete {
        key: String,
    },
    CreateBucket,
    DeleteBucket,
    /// Creates the bucket on an imported tree (its blocks already appended): a commit
    /// on top of the imported head commit `prev`, numbered `seq`.
    Import {
        tree: Mst,
        root: Cid,
        prev: Cid,
        seq: u64,
    },
    /// Changes nothing: answered once the data appended before it is durable (an
    /// uploaded part's chunks, before its record goes to the catalog).
    Sync,
}

#[derive(Debug)]
pub(crate) enum OpDone {
    Put,
    /// The manifest the key had, if any.
    Deleted(Option<Cid>),
    BucketCreated,
    BucketDeleted,
    Synced,
}
