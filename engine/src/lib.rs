#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//! The ingot-engine storage engine.
//!
//! The facade, what the rest of the node uses:
//! - [`Engine`] and [`EngineConfig`]: the thread-per-core engine and its cross-runtime
//!   handle, with the request/response types of its API at the crate root; segment
//!   lifecycle steps taken from outside (shipping, retiring) are its methods.
//! - [`error`]: the engine's errors, [`EngineError`] first.
//! - [`archive`]: a bucket as one CAR file — the walk export, import and verify share.
//! - [`catalog`]: the [`catalog::Catalog`] trait and its records (buckets, segment
//!   records, uploads, keys), and the embedded catalog on redb.
//! - [`cold`]: the seam to the cold tier, implemented by the shipper.
//! - [`format`]: the object manifest, its headers and checksums.
//! - [`checksum`]: S3's additional checksums, composite and combined.
//! - [`metrics`]: shard counters and the engine's lines of `/metrics`.
//! - [`hex`]: lower-case hex, as S3 spells ETags.
//!
//! Internal, public only with the `testing` feature (tests, benchmarks, fuzzers):
//! `cbor` (canonical DAG-CBOR), `block` (CIDs, block sources and sinks), `mst` (the
//! bucket Merkle Search Tree), `chunker`, `segment` (CAR frames, segment indexes), `io`
//! (io_uring, blocking files, the simulated disk), `plane` (plane logs: group commit,
//! lifecycle, recovery scan), `block_lookup`, `shard`, `handle`, `data_dir`.
//!
//! Formats are specified byte by byte in `docs/format.md`; the write and recovery
//! paths in `docs/ARCHITECTURE.md`.

// Everything but the facade is the engine's own; the `testing` feature opens the
// internals to the engine's integration tests, benchmarks and fuzzers, never to
// production builds (tests enable it through dev-dependencies).

/// Declares an internal module: crate-private, public under the `testing` feature.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "testing")]
            pub mod $name;
            #[cfg(not(feature = "testing"))]
            pub(crate) mod $name;
        )*
    };
}

pub mod archive;
pub mod catalog;
pub mod checksum;
pub mod cold;
pub mod error;
pub mod format;
pub mod hex;
pub mod metrics;

internal!(
    api,
    block,
    block_lookup,
    cbor,
    chunker,
    data_dir,
    handle,
    io,
    mst,
    plane,
    segment,
    shard,
);
#[cfg(feature = "testing")]
pub mod testing;
mod threads;

pub use api::*;
pub use data_dir::create_private as create_private_dir;
pub use error::{BucketNameError, EngineError, EngineResult, KeyError};
pub use handle::{Engine, EngineConfig, IoMode, car_bytes, placement_shard};
pub use plane::{car_name, index_name};
pub use segment::{Plane, SegmentId};
/// One shard on its own, as the engine's tests drive it.
#[cfg(feature = "testing")]
pub use shard::Shard;
pub use shard::{CompleteOptions, CompletePart, MAX_PARTS, MIN_PART_BYTES, ShardConfig};
