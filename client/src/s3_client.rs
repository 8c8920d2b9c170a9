//! [`S3Client`]: signed requests to one endpoint over pooled keep-alive connections,
//! with answers read under a cap, so a misbehaving server can neither make the caller
//! buffer a whole object nor pass off other bytes for a range.

use crate::body::{self, ReadError, ReqBody};
use crate::error_body::ErrorBody;
use crate::pool::{Endpoint, EndpointError, IDLE_CONNECTIONS, Pool};
use crate::sign::{Payload, SignError, Signer};
use bytes::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Most bytes read of an answer that is not the data asked for (the answer to a PUT or
/// HEAD, an error document; S3's are well under a kilobyte). A server that sends more
/// is refused rather than buffered.
pub const ANSWER_BYTES_MAX: u64 = 64 << 10;

/// Where and as whom to reach an S3-compatible endpoint.
#[derive(Clone)]
pub struct S3Settings {
    /// `http://host[:port]` or `https://host[:port]`.
    pub endpoint: String,
    /// PEM certificates trusted besides the Mozilla roots (a private CA, a self-signed
    /// endpoint).
    pub ca_file: Option<PathBuf>,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// A request that makes no progress for this long fails; `None`: no limit.
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("{what}: {source}")]
    Sign {
        what: String,
        #[source]
        source: SignError,
    },
    /// Connecting, sending, reading, or no answer in time.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an error status (and S3 code, when the body had one).
    #[error("{what}: HTTP {status} {code}")]
    Status {
        what: String,
        status: u16,
        code: String,
    },
    #[error("{what}: the answer's body is longer than the {limit_bytes} bytes expected")]
    AnswerTooLong { what: String, limit_bytes: u64 },
    #[error(
        "{what}: a read of {len} bytes at {offset} was answered {status} with Content-Range \
         {content_range:?}; only a 206 with exactly that range is accepted"
    )]
    RangeNotHonoured {
        what: String,
        offset: u64,
        len: u64,
        status: u16,
        content_range: String,
    },
}

/// How much of an answer's body to read, and what to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Keep at most this many bytes; a longer body fails the request.
    Capped(u64),
    /// A ranged read: a success must be `206` with exactly this range, and its body is
    /// kept up to `len` bytes; an error answer is `Capped(ANSWER_BYTES_MAX)`.
    Range { offset: u64, len: u64 },
    /// Read a success's body to its end and count it, keeping nothing (a load
    /// generator's GET); an error answer is `Capped(ANSWER_BYTES_MAX)`.
    Count,
}

/// An answer read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as kept (empty for [`ReadLimit::Count`] successes).
    pub body: Bytes,
    /// Bytes the body had, kept or not.
    pub body_bytes: u64,
}

impl Answer {
    /// This answer if its status is a success; otherwise the error its body names.
    pub fn success(self, what: impl FnOnce() -> String) -> Result<Self, ClientError> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(self.status_error(what()))
    }

    /// The error this answer's status and body name (`<Code>`), for a caller that
    /// decided the status is not what it wanted.
    pub fn status_error(&self, what: String) -> ClientError {
        ClientError::Status {
            what,
            status: self.status.as_u16(),
            code: ErrorBody::parse(&self.body).code.unwrap_or_default(),
        }
    }

    pub fn header(&self, name: impl hyper::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A connection pool and signing identity for one endpoint; share it (`Arc`) between
/// the tasks that talk to that endpoint.
pub struct S3Client {
    pool: Pool,
    signer: Signer,
    timeout: Option<Duration>,
    settings: S3Settings,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn what(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

impl S3Client {
    pub fn new(settings: S3Settings) -> Result<Self, ClientError> {
        Self::with_idle_connections(settings, IDLE_CONNECTIONS)
    }

    /// A client that keeps at most `idle_max` idle connections.
    pub fn with_idle_connections(
        settings: S3Settings,
        idle_max: usize,
    ) -> Result<Self, ClientError> {
        let endpoint = Endpoint::parse(&settings.endpoint)?;
        let pool = Pool::new(endpoint, settings.ca_file.as_deref(), idle_max).map_err(|e| {
            EndpointError {
                endpoint: settings.endpoint.clone(),
                why: e.why,
            }
        })?;
        let signer = Signer::new(&settings.access_key, &settings.secret_key, &settings.region);
        Ok(Self {
            pool,
            signer,
            timeout: settings.timeout,
            settings,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        self.pool.endpoint()
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// Sends a signed request to `path` (percent-encoded path and query) and reads the
    /// answer, its body no longer than `limit` allows, all within the timeout. A
    /// connection goes back to the pool only after an answer read to its end.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, String)],
        payload: Payload<'_>,
        body: ReqBody,
        limit: ReadLimit,
    ) -> Result<Answer, ClientError> {
        let req = self.signed(method.clone(), path, extra, payload, body)?;
        let io = |source| ClientError::Io {
            what: what(&method, path),
            source,
        };
        let exchange = async {
            let mut conn = self.pool.ready_connection().await.map_err(io)?;
            let resp = conn
                .send_request(req)
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
            let (parts, incoming) = resp.into_parts();
            let answer = read_answer(parts, incoming, limit)
                .await
                .map_err(|e| e.into_error(what(&method, path)))?;
            self.pool.give_back(conn);
            Ok(answer)
        };
        self.within(exchange).await.unwrap_or_else(|t| Err(io(t)))
    }

    /// Sends a signed request whose body is streamed unsigned (`UNSIGNED-PAYLOAD`) and
    /// returns the answer as soon as its head arrives; the caller reads the answer's
    /// body without a time limit (an export, an import's report). The connection is
    /// not reused.
    pub async fn send_streaming(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, String)],
        body: ReqBody,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let req = self.signed(method.clone(), path, extra, Payload::Unsigned, body)?;
        let io = |source| ClientError::Io {
            what: what(&method, path),
            source,
        };
        let connect = self.pool.ready_connection();
        let mut conn = self.within(connect).await.map_err(io)?.map_err(io)?;
        // The request body may take long to send: no time limit on the answer's head.
        conn.send_request(req)
            .await
            .map_err(|e| io(std::io::Error::other(e)))
    }

    /// Runs `work` within the timeout; `Err` (a `TimedOut` error) when it ran out.
    async fn within<T>(&self, work: impl Future<Output = T>) -> Result<T, std::io::Error> {
        match self.timeout {
            None => Ok(work.await),
            Some(t) => tokio::time::timeout(t, work).await.map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {t:?}"),
                )
            }),
        }
    }

    fn signed(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, String)],
        payload: Payload<'_>,
        body: ReqBody,
    ) -> Result<Request<ReqBody>, ClientError> {
        let bad = |source| ClientError::Sign {
            what: what(&method, path),
            source,
        };
        let endpoint = self.pool.endpoint();
        let url = format!("{}://{}{path}", endpoint.scheme(), endpoint.host);
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 2);
        headers.push(("host", endpoint.host.as_str()));
        headers.push(("x-amz-content-sha256", payload.header_value()));
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let signature = self
            .signer
            .sign_headers(method.as_str(), &url, &headers, payload, SystemTime::now())
            .map_err(bad)?;
        let mut b = Request::builder().method(method.clone()).uri(path);
        for (k, v) in &headers {
            b = b.header(*k, *v);
        }
        for (k, v) in signature.headers() {
            b = b.header(k, v);
        }
        b.body(body).map_err(|e| ClientError::Io {
            what: what(&method, path),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })
    }
}

