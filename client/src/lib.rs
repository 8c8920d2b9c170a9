//! The one way ingot-engine talks S3 as a client: the shipper's `s3://` target, the
//! command line's online `export`/`import`/`verify`, and the load generator behind
//! `ingot-engine bench` ([`load`]) all go through here.
//!
//! - [`sign`]: SigV4 (an `Authorization` header over a signed or `UNSIGNED-PAYLOAD`
//!   body, or a presigned query string), with S3's rules (paths encoded once, never
//!   normalised).
//! - [`key`]: percent-encoding of keys for paths and of query values.
//! - [`S3Client`]: one endpoint (`http://` or `https://` through rustls), a keep-alive
//!   connection pool, signed requests, answers read with a cap on their size.
//! - [`error_body`]: the `<Code>` and `<Message>` of an S3 error document.
//! - [`backoff`]: capped exponential backoff with full jitter, for callers that retry.
//!
//! The crate knows nothing of the engine: it speaks S3 to any server.

pub mod backoff;
pub mod body;
pub mod error_body;
pub mod key;
pub mod load;
pub mod pool;
pub mod s3_client;
pub mod sign;

pub use backoff::Backoff;
pub use error_body::ErrorBody;
pub use key::{encode_key, encode_query_value};
pub use s3_client::{Answer, ClientError, ReadLimit, S3Client, S3Settings};
pub use sign::{Payload, Signature, Signer};

/// SHA-256 of the empty body, the payload hash of a request without one.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
