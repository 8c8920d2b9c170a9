//! ingot-engine's S3 frontend.
//!
//! A tokio runtime runs hyper and [s3s]: s3s parses requests, checks SigV4 (headers,
//! presigned URLs, aws-chunked bodies with signed chunks or checksum trailers) and
//! writes S3's XML; [`s3::IngotS3`] turns each operation into calls on the engine's
//! shards; [`error::s3_error`] is the one table from engine errors to S3 errors.
//! [`admin`] serves signed bucket exports, imports and checks. Browser-form uploads
//! (PostObject) are served ahead of s3s by `post_object`, which reads a form's file
//! only after its policy is checked. The frontend never touches engine files.
//!
//! No global state: [`Frontend::bind`] takes its configuration and an engine slot,
//! [`Frontend::serve`] runs until the shutdown future resolves.

mod admin;
mod attributes;
pub mod body;
pub mod checksum;
pub mod conditions;
pub mod error;
mod error_body;
mod form;
mod list;
pub mod metrics;
mod multipart;
mod objects;
mod post_object;
mod post_policy;
pub mod s3;
pub mod server;
mod settings;

pub use metrics::Metrics;
pub use objects::MAX_PUT_BYTES;
pub use s3::{EngineSlot, IngotS3};
pub use server::{Frontend, FrontendConfig, FrontendError};
