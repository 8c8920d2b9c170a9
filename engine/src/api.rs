//! Request and response types of the engine API, shared by the shard and the
//! cross-runtime [`crate::Engine`] handle. Everything here is `Send`.

use crate::error::{EngineError, EngineResult};
use crate::format::{Checksum, ObjectHeaders, ObjectManifest, UploadTemplate};
use bytes::Bytes;
use cid::Cid;
use std::sync::Arc;

/// A streamed body: pieces in order, or the error that ended the stream. Bounded, so
/// a producer faster than the consumer waits (backpressure end to end).
pub type BodyReceiver = tokio::sync::mpsc::Receiver<Result<Bytes, EngineError>>;
pub type BodySender = tokio::sync::mpsc::Sender<Result<Bytes, EngineError>>;

/// Bodies up to this size (with a declared length) are collected by the caller, cut
/// and hashed there, and handed to the shard whole, so the request crosses threads once.
pub const INLINE_BODY_BYTES: u64 = 256 << 10;

/// The largest single PUT S3 accepts (5 GiB): the default of
/// [`crate::ShardConfig::max_put_bytes`] and the frontend's limit.
pub const MAX_PUT_BYTES: u64 = 5 << 30;

/// Pieces in flight per streamed body, each at most a chunk.
pub const BODY_CHANNEL_PIECES: usize = 4;

/// A bounded body channel.
pub fn body_channel() -> (BodySender, BodyReceiver) {
    tokio::sync::mpsc::channel(BODY_CHANNEL_PIECES)
}

/// Digests of a whole body computed by the caller while it streamed the body to the
/// shard: hashing on the caller's thread runs in parallel with the shard's chunk
/// hashing, so one stream is not limited by MD5 and SHA-256 on one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDigests {
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
}

/// What a PUT carries besides the body, and what to check the body against.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Declared body length (Content-Length): a shorter body fails with
    /// [`EngineError::IncompleteBody`], a longer one with [`EngineError::EntityTooLarge`].
    pub content_length: Option<u64>,
    /// Content-MD5 to check ([`EngineError::BadDigest`]).
    pub content_md5: Option<[u8; 16]>,
    /// SHA-256 the request was signed with ([`EngineError::Sha256Mismatch`]).
    pub content_sha256: Option<[u8; 32]>,
    /// Compute and store the body's SHA-256 even when not checking it.
    pub want_sha256: bool,
    /// The headers and user metadata the object is stored with.
    pub headers: ObjectHeaders,
    /// An additional checksum the frontend verified, stored to be echoed back.
    pub checksum: Option<Checksum>,
    /// A condition on the key's current object, checked in the shard when the write
    /// joins its group commit, so no other write to the key can slip in between.
    pub condition: Option<PutCondition>,
    /// An additional checksum known only once the body has ended (a trailer, or one
    /// computed by the caller while streaming): the caller fills the slot before it
    /// ends the body, and it is used when `checksum` is `None`.
    pub late_checksum: Option<LateChecksum>,
}

/// See [`PutOptions::late_checksum`].
pub type LateChecksum = Arc<std::sync::Mutex<Option<Checksum>>>;

/// A conditional write (`If-None-Match: *`, `If-Match: "etag"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Only if the key holds no object ([`EngineError::PreconditionFailed`] otherwise).
    IfNoneMatchAny,
    /// Only if the key's object has this ETag (without quotes); a missing key fails
    /// with [`EngineError::NoSuchKey`], another ETag with
    /// [`EngineError::PreconditionFailed`].
    IfMatch(String),
}

impl PutOptions {
    /// The options that recreate `m`'s headers and metadata (a copy keeping them).
    pub fn from_manifest(m: &ObjectManifest) -> Self {
        Self {
            headers: m.headers.clone(),
            checksum: m.checksum.clone(),
            want_sha256: m.sha256.is_some(),
            ..Self::default()
        }
    }

    /// The manifest for a body with these options.
    pub(crate) fn manifest(
        &self,
        key: String,
        size: u64,
        md5: [u8; 16],
        sha256: Option<[u8; 32]>,
        mtime_ms: u64,
        body: Option<Cid>,
    ) -> ObjectManifest {
        let mut m = ObjectManifest::new(key, size, md5, mtime_ms, body);
        m.sha256 = sha256;
        m.headers = self.headers.clone();
        m.checksum = self.checksum.clone();
        m
    }
}

/// An object as stored: its manifest and the manifest's CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub manifest: Arc<ObjectManifest>,
    pub manifest_cid: Cid,
}

/// A byte range as a client asks for it (`Range: bytes=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, inclusive; `last` may lie past the end.
    FromTo { first: u64, last: u64 },
    /// `first-`
    From { first: u64 },
    /// `-n`: the last `n` bytes.
    Suffix { len: u64 },
}

impl ByteRange {
    /// The half-open byte range `[start, end)` this selects in an object of `size`
    /// bytes, or [`EngineError::InvalidRange`].
    pub fn resolve(self, size: u64) -> EngineResult<(u64, u64)> {
        let invalid = Err(EngineError::InvalidRange { size });
        match self {
            Self::FromTo { first, last } if first <= last && first < size => {
                Ok((first, last.saturating_add(1).min(size)))
            }
            Self::From { first } if first < size => Ok((first, size)),
            Self::Suffix { len } if len > 0 && size > 0 => Ok((size - len.min(size), size)),
            _ => invalid,
        }
    }
}

/// A GET's answer: the object, the byte range served, and its bytes as a stream.
#[derive(Debug)]
pub struct GetOutcome {
    pub info: ObjectInfo,
    /// `[start, end)` of the body being sent.
    pub range: (u64, u64),
    pub body: BodyReceiver,
}

/// One LIST entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub mtime_ms: u64,
}

/// A LIST request (ListObjects v1 and v2 both map onto it).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys strictly after this one (marker, start-after, continuation token).
    pub start_after: Option<String>,
    pub max_keys: usize,
}

/// One LIST page, entries and common prefixes each in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResponse {
    pub objects: Vec<ObjectSummary>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts after (the last key or common prefix returned).
    pub next_marker: Option<String>,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
    /// Headers, metadata and checksum algorithm the object will carry.
    pub template: UploadTemplate,
}

/// One ListMultipartUploads page to list: uploads whose key starts with `prefix`,
/// after the markers, with keys rolled up at `delimiter` into common prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadListing {
    pub prefix: String,
    /// `None` (or empty): no rollup.
    pub delimiter: Option<String>,
    /// Start after the uploads of this key…
    pub key_marker: Option<String>,
    /// …or, with `key_marker`, after this upload of that key. Ignored without it.
    pub upload_id_marker: Option<String>,
    /// Uploads and common prefixes together.
    pub max_uploads: usize,
}

/// One ListMultipartUploads page: uploads and common prefixes, each in listing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPage {
    pub uploads: Vec<UploadInfo>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts when truncated: the last upload's key and id, or the
    /// last common prefix (and no id).
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub size: u64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub mtime_ms: u64,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
    pub shard: u32,
}

/// A bucket's committed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketHead {
    pub commit: Cid,
    pub seq: u64,
    pub root: Cid,
}

/// Milliseconds since the Unix epoch (0 on a clock before 1970): the time of every
/// record the engine writes, and of the callers that compare against those records.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
