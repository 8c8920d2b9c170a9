//! ingot-engine's S3 frontend.
//!
//! A tokio runtime runs hyper and [s3s]: s3s parses requests, checks SigV4 (headers,
//! presigned URLs, aws-chunked bodies with signed chunks or checksum trailers) and
//! writes S3's XML; [`s3::IngotS3`] turns each operation into calls on the engine's
//! shards; [`error::s3_error`] is the one table from engine errors to S3 errors.
//! [`admin`] serves signed bucket exports, imports and checks. Before s3s sees a
//! request, `auth_rules` refuses what AWS refuses on its head (SigV2, presigned URLs
//! valid for more than a week, unsigned `x-amz-*` headers) and [`chunk_limits`]
//! checks aws-chunked framing as the body streams in; [`s3s_limits`] sets every limit
//! s3s applies. Browser-form uploads (PostObject) are served ahead of s3s by
//! `post_object`, which reads a form's file only after its policy is checked. [`tls`]
//! terminates HTTPS on the same listener and [`conn`] bounds what one client
//! connection may hold. The frontend never touches engine files.
//!
//! No global state: [`Frontend::bind`] takes its configuration and an engine slot,
//! [`Frontend::serve`] runs until the shutdown future resolves.

mod admin;
mod attributes;
mod auth_rules;
pub mod body;
pub mod checksum;
pub mod chunk_limits;
pub mod conditions;
pub mod conn;
pub mod error;
mod error_answer;
mod form;
mod handler;
mod list;
mod multipart;
mod objects;
mod op_name;
mod post_object;
mod post_policy;
pub mod request_metrics;
pub mod s3;
pub mod s3s_limits;
pub mod server;
mod settings;
pub mod tls;
mod virtual_hosts;

pub use conn::ConnLimits;
pub use handler::{EngineSlot, IngotS3};
pub use objects::MAX_PUT_BYTES;
pub use request_metrics::Metrics;
pub use server::{Frontend, FrontendConfig, FrontendError};
pub use tls::TlsFiles;
