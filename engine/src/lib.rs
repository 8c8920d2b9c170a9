#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//! The ingot-engine storage engine.
//!
//! - [`cbor`]: the canonical DAG-CBOR writer and strict reader.
//! - [`block`]: CIDs, block verification, block sources and sinks.
//! - [`mst`]: the bucket Merkle Search Tree.
//! - [`format`]: object manifests, chunk indexes, bucket commits.
//! - [`chunker`]: streaming body chunking and hashing.
//! - [`segment`]: CAR segment frames and segment indexes.
//!
//! Formats are specified byte by byte in `docs/format.md`.

pub mod block;
pub mod catalog;
pub mod cbor;
pub mod chunker;
pub mod format;
pub mod io;
pub mod mst;
pub mod plane;
pub mod segment;
