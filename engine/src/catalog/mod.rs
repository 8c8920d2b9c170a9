//! The catalog: what changes slowly — buckets and their shard placement, bucket head
//! checkpoints, segment lifecycle records, multipart uploads and access keys.
//!
//! One async trait, [`Catalog`], with an embedded implementation on redb
//! ([`EmbeddedCatalog`]); a PostgreSQL implementation plugs in behind the same trait and
//! must pass the same [`conformance`] suite. Calls are off the hot path (bucket creation,
//! segment state changes, checkpoints): the per-object commit path never touches the
//! catalog, because bucket heads live in the meta plane and are only checkpointed here.
//!
//! The seam: the trait's futures are `Send` and may truly suspend (the embedded catalog
//! answers from its own thread, a networked one from its server), so callers hold no
//! shard state across a call that another task could change meanwhile. The engine is
//! generic over the implementation (`Engine<C: Catalog>`, `EmbeddedCatalog` by
//! default) and reaches it through [`CountedCatalog`]; outside this module the redb
//! type is named only as that default and by `Engine::open`, which opens it.

#[cfg(feature = "testing")]
pub mod conformance;
mod counted;
mod embedded;
#[cfg(any(test, feature = "testing"))]
mod memory;

#[cfg(not(feature = "testing"))]
pub(crate) use counted::CountedCatalog;
#[cfg(feature = "testing")]
pub use counted::CountedCatalog;
pub use counted::SegmentCounts;
pub use embedded::{EmbeddedCatalog, EmbeddedStats};
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryCatalog;

use crate::segment::SegmentId;
use cid::Cid;
use std::future::Future;

/// A bucket and the shard that owns it (fixed at creation; restarting with another core
/// count maps shards onto cores, it never moves a bucket's data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    pub name: String,
    pub shard: u32,
    pub created_ms: u64,
}

/// A bucket's head as of a checkpoint: recovery scans the meta plane only after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadCheckpoint {
    pub bucket: String,
    /// The head commit's CID.
    pub commit: Cid,
    /// The head commit's sequence number.
    pub seq: u64,
    /// The meta-plane segment holding that commit…
    pub segment_seq: u64,
    /// …and the offset just past the commit's frame in it.
    pub offset: u64,
}

/// Lifecycle of a segment file. Every change is mark-then-write: the record moves to the
/// intent state before the file operation, and to the result state after the file and
/// its directory are fsynced; deletion runs in reverse (mark, unlink, fsync the
/// directory, then drop or finish the record). So a crash leaves a state recovery can
/// finish, and no file ever exists without its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentState {
    /// Intent: the file is being created (it may or may not exist yet).
    Creating,
    /// The file exists and takes appends.
    Open,
    /// Truncated to its logical length, fsynced, index written: a valid CAR.
    Sealed,
    /// Uploaded to the cold tier; `location` says where.
    Shipped,
    /// Intent: the local files are being deleted.
    Retiring,
    /// Local files gone; reads go to `location` (or the record is dropped when the
    /// segment's blocks were compacted elsewhere).
    Retired,
}

impl SegmentState {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Creating => 0,
            Self::Open => 1,
            Self::Sealed => 2,
            Self::Shipped => 3,
            Self::Retiring => 4,
            Self::Retired => 5,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::Creating,
            1 => Self::Open,
            2 => Self::Sealed,
            3 => Self::Shipped,
            4 => Self::Retiring,
            5 => Self::Retired,
            _ => return None,
        })
    }

    /// The lifecycle's edges. `Sealed → Retiring` retires a segment that is never
    /// shipped (after compaction copied its live blocks); `Open → Retiring` discards an
    /// open segment that recovery found without a single durable frame.
    pub fn can_become(self, to: SegmentState) -> bool {
        use SegmentState::*;
        matches!(
            (self, to),
            (Creating, Open)
                | (Open, Sealed)
                | (Open, Retiring)
                | (Sealed, Shipped)
                | (Sealed, Retiring)
                | (Shipped, Retiring)
                | (Retiring, Retired)
        )
    }

    /// States whose record may be dropped: a creation that never finished, or a
    /// segment whose local files are (being) deleted.
    pub fn can_be_removed(self) -> bool {
        matches!(self, Self::Creating | Self::Retiring | Self::Retired)
    }
}

/// One segment file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub id: SegmentId,
    pub state: SegmentState,
    /// Logical size in bytes (the file size once sealed).
    pub size_bytes: u64,
    /// SHA-256 of the sealed file.
    pub sha256: Option<[u8; 32]>,
    /// Where the shipped copy lives.
    pub location: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl SegmentRecord {
    /// Applies a lifecycle step to the record: checks the expected state and the edge,
    /// then sets the state and the updated fields. Shared by every implementation.
    pub fn apply(
        &mut self,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> CatalogResult<()> {
        let id = self.id;
        if self.state != from {
            return Err(CatalogError::Conflict {
                id,
                expected: from,
                found: self.state,
            });
        }
        if !from.can_become(to) {
            return Err(CatalogError::InvalidTransition { id, from, to });
        }
        self.state = to;
        self.updated_ms = update.now_ms;
        if let Some(v) = update.size_bytes {
            self.size_bytes = v;
        }
        if let Some(v) = update.sha256 {
            self.sha256 = Some(v);
        }
        if let Some(v) = update.location {
            self.location = Some(v);
        }
        Ok(())
    }
}

/// Fields a state change may set along with the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentUpdate {
    pub size_bytes: Option<u64>,
    pub sha256: Option<[u8; 32]>,
    pub location: Option<String>,
    pub now_ms: u64,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
    /// Everything the object will carry besides its body (headers, metadata, checksum
    /// algorithm), encoded by the caller.
    pub template: Vec<u8>,
}

