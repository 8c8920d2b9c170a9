//! A lean S3 client for load generation: one HTTP/1.1 keep-alive connection (hyper),
//! requests signed with aws-sigv4 (the signer the AWS SDKs use) and sent with
//! `UNSIGNED-PAYLOAD`, so the generator does not hash the bodies it sends. Each
//! worker owns one client; a failed connection is replaced on the next request.

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::SystemTime;

/// Where and as whom the generator talks.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host[:port]` as sent in `Host` (and signed).
    pub host: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

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

/// A successful answer: status, the headers the generator uses, and the body length
/// (bodies are drained, not kept, unless asked for).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body_bytes: u64,
    pub body: Option<Bytes>,
}

pub struct Client {
    target: std::sync::Arc<Target>,
    conn: Option<SendRequest<Full<Bytes>>>,
    /// The signing identity, built once (not per request).
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.target.addr)
            .finish()
    }
}

fn connection_error(e: impl std::fmt::Display) -> RequestError {
    RequestError::Connection(e.to_string())
}

/// The `<Code>` of an S3 error body.
fn error_code(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map_or_else(String::new, |(c, _)| c.to_owned())
}

impl Client {
    pub fn new(target: std::sync::Arc<Target>) -> Self {
        let identity = aws_credential_types::Credentials::new(
            &target.access_key,
            &target.secret_key,
            None,
            None,
            "bench",
        )
        .into();
        Self {
            target,
            conn: None,
            identity,
        }
    }

    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, RequestError> {
        let alive = self.conn.as_ref().is_some_and(|c| !c.is_closed());
        if !alive {
            let stream = tokio::net::TcpStream::connect(self.target.addr)
                .await
                .map_err(connection_error)?;
            stream.set_nodelay(true).map_err(connection_error)?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(connection_error)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some(send);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| RequestError::Connection("no connection".into()))
    }

    /// Sends one signed request. `path_and_query` is already percent-encoded.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        keep_body: bool,
    ) -> Result<Answer, RequestError> {
        let req = self.signed(method, path_and_query, body)?;
        let conn = self.connection().await?;
        conn.ready().await.map_err(connection_error)?;
        let resp = match conn.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(connection_error(e));
            }
        };
        let status = resp.status();
        let etag = resp
            .headers()
            .get(hyper::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = resp.into_body();
        let mut n = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                self.conn = None;
                connection_error(e)
            })?;
            if let Some(d) = frame.data_ref() {
                n += d.len() as u64;
                if keep_body || !status.is_success() {
                    kept.extend_from_slice(d);
                }
            }
        }
        if !status.is_success() {
            return Err(RequestError::Status {
                status: status.as_u16(),
                code: error_code(&kept),
            });
        }
        Ok(Answer {
            status,
            etag,
            body_bytes: n,
            body: keep_body.then(|| Bytes::from(kept)),
        })
    }

    fn signed(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        let t = &self.target;
        let url = format!("http://{}{}", t.host, path_and_query);
        let len = body.len().to_string();
        let headers = [("host", t.host.as_str()), ("content-length", len.as_str())];
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&t.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| RequestError::BadAnswer(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            &url,
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| RequestError::BadAnswer(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| RequestError::BadAnswer(format!("signing: {e}")))?
            .into_parts();
        let mut b = Request::builder().method(method).uri(path_and_query);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        for (k, v) in instructions.headers() {
            b = b.header(k, v);
        }
        b.body(Full::new(body))
            .map_err(|e| RequestError::BadAnswer(format!("request: {e}")))
    }
}

/// Percent-encodes a key for a path (S3's rules: everything but unreserved and `/`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_for_paths_and_codes_found_in_bodies() {
        assert_eq!(encode_key("a b/ü+x"), "a%20b/%C3%BC%2Bx");
        assert_eq!(
            error_code(b"<Error><Code>NoSuchKey</Code><Message>m</Message></Error>"),
            "NoSuchKey"
        );
        assert_eq!(error_code(b""), "");
    }
}
