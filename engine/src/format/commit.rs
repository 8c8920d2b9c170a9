//! The bucket commit: `{"/commit/1": {"seq", "prev", "root", "time", "bucket"}}`, one per
//! committed change batch of a bucket. `prev` chains a bucket's commits into a verifiable
//! history; the newest durable commit is the bucket's head.

use super::{check_cbor_link, open_union, required, write_union};
use crate::cbor::{self, DecodeError, Decoder};
use cid::Cid;

pub const COMMIT_TAG: &str = "/commit/1";
/// Longest bucket name a commit may carry (S3 names are at most 63 bytes).
pub const MAX_BUCKET_NAME_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub bucket: String,
    /// The MST root after the batch.
    pub root: Cid,
    /// The previous commit of the bucket; `None` exactly for `seq == 1`.
    pub prev: Option<Cid>,
    /// Per-bucket counter, starting at 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Commit {
    /// Canonical encoding; keys in DAG-CBOR order: seq, prev, root, time, bucket.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(160);
        write_union(&mut buf, COMMIT_TAG);
        cbor::write_map(&mut buf, 5);
        cbor::write_text(&mut buf, "seq");
        cbor::write_uint(&mut buf, self.seq);
        cbor::write_text(&mut buf, "prev");
        cbor::write_opt_link(&mut buf, self.prev.as_ref());
        cbor::write_text(&mut buf, "root");
        cbor::write_link(&mut buf, &self.root);
        cbor::write_text(&mut buf, "time");
        cbor::write_uint(&mut buf, self.time_ms);
        cbor::write_text(&mut buf, "bucket");
        cbor::write_text(&mut buf, &self.bucket);
        buf
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn cid(&self) -> Cid {
        crate::block::cid_dag_cbor(&self.encode())
    }

    /// Strict decoding of an untrusted commit block.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        open_union(&mut d, COMMIT_TAG)?;
        if d.map()? != 5 {
            return Err(DecodeError::schema(
                "commit must be a map of exactly 5 fields",
            ));
        }
        let (mut seq, mut prev, mut root, mut time, mut bucket) = (None, None, None, None, None);
        let mut last = None;
        for _ in 0..5 {
            match d.key(&mut last)? {
                "seq" => seq = Some(d.uint()?),
                "prev" => prev = Some(d.opt_link()?),
                "root" => root = Some(d.link()?),
                "time" => time = Some(d.uint()?),
                "bucket" => bucket = Some(d.text()?.to_owned()),
                other => {
                    return Err(DecodeError::schema(format!(
                        "unknown commit field {other:?}"
                    )));
                }
            }
        }
        d.finish()?;
        let commit = Commit {
            seq: required(seq, "seq")?,
            prev: required(prev, "prev")?,
            root: required(root, "root")?,
            time_ms: required(time, "time")?,
            bucket: required(bucket, "bucket")?,
        };
        check_cbor_link(&commit.root, "commit root")?;
        if let Some(p) = &commit.prev {
            check_cbor_link(p, "commit prev")?;
        }
        if commit.seq == 0 {
            return Err(DecodeError::schema("commit seq starts at 1"));
        }
        if commit.prev.is_none() != (commit.seq == 1) {
            return Err(DecodeError::schema(
                "commit prev must be null exactly when seq is 1",
            ));
        }
        if commit.bucket.is_empty() || commit.bucket.len() > MAX_BUCKET_NAME_BYTES {
            return Err(DecodeError::schema(
                "commit bucket name length out of range",
            ));
        }
        Ok(commit)
    }
}
