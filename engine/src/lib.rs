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

pub mod api;
pub mod archive;
pub mod block;
pub mod block_lookup;
pub mod catalog;
pub mod cbor;
pub mod checksum;
pub mod chunker;
pub mod cold;
pub mod data_dir;
pub mod error;
pub mod format;
pub mod handle;
pub mod hex;
pub mod io;
pub mod metrics;
pub mod mst;
pub mod plane;
pub mod segment;
pub mod shard;
#[cfg(feature = "testing")]
pub mod testing;
mod threads;

pub use api::*;
pub use error::{BucketNameError, EngineError, EngineResult, KeyError};
pub use handle::{Engine, EngineConfig, IoMode, car_bytes, placement_shard};
pub use shard::{CompleteOptions, CompletePart, MAX_PARTS, MIN_PART_BYTES, Shard, ShardConfig};
