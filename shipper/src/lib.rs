//! The cold tier (`docs/ARCHITECTURE.md`, shipping): sealed segments leave the node for a
//! target, and blocks of retired segments are read back from it with ranged reads.
//!
//! This crate runs on the tokio side and has no global setup: a [`target::Target`] is
//! built from a URL and used by whoever ships or reads.

pub mod backoff;
pub mod target;

pub use backoff::Backoff;
pub use target::{Target, TargetError};
