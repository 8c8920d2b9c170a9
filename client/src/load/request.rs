//! One load-generator connection: an [`S3Client`] that keeps one keep-alive
//! connection, sending bodies `UNSIGNED-PAYLOAD` (the generator does not hash what it
//! sends) and counting, not keeping, what it reads. A failed connection is replaced
//! on the next request.

use crate::s3_client::ANSWER_BYTES_MAX;
use crate::{Answer, ClientError, Payload, ReadLimit, S3Client, S3Settings, body};
use bytes::Bytes;
use hyper::Method;

/// Why a request failed, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum RequestError {
    /// The server answered with an error status (and S3 code, when the body had one).
    #[error("HTTP {status} {code}")]
    Status { status: u16, code: String },
    /// Connecting, sending or reading failed.
    #[error("connection: {0}")]
    Connection(String),
    /// The answer was not what the operation expects.
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

impl From<ClientError> for RequestError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Status { status, code, .. } => RequestError::Status { status, code },
            ClientError::Io { source, .. } => RequestError::Connection(source.to_string()),
            other => RequestError::BadAnswer(other.to_string()),
        }
    }
}

/// A worker's client.
#[derive(Debug)]
pub struct Client(S3Client);

impl Client {
    pub fn new(settings: &S3Settings) -> Result<Self, RequestError> {
        Ok(Self(S3Client::with_idle_connections(settings.clone(), 1)?))
    }

    /// Sends one signed request (`path_and_query` already percent-encoded); a success's
    /// body is counted, not kept.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, RequestError> {
        self.exchange(method, path_and_query, body, ReadLimit::Count)
            .await
    }

    /// [`Client::send`] for a short answer whose body the caller reads.
    pub async fn send_keep(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, RequestError> {
        let limit = ReadLimit::Capped(ANSWER_BYTES_MAX);
        self.exchange(method, path_and_query, body, limit).await
    }

    async fn exchange(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        limit: ReadLimit,
    ) -> Result<Answer, RequestError> {
        let extra = [("content-length", body.len().to_string())];
        let answer = self
            .0
            .send(
                method.clone(),
                path_and_query,
                &extra,
                Payload::Unsigned,
                body::full(body),
                limit,
            )
            .await?;
        Ok(answer.success(|| format!("{method} {path_and_query}"))?)
    }
}