/// Why an answer was refused while reading it.
enum Refused {
    Read(ReadError),
    Range {
        status: u16,
        content_range: String,
        offset: u64,
        len: u64,
    },
}

impl Refused {
    fn into_error(self, what: String) -> ClientError {
        match self {
            Refused::Read(ReadError::TooLong { limit_bytes }) => {
                ClientError::AnswerTooLong { what, limit_bytes }
            }
            Refused::Read(ReadError::Io(e)) => ClientError::Io {
                what,
                source: std::io::Error::other(e),
            },
            Refused::Range {
                status,
                content_range,
                offset,
                len,
            } => ClientError::RangeNotHonoured {
                what,
                offset,
                len,
                status,
                content_range,
            },
        }
    }
}

async fn read_answer(
    parts: hyper::http::response::Parts,
    incoming: hyper::body::Incoming,
    limit: ReadLimit,
) -> Result<Answer, Refused> {
    let success = parts.status.is_success();
    let cap = match limit {
        ReadLimit::Range { offset, len } if success => {
            check_partial(&parts, offset, len)?;
            len
        }
        ReadLimit::Count if success => {
            let n = body::drain(incoming).await.map_err(Refused::Read)?;
            return Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body: Bytes::new(),
                body_bytes: n,
            });
        }
        ReadLimit::Capped(n) => n,
        _ => ANSWER_BYTES_MAX,
    };
    let body = body::read_capped(incoming, cap)
        .await
        .map_err(Refused::Read)?;
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body_bytes: body.len() as u64,
        body,
    })
}

/// Accepts the head of a successful answer to a ranged read only when it is a `206`
/// whose `Content-Range` is exactly `offset`..`offset + len`.
fn check_partial(
    head: &hyper::http::response::Parts,
    offset: u64,
    len: u64,
) -> Result<(), Refused> {
    debug_assert!(len > 0, "an empty range is not requested");
    let content_range = head
        .headers
        .get(hyper::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = format!("bytes {offset}-{}/", offset + len - 1);
    if head.status == StatusCode::PARTIAL_CONTENT && content_range.starts_with(&want) {
        return Ok(());
    }
    Err(Refused::Range {
        status: head.status.as_u16(),
        content_range: content_range.to_owned(),
        offset,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_a_scheme_and_a_host() {
        let s = |e: &str| S3Settings {
            endpoint: e.into(),
            ca_file: None,
            region: "r".into(),
            access_key: "a".into(),
            secret_key: "b".into(),
            timeout: Some(Duration::from_secs(1)),
        };
        assert!(S3Client::new(s("http://127.0.0.1:9000")).is_ok());
        assert!(S3Client::new(s("http://127.0.0.1:9000/")).is_ok());
        let tls = S3Client::new(s("https://s3.example.com")).unwrap();
        assert_eq!(tls.endpoint().addr, "s3.example.com:443");
        assert_eq!(
            S3Client::new(s("http://minio")).unwrap().endpoint().addr,
            "minio:80"
        );
        assert!(S3Client::new(s("http://host/path")).is_err());
        assert!(S3Client::new(s("ftp://host")).is_err());
        assert!(S3Client::new(s("127.0.0.1:9000")).is_err());
    }
}
