#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//! The ingot-engine storage engine.
//!
//! - [`archive`]: a bucket as one CAR file — the walk export, import and verify share.
//! - [`cbor`]: the canonical DAG-CBOR writer and strict reader.
//! - [`block`]: CIDs, block verification, block sources and sinks.
//! - [`mst`]: the bucket Merkle Search Tree.
//! - [`format`]: object manifests, chunk indexes, bucket commits.
//! - [`chunker`]: streaming body chunking and hashing.
//! - [`checksum`]: S3's additional checksums, composite and combined.
//! - [`segment`]: CAR segment frames and segment indexes.
//! - [`io`]: the I/O seam (io_uring, blocking files, simulated disk).
//! - [`plane`]: plane logs — segments, group commit, lifecycle, recovery scan.
//! - [`catalog`]: buckets, segment records, uploads, keys (embedded on redb).
//! - [`shard`]: one shard's buckets, trees, caches and commit loop.
//! - [`handle`]: the thread-per-core engine and its cross-runtime handle.
//! - [`data_dir`]: the data directory's layout, modes and first-start fsyncs.
//!
//! Formats are specified byte by byte in `docs/format.md`; the write and recovery
//! paths in `docs/ARCHITECTURE.md`.

// The facade: what the frontend, the shipper and the binary use. Everything else is
// the engine's own; the `testing` feature opens the internals to the engine's
// integration tests, benchmarks and fuzzers (never to production builds).

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
mod threads;

pub use api::*;
pub use data_dir::create_private as create_private_dir;
pub use error::{EngineError, EngineResult};
pub use handle::{Engine, EngineConfig, IoMode, car_bytes, placement_shard};
pub use plane::{car_name, index_name};
pub use segment::{Plane, SegmentId};
/// One shard on its own, as the engine's tests drive it.
#[cfg(feature = "testing")]
pub use shard::Shard;
pub use shard::{CompleteOptions, CompletePart, MAX_PARTS, MIN_PART_BYTES, ShardConfig};
