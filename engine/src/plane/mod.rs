//! Plane logs: each shard's data plane (body chunks) and meta plane (manifests, chunk
//! indexes, MST nodes, commits) are sequences of CAR segments written through the I/O
//! seam ([`crate::io`]).
//!
//! - [`segment`]: one open segment: append, group commit, seal, and recovery's scan.
//! - [`hasher`]: a segment's SHA-256, computed on a thread of its own.
//! - [`log`]: the sequence of segments of a plane, their lifecycle and recovery.
//! - [`spare`]: making a new segment (free-space check, create steps, undo on ENOSPC).

pub mod hasher;
pub mod log;
pub mod segment;
pub mod spare;
pub mod tail;

pub use log::{Location, PlaneConfig, PlaneLog};
pub use segment::{car_name, index_name};
// Reached by tests and benchmarks only.
#[cfg(feature = "testing")]
pub use {
    log::{CommitJob, PlaneRecovery},
    segment::{BlockSource, OpenSegment, Recovered, recover},
};

/// Plane-log failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaneError {
    /// A write or sync failed; the segment is now poisoned.
    #[error("plane log I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A new segment could not get its space (ENOSPC at the free-space check, the
    /// creation, the preallocation or the pre-write). Nothing changed: the partial file
    /// and its record are gone, the open segment (if any) still takes what fits, and
    /// the next roll tries again. Never poisons.
    #[error("no space for a new segment: {0}")]
    NoSpace(std::io::Error),
    /// An earlier write or sync failed: nothing more is accepted.
    #[error("plane log is poisoned by an earlier I/O failure")]
    Poisoned,
    /// The frame does not fit in the open segment: seal it and open the next.
    #[error("open segment is full")]
    Full,
    #[error("plane log is inconsistent: {0}")]
    Corrupt(String),
    /// The block's segment was retired: its bytes are only at `location` now.
    #[error("segment {segment} is retired; its blocks are at {location}")]
    Retired { segment: String, location: String },
    /// Recording a lifecycle step failed; the plane stops (nothing half-recorded).
    #[error("catalog: {0}")]
    Catalog(crate::catalog::CatalogError),
}

impl PlaneError {
    /// An error of a step that makes a new segment's space: ENOSPC (or a spent quota)
    /// is [`PlaneError::NoSpace`], anything else [`PlaneError::Io`].
    pub(crate) fn making_space(e: std::io::Error) -> Self {
        if crate::io::is_no_space(&e) {
            Self::NoSpace(e)
        } else {
            Self::Io(e)
        }
    }
}
