//! Where shipped segments go. A target stores named objects (a segment's CAR and its
//! index) and serves byte ranges of them back.
//!
//! Every upload is checked against the SHA-256 the engine recorded when it sealed the
//! segment: a target never accepts bytes that differ from what was sealed. Uploads are
//! idempotent (shipping the same segment again after a crash replaces it with identical
//! bytes), so the pipeline can always retry.

pub mod dir;

use bytes::Bytes;
use std::path::{Path, PathBuf};

pub use dir::DirTarget;

/// Why a target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("{name}: the uploaded bytes hash to {got}, the segment was sealed as {want}")]
    DigestMismatch {
        name: String,
        want: String,
        got: String,
    },
    #[error("{location}: range {offset}+{len} is past the end ({size} bytes)")]
    ShortRange {
        location: String,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("object name {0:?} is not a plain file name")]
    BadName(String),
    #[error("location {0:?} does not belong to this target")]
    ForeignLocation(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl TargetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TargetError::Io {
            what: what.into(),
            source,
        }
    }
}

/// A configured target.
#[derive(Debug, Clone)]
pub enum Target {
    Dir(DirTarget),
}

impl Target {
    /// Parses a target URL: `file:///absolute/path`.
    pub fn from_url(url: &str) -> Result<Self, TargetError> {
        let bad = |why: &str| TargetError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file target needs an absolute path (file:///path)"));
            }
            return Ok(Target::Dir(DirTarget::new(PathBuf::from(path))));
        }
        Err(bad("the supported scheme is file:///path"))
    }

    /// Uploads the local file `path` as `name` and returns its location. The bytes must
    /// hash to `sha256`; otherwise nothing is stored and the upload fails.
    pub async fn put_file(
        &self,
        name: &str,
        path: &Path,
        sha256: [u8; 32],
    ) -> Result<String, TargetError> {
        match self {
            Target::Dir(d) => d.put_file(name, path, sha256).await,
        }
    }

    /// `len` bytes at `offset` of the object at `location`.
    pub async fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, TargetError> {
        match self {
            Target::Dir(d) => d.read_range(location, offset, len).await,
        }
    }
}

/// Lowercase hex of a digest, for messages and locations.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
