//! Where shipped segments go. A target stores named objects (a segment's CAR and its
//! index) and serves byte ranges of them back.
//!
//! Every upload is checked against the SHA-256 the engine recorded when it sealed the
//! segment: a target never accepts bytes that differ from what was sealed. Uploads are
//! idempotent (shipping the same segment again after a crash finds the identical object
//! and succeeds; an object is never replaced), so the pipeline can always retry.

pub mod dir;
pub mod s3;

use bytes::Bytes;
use client::S3Client;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dir::DirTarget;
pub use s3::S3Target;

/// What targets need beyond their URL: the S3 endpoint and credentials.
#[derive(Debug, Clone, Default)]
pub struct TargetSettings {
    pub s3: Option<Arc<S3Client>>,
}

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
    /// An S3 endpoint failed or refused a request (its status and `<Code>`, an answer
    /// longer than asked for, a range not honoured).
    #[error(transparent)]
    S3(#[from] client::ClientError),
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
    S3(S3Target),
}

impl Target {
    /// Parses a target URL: `file:///absolute/path` or `s3://bucket[/prefix]` (the
    /// endpoint and credentials come from `settings`).
    pub fn from_url(url: &str, settings: &TargetSettings) -> Result<Self, TargetError> {
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
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("an S3 target names a bucket (s3://bucket/prefix)"));
            }
            let client = settings.s3.clone().ok_or_else(|| {
                bad("an S3 target needs an endpoint and credentials ([s3_target] in the config)")
            })?;
            return Ok(Target::S3(S3Target::new(client, bucket, prefix)));
        }
        Err(bad(
            "the supported schemes are file:///path and s3://bucket/prefix",
        ))
    }

    /// The target that can read `location` (a location a target returned earlier).
    pub fn for_location(location: &str, settings: &TargetSettings) -> Result<Self, TargetError> {
        let foreign = || TargetError::ForeignLocation(location.to_owned());
        if location.starts_with("file://") {
            let (dir, _) = location.rsplit_once('/').ok_or_else(foreign)?;
            return Self::from_url(dir, settings);
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, _) = rest.split_once('/').ok_or_else(foreign)?;
            return Self::from_url(&format!("s3://{bucket}"), settings);
        }
        Err(foreign())
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
            Target::S3(s) => s.put_file(name, path, sha256).await,
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
            Target::S3(s) => s.read_range(location, offset, len).await,
        }
    }
}