/// A place in a bucket's uploads, which are listed by key, then initiation time, then
/// upload id (the order of these fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadCursor {
    pub key: String,
    pub created_ms: u64,
    pub upload_id: String,
}

impl UploadCursor {
    /// The first place of uploads of keys at or after `key`.
    pub fn at_key(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            ..Self::default()
        }
    }

    /// The first place after this one: the same key and time, the smallest upload id
    /// greater than this one's.
    pub fn next(&self) -> Self {
        let mut next = self.clone();
        next.upload_id.push('\0');
        next
    }

    /// Where `rec` is listed.
    pub fn of(rec: &UploadRecord) -> Self {
        Self {
            key: rec.key.clone(),
            created_ms: rec.created_ms,
            upload_id: rec.upload_id.clone(),
        }
    }
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub upload_id: String,
    pub part_number: u32,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    /// The part's chunks (an encoded chunk run), written by the caller.
    pub chunks: Vec<u8>,
    pub created_ms: u64,
}

/// An access key and its secret (SigV4 needs the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_key: String,
    pub created_ms: u64,
}

/// Catalog failures. `Storage` means the database itself failed: callers treat it like
/// an I/O error on the write path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("segment {id:?} is {found:?}, not {expected:?}")]
    Conflict {
        id: SegmentId,
        expected: SegmentState,
        found: SegmentState,
    },
    #[error("segment {id:?} cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
    },
    #[error("catalog storage failed: {0}")]
    Storage(String),
    #[error("catalog holds an invalid record: {0}")]
    Corrupt(String),
}

pub type CatalogResult<T> = Result<T, CatalogError>;

/// The catalog operations. Every method is atomic; lists come back sorted.
pub trait Catalog: Send + Sync {
    // Buckets
    fn create_bucket(&self, rec: BucketRecord) -> impl Future<Output = CatalogResult<()>> + Send;
    fn bucket(
        &self,
        name: &str,
    ) -> impl Future<Output = CatalogResult<Option<BucketRecord>>> + Send;
    /// All buckets, by name.
    fn buckets(&self) -> impl Future<Output = CatalogResult<Vec<BucketRecord>>> + Send;
    /// Removes a bucket and its head checkpoint.
    fn delete_bucket(&self, name: &str) -> impl Future<Output = CatalogResult<()>> + Send;

    // Head checkpoints
    /// Records heads in one transaction. A checkpoint never moves a head backwards: one
    /// older than the stored one (by `seq`) is ignored.
    fn checkpoint_heads(
        &self,
        heads: &[HeadCheckpoint],
    ) -> impl Future<Output = CatalogResult<()>> + Send;
    /// All checkpoints, by bucket name.
    fn heads(&self) -> impl Future<Output = CatalogResult<Vec<HeadCheckpoint>>> + Send;

    // Segments
    fn create_segment(&self, rec: SegmentRecord) -> impl Future<Output = CatalogResult<()>> + Send;
    /// Moves a segment from `from` to `to` (compare-and-swap) and applies `update`.
    fn transition_segment(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> impl Future<Output = CatalogResult<SegmentRecord>> + Send;
    fn segment(
        &self,
        id: SegmentId,
    ) -> impl Future<Output = CatalogResult<Option<SegmentRecord>>> + Send;
    /// All segments, by (plane, shard, seq).
    fn segments(&self) -> impl Future<Output = CatalogResult<Vec<SegmentRecord>>> + Send;
    /// Drops a record whose state allows it ([`SegmentState::can_be_removed`]).
    fn remove_segment(&self, id: SegmentId) -> impl Future<Output = CatalogResult<()>> + Send;

    // Multipart uploads
    fn create_upload(&self, rec: UploadRecord) -> impl Future<Output = CatalogResult<()>> + Send;
    fn upload(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<UploadRecord>>> + Send;
    /// A bucket's uploads, by (key, created, upload id).
    fn uploads(
        &self,
        bucket: &str,
    ) -> impl Future<Output = CatalogResult<Vec<UploadRecord>>> + Send;
    /// Where a bucket's uploads are, from `from` on (at or after it), at most `limit` of
    /// them, in listing order: the places only, so a listing page skips what it does not
    /// show without reading it. Costs what it returns, not the bucket's uploads.
    fn upload_places(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<UploadCursor>>> + Send;
    /// Adds or replaces a part (a part uploaded again replaces the earlier one).
    fn put_part(&self, part: PartRecord) -> impl Future<Output = CatalogResult<()>> + Send;
    /// An upload's parts, by part number.
    fn parts(&self, upload_id: &str)
    -> impl Future<Output = CatalogResult<Vec<PartRecord>>> + Send;
    /// Removes an upload and all its parts.
    fn remove_upload(&self, upload_id: &str) -> impl Future<Output = CatalogResult<()>> + Send;

    // Access keys
    fn put_key(&self, key: AccessKey) -> impl Future<Output = CatalogResult<()>> + Send;
    fn key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<AccessKey>>> + Send;
    fn keys(&self) -> impl Future<Output = CatalogResult<Vec<AccessKey>>> + Send;
    fn remove_key(&self, access_key_id: &str) -> impl Future<Output = CatalogResult<()>> + Send;
}
