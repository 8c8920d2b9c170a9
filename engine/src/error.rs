//! The engine's errors: what a caller can act on. The frontend maps each variant to one
//! S3 error code and HTTP status in a single table.

use crate::catalog::CatalogError;
pub use crate::mst::KeyError;

/// Engine failures. `Clone`, because one failed group commit answers every request in
/// its batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0} already exists")]
    BucketAlreadyExists(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName {
        name: String,
        reason: BucketNameError,
    },
    #[error("no such key")]
    NoSuchKey,
    /// The key breaks a key rule; the reason says which (the frontend answers a key
    /// too long with its own S3 code).
    #[error("invalid key: {0}")]
    InvalidKey(KeyError),
    /// The range starts at or after the end of the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    /// The body ended before the declared length.
    #[error("body ended after {got} of {expected} bytes")]
    IncompleteBody { got: u64, expected: u64 },
    /// The body is longer than declared, or than a single PUT may be.
    #[error("body exceeds {limit} bytes")]
    EntityTooLarge { limit: u64 },
    /// The body does not match its Content-MD5.
    #[error("body does not match Content-MD5")]
    BadDigest,
    /// The body does not match the SHA-256 the request was signed with.
    #[error("body does not match x-amz-content-sha256")]
    Sha256Mismatch,
    /// A conditional write's condition did not hold.
    #[error("the condition on the key's current object does not hold")]
    PreconditionFailed,
    /// The multipart upload does not exist (never did, aborted, expired or completed).
    #[error("no such upload")]
    NoSuchUpload,
    /// A part a Complete names was not uploaded, or its ETag or checksum differ.
    #[error("{0}")]
    InvalidPart(String),
    /// The parts a Complete names are not in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the 5 MiB minimum.
    #[error("part {part} is {size} bytes, below the 5 MiB minimum of every part but the last")]
    EntityTooSmall { part: u32, size: u64 },
    /// A request contradicts itself or the stored state (S3's `InvalidRequest`).
    #[error("{0}")]
    InvalidRequest(String),
    /// A request argument is out of range (part number, copy range).
    #[error("{0}")]
    InvalidArgument(String),
    /// The body stream failed (client gone, bad chunk signature).
    #[error("body stream failed: {0}")]
    Body(String),
    /// A node of the bucket's tree would exceed the format's entry limit.
    #[error("too many keys share one tree node")]
    KeyspaceFull,
    /// An earlier write or sync failed on this shard: it takes no more writes.
    #[error("shard {0} stopped after an I/O failure")]
    Poisoned(u32),
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A block failed verification or a structure is inconsistent.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    /// A file operation failed. `kind` is the operating system's answer (EIO, a failed
    /// fsync, ...); the shard that saw it is poisoned.
    #[error("I/O failed ({kind}): {message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    /// The disk had no room for this write (ENOSPC, or the quota is spent). Refused
    /// before anything of it became visible or durable: the shard stays healthy and
    /// takes writes again once space returns.
    #[error("no space left for this write: {0}")]
    NoSpace(String),
    /// A block of a retired segment could not be read from the cold tier (down,
    /// unreachable, or not configured): worth retrying later.
    #[error("cold tier: {0}")]
    ColdTier(String),
    /// A bucket export was refused by import: the reason names the damaged block and
    /// its object. Nothing of the file became visible.
    #[error("import refused: {0}")]
    ImportRefused(String),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The engine could not start.
    #[error("cannot start: {0}")]
    Startup(String),
}

impl From<crate::plane::PlaneError> for EngineError {
    fn from(e: crate::plane::PlaneError) -> Self {
        use crate::plane::PlaneError as P;
        match e {
            P::Catalog(c) => Self::Catalog(c),
            P::Corrupt(s) => Self::Corrupt(s),
            P::NoSpace(e) => Self::NoSpace(e.to_string()),
            P::Io(e) => Self::io(&e),
            other => Self::Io {
                kind: std::io::ErrorKind::Other,
                message: other.to_string(),
            },
        }
    }
}

impl EngineError {
    /// An I/O failure, keeping the operating system's error kind.
    pub fn io(e: &std::io::Error) -> Self {
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// Which S3 bucket naming rule a name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BucketNameError {
    #[error("must be 3 to 63 characters long")]
    Length,
    #[error("may hold only lowercase letters, digits, dots and hyphens")]
    Characters,
    #[error("must begin and end with a letter or digit")]
    Ends,
    #[error("must not have adjacent dots or a dot next to a hyphen")]
    Dots,
    #[error("must not look like an IP address")]
    IpAddress,
    #[error("uses a reserved prefix")]
    ReservedPrefix,
    #[error("uses a reserved suffix")]
    ReservedSuffix,
}

/// Checks an S3 bucket name (the general-purpose bucket rules).
pub fn validate_bucket_name(name: &str) -> EngineResult<()> {
    let bad = |reason| {
        Err(EngineError::InvalidBucketName {
            name: name.to_owned(),
            reason,
        })
    };
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return bad(BucketNameError::Length);
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return bad(BucketNameError::Characters);
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return bad(BucketNameError::Ends);
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad(BucketNameError::Dots);
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad(BucketNameError::IpAddress);
    }
    for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(p) {
            return bad(BucketNameError::ReservedPrefix);
        }
    }
    for s in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(s) {
            return bad(BucketNameError::ReservedSuffix);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_bucket_name as v;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.1", "a1b", &"a".repeat(63)] {
            assert!(v(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "ABC",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "ab c",
        ] {
            assert!(v(bad).is_err(), "{bad}");
        }
    }
}
