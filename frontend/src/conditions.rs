//! Conditional requests (RFC 9110 as S3 applies them): `If-Match`,
//! `If-Unmodified-Since` → 412; `If-None-Match`, `If-Modified-Since` → 304 on reads
//! (412 for the copy-source forms).

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The four conditions of a read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// What failing `If-None-Match` / `If-Modified-Since` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotModified {
    /// GET and HEAD: 304.
    Status304,
    /// CopyObject's copy-source conditions: 412.
    Status412,
}

fn etag_matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions<'_> {
    /// Evaluates the conditions against an object with `etag` (unquoted) last modified
    /// at `mtime_ms`. HTTP dates have whole seconds, so the object's time is truncated.
    pub fn check(&self, etag: &str, mtime_ms: u64, not_modified: NotModified) -> S3Result<()> {
        let mtime_s = (mtime_ms / 1000) as i64;
        let failed = |code| Err(S3Error::new(code));
        if let Some(c) = self.if_match {
            if !etag_matches(c, etag) {
                return failed(S3ErrorCode::PreconditionFailed);
            }
        } else if let Some(t) = self.if_unmodified_since
            && mtime_s > seconds(t)
        {
            return failed(S3ErrorCode::PreconditionFailed);
        }
        let unchanged = match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => etag_matches(c, etag),
            (None, Some(t)) => mtime_s <= seconds(t),
            (None, None) => false,
        };
        if unchanged {
            return match not_modified {
                NotModified::Status304 => failed(S3ErrorCode::NotModified),
                NotModified::Status412 => failed(S3ErrorCode::PreconditionFailed),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use std::time::{Duration, SystemTime};

    fn at(s: u64) -> Timestamp {
        Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    }

    fn code(r: S3Result<()>) -> Option<S3ErrorCode> {
        r.err().map(|e| e.code().clone())
    }

    #[test]
    fn conditions_follow_s3_precedence() {
        let tag = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("zzz".into()));
        let (old, new, same) = (at(1_000), at(3_000), at(2_000));
        let mtime_ms = 2_000_500;
        let c = |m, n, ms, us| Conditions {
            if_match: m,
            if_none_match: n,
            if_modified_since: ms,
            if_unmodified_since: us,
        };
        let nm = NotModified::Status304;
        assert_eq!(
            code(c(Some(&tag), None, None, None).check("abc", mtime_ms, nm)),
            None
        );
        assert_eq!(
            code(c(Some(&other), None, None, None).check("abc", mtime_ms, nm)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        // If-Match true wins over If-Unmodified-Since false.
        assert_eq!(
            code(c(Some(&tag), None, None, Some(&old)).check("abc", mtime_ms, nm)),
            None
        );
        assert_eq!(
            code(c(None, None, None, Some(&old)).check("abc", mtime_ms, nm)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            code(c(None, Some(&tag), None, None).check("abc", mtime_ms, nm)),
            Some(S3ErrorCode::NotModified)
        );
        // If-None-Match false decides even when If-Modified-Since says unchanged.
        assert_eq!(
            code(c(None, Some(&other), Some(&new), None).check("abc", mtime_ms, nm)),
            None
        );
        assert_eq!(
            code(c(None, None, Some(&new), None).check("abc", mtime_ms, nm)),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            code(c(None, None, Some(&old), None).check("abc", mtime_ms, nm)),
            None
        );
        // The same second as the object's time counts as not modified since.
        assert_eq!(
            code(c(None, None, Some(&same), None).check("abc", mtime_ms, nm)),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            code(c(None, Some(&ETagCondition::Any), None, None).check(
                "x",
                0,
                NotModified::Status412
            )),
            Some(S3ErrorCode::PreconditionFailed)
        );
    }
}
