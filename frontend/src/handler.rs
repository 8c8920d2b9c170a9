//! [`IngotS3`], ingot-engine's S3 handler, and the helpers every operation file
//! (`s3.rs`, `objects.rs`, `multipart.rs`, `list.rs`, `settings.rs`, ...) shares.

use crate::error::s3_error;
use crate::request_metrics::Metrics;
use engine::{Engine, EngineError};
use s3s::dto::{Owner, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The engine, once recovery has finished (requests before that get 503).
pub type EngineSlot = Arc<OnceLock<Arc<Engine>>>;

/// ingot-engine's implementation of the S3 trait.
#[derive(Debug, Clone)]
pub struct IngotS3 {
    pub(crate) engine: EngineSlot,
    pub(crate) region: String,
    pub(crate) metrics: Arc<Metrics>,
    /// The owner every bucket and object reports (one account per node).
    pub(crate) owner_id: String,
}

impl IngotS3 {
    pub fn new(
        engine: EngineSlot,
        region: String,
        metrics: Arc<Metrics>,
        access_key: &str,
    ) -> Self {
        // A stable owner id derived from the root key, not the key itself.
        let digest = md5::Md5::digest(access_key.as_bytes());
        let owner_id = engine::hex::encode(&digest);
        Self {
            engine,
            region,
            metrics,
            owner_id,
        }
    }

    pub(crate) fn engine(&self) -> S3Result<&Arc<Engine>> {
        self.engine.get().ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "The node is recovering its storage; retry shortly.",
            )
        })
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner {
            display_name: Some("ingot".to_owned()),
            id: Some(self.owner_id.clone()),
        }
    }

    pub(crate) fn is_us_east_1(&self) -> bool {
        self.region == "us-east-1"
    }
}

use md5::Digest as _;

/// Milliseconds since the epoch as an S3 timestamp.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn engine_err(e: EngineError) -> S3Error {
    s3_error(e)
}

pub(crate) fn invalid_argument(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg.into())
}

/// An unversioned bucket knows one version per key, `null`.
pub(crate) fn check_version(v: Option<&str>) -> S3Result<()> {
    match v {
        None | Some("null") => Ok(()),
        Some(_) => Err(invalid_argument("Invalid version id specified")),
    }
}
