//! `s3://bucket/prefix`: any S3-compatible endpoint over HTTP/1.1 or HTTPS (rustls, with
//! the Mozilla root certificates and an optional extra CA file), path-style.
//!
//! An upload streams the file from disk with `x-amz-content-sha256` set to the SHA-256
//! recorded at seal and signed (SigV4): the server hashes what it receives and refuses a
//! body that differs (`XAmzContentSHA256Mismatch`), so a corrupted upload is never
//! stored. `If-None-Match: *` keeps an upload from replacing a different object of the
//! same name (another node shipping to the same prefix): when the object exists, its
//! recorded digest (`x-amz-meta-sha256`) must equal ours, which makes a repeated upload
//! after a crash a success and a name clash an error. Reads are ranged GETs: only a 206
//! with exactly the range asked for is accepted, and no answer body is read past what
//! was asked for (the range; 64 KiB for anything else), so a misbehaving server can
//! neither make the node buffer a whole object nor pass off other bytes (the engine
//! then verifies every block against its CID).

use super::TargetError;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncRead;

/// SHA-256 of the empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Idle connections kept per endpoint.
const IDLE_CONNECTIONS: usize = 8;
/// Bytes read from disk per body frame.
const FRAME_BYTES: usize = 256 << 10;
/// Most bytes read of an answer that is not the data asked for (the answer to a PUT or
/// HEAD, an error document; S3's are well under a kilobyte). A server that sends more
/// is refused rather than buffered.
const ANSWER_BYTES_MAX: u64 = 64 << 10;

/// What the body of a request's answer may hold.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A short answer: at most [`ANSWER_BYTES_MAX`].
    Small,
    /// A ranged read: a success must be `206` with exactly this range, and its body is
    /// read up to `len` bytes; an error answer is [`Expect::Small`].
    Range { offset: u64, len: u64 },
}

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// Where and as whom to reach an S3-compatible endpoint.
#[derive(Clone)]
pub struct S3Settings {
    /// `http://host[:port]` or `https://host[:port]`.
    pub endpoint: String,
    /// PEM certificates trusted besides the Mozilla roots (a private CA, a self-signed
    /// endpoint).
    pub ca_file: Option<std::path::PathBuf>,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// A request that makes no progress for this long fails (and is retried later).
    pub timeout: Duration,
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

/// TLS for an `https://` endpoint.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
}

/// A connection pool and signing identity for one endpoint, shared by its targets.
pub struct S3Client {
    settings: S3Settings,
    /// `host[:port]`, as sent in `Host` and signed.
    host: String,
    /// `host:port` to connect to.
    addr: String,
    tls: Option<Tls>,
    identity: aws_smithy_runtime_api::client::identity::Identity,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    pub fn new(settings: S3Settings) -> Result<Self, TargetError> {
        let bad = |why: String| TargetError::BadUrl {
            url: settings.endpoint.clone(),
            why,
        };
        let (https, rest) = match settings.endpoint.split_once("://") {
            Some(("http", r)) => (false, r),
            Some(("https", r)) => (true, r),
            _ => {
                return Err(bad(
                    "the S3 endpoint must be http:// or https://host[:port]".into(),
                ));
            }
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad(
                "the S3 endpoint is a scheme and host[:port] only".into()
            ));
        }
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
        let addr = if has_port {
            host.to_owned()
        } else {
            format!("{host}:{}", if https { 443 } else { 80 })
        };
        let tls = if https {
            Some(tls(&settings, host).map_err(bad)?)
        } else {
            None
        };
        let host = host.to_owned();
        let identity = aws_credential_types::Credentials::new(
            &settings.access_key,
            &settings.secret_key,
            None,
            None,
            "ingot-shipper",
        )
        .into();
        Ok(Self {
            settings,
            host,
            addr,
            tls,
            identity,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connection(&self) -> Result<SendRequest<ReqBody>, TargetError> {
        loop {
            let c = self.idle.lock().ok().and_then(|mut v| v.pop());
            match c {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let io = |e: std::io::Error| TargetError::io(format!("connect to {}", self.addr), e);
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let other = |e| io(std::io::Error::other(e));
        let send = match &self.tls {
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), stream)
                    .await
                    .map_err(io)?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(other)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
            None => {
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(other)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
        };
        Ok(send)
    }

    fn give_back(&self, c: SendRequest<ReqBody>) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < IDLE_CONNECTIONS
        {
            v.push(c);
        }
    }

    /// Sends a signed request and reads the answer, its body no longer than `expect`
    /// allows (bounded by the timeout). A connection goes back to the pool only after
    /// an answer read to its end.
    async fn send(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, String)],
        payload_sha256: &str,
        body: ReqBody,
        expect: Expect,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), TargetError> {
        let what = format!("{method} {path}");
        let req = self.signed(method, path, extra, payload_sha256, body)?;
        let io = |e: std::io::Error| TargetError::io(what.clone(), e);
        let exchange = async {
            let mut conn = self.connection().await?;
            conn.ready()
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
            let resp = conn
                .send_request(req)
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
            let (parts, body) = resp.into_parts();
            let limit_bytes = match expect {
                Expect::Range { offset, len } if parts.status.is_success() => {
                    check_partial(&what, &parts, offset, len)?;
                    len
                }
                _ => ANSWER_BYTES_MAX,
            };
            let bytes = read_capped(body, limit_bytes, &what).await?;
            self.give_back(conn);
            Ok((parts.status, parts.headers, bytes))
        };
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| {
                io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.settings.timeout),
                ))
            })?
    }

    /// Sends a signed request whose body (a file, or none) is streamed unsigned
    /// (`UNSIGNED-PAYLOAD`) and returns the answer as soon as its head arrives; the
    /// answer's body is read by the caller without a time limit. For the admin
    /// endpoint's exports and imports.
    pub async fn send_streaming(
        &self,
        method: Method,
        path: &str,
        file: Option<(tokio::fs::File, u64)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, TargetError> {
        let (body, extra) = match file {
            Some((file, len)) => (
                FileBody {
                    file,
                    remaining: len,
                }
                .boxed(),
                vec![("content-length", len.to_string())],
            ),
            None => (empty(), Vec::new()),
        };
        let what = format!("{method} {path}");
        let req = self.signed(method, path, &extra, "UNSIGNED-PAYLOAD", body)?;
        let io = |e: std::io::Error| TargetError::io(what.clone(), e);
        let exchange = async {
            let mut conn = self.connection().await?;
            conn.ready()
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
            let resp = conn.send_request(req);
            Ok::<_, TargetError>(resp)
        };
        let sending = tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| io(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        // The request body may take long to send: no time limit on the answer's head.
        sending.await.map_err(|e| io(std::io::Error::other(e)))
    }

    fn signed(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, String)],
        payload_sha256: &str,
        body: ReqBody,
    ) -> Result<Request<ReqBody>, TargetError> {
        let bad = |e: &dyn std::fmt::Display| TargetError::BadUrl {
            url: path.to_owned(),
            why: format!("cannot sign the request: {e}"),
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}{}", self.host, path);
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", self.host.as_str()),
            ("x-amz-content-sha256", payload_sha256),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.settings.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| bad(&e))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            &url,
            headers.iter().copied(),
            SignableBody::Precomputed(payload_sha256.to_owned()),
        )
        .map_err(|e| bad(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| bad(&e))?.into_parts();
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in &headers {
            b = b.header(*k, *v);
        }
        for (k, v) in instructions.headers() {
            b = b.header(k, v);
        }
        b.body(body).map_err(|e| bad(&e))
    }
}

/// The TLS client for `host`: Mozilla's roots plus the certificates of `ca_file`.
fn tls(settings: &S3Settings, host: &str) -> Result<Tls, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &settings.ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name_part = match host.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => host,
    };
    let name =
        rustls_pki_types::ServerName::try_from(name_part.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("{name_part}: {e}"))?;
    Ok(Tls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    })
}

/// A bucket and key prefix on an endpoint.
#[derive(Debug, Clone)]
pub struct S3Target {
    client: Arc<S3Client>,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
}

impl S3Target {
    /// `s3://bucket/prefix` → target (the URL is checked by the caller's parser).
    pub fn new(client: Arc<S3Client>, bucket: &str, prefix: &str) -> Self {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix,
        }
    }

    fn location(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, encode_key(key))
    }

    /// The key a location names, if it is in this target's bucket.
    fn key_of<'a>(&self, location: &'a str) -> Result<&'a str, TargetError> {
        location
            .strip_prefix("s3://")
            .and_then(|r| r.strip_prefix(self.bucket.as_str()))
            .and_then(|r| r.strip_prefix('/'))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TargetError::ForeignLocation(location.to_owned()))
    }

    pub async fn put_file(
        &self,
        name: &str,
        src: &Path,
        sha256: [u8; 32],
    ) -> Result<String, TargetError> {
        super::dir::check_name(name)?;
        let key = format!("{}{name}", self.prefix);
        let digest = engine::hex::encode(&sha256);
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| TargetError::io(format!("open {}", src.display()), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| TargetError::io(format!("stat {}", src.display()), e))?
            .len();
        let body = FileBody {
            file,
            remaining: len,
        };
        let extra = [
            ("content-length", len.to_string()),
            ("content-type", "application/vnd.ipld.car".to_owned()),
            ("if-none-match", "*".to_owned()),
            ("x-amz-meta-sha256", digest.clone()),
        ];
        let (status, _, body) = self
            .client
            .send(
                Method::PUT,
                &self.path(&key),
                &extra,
                &digest,
                body.boxed(),
                Expect::Small,
            )
            .await?;
        match status {
            s if s.is_success() => Ok(self.location(name)),
            // Already there (a repeated upload, or a clash): the digests decide.
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                let have = self.stored_digest(&key).await?;
                if have.as_deref() == Some(digest.as_str()) {
                    Ok(self.location(name))
                } else {
                    Err(TargetError::DigestMismatch {
                        name: self.location(name),
                        want: digest,
                        got: have.unwrap_or_else(|| "an object without a recorded digest".into()),
                    })
                }
            }
            s => Err(status_error(&self.location(name), s, &body)),
        }
    }

    /// The `x-amz-meta-sha256` of a stored object.
    async fn stored_digest(&self, key: &str) -> Result<Option<String>, TargetError> {
        let (status, headers, body) = self
            .client
            .send(
                Method::HEAD,
                &self.path(key),
                &[],
                EMPTY_SHA256,
                empty(),
                Expect::Small,
            )
            .await?;
        if !status.is_success() {
            return Err(status_error(key, status, &body));
        }
        Ok(headers
            .get("x-amz-meta-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    pub async fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, TargetError> {
        let key = self.key_of(location)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let last = offset
            .checked_add(len - 1)
            .ok_or_else(|| TargetError::ShortRange {
                location: location.to_owned(),
                offset,
                len,
                size: 0,
            })?;
        let extra = [("range", format!("bytes={offset}-{last}"))];
        // A success is a 206 with exactly this range (checked in `send`): a server that
        // ignores Range answers 200 with the whole object, which is refused unread
        // rather than buffered to cut the range out.
        let (status, _, body) = self
            .client
            .send(
                Method::GET,
                &self.path(key),
                &extra,
                EMPTY_SHA256,
                empty(),
                Expect::Range { offset, len },
            )
            .await?;
        if status != StatusCode::PARTIAL_CONTENT {
            return Err(status_error(location, status, &body));
        }
        if body.len() as u64 != len {
            return Err(TargetError::ShortRange {
                location: location.to_owned(),
                offset,
                len,
                size: body.len() as u64,
            });
        }
        Ok(body)
    }
}

/// Accepts the head of a successful answer to a ranged read only when it is a `206`
/// whose `Content-Range` is exactly `offset`..`offset + len`.
fn check_partial(
    what: &str,
    head: &hyper::http::response::Parts,
    offset: u64,
    len: u64,
) -> Result<(), TargetError> {
    let content_range = head
        .headers
        .get(hyper::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = format!("bytes {offset}-{}/", offset + len - 1);
    if head.status == StatusCode::PARTIAL_CONTENT && content_range.starts_with(&want) {
        return Ok(());
    }
    Err(TargetError::RangeNotHonoured {
        what: what.to_owned(),
        offset,
        len,
        status: head.status.as_u16(),
        content_range: content_range.to_owned(),
    })
}

/// Reads an answer's body, refusing it as soon as it is longer than `limit_bytes`
/// (by its declared length, before reading, or by what arrives).
async fn read_capped(
    mut body: hyper::body::Incoming,
    limit_bytes: u64,
    what: &str,
) -> Result<Bytes, TargetError> {
    let too_long = || TargetError::AnswerTooLong {
        what: what.to_owned(),
        limit_bytes,
    };
    if body.size_hint().lower() > limit_bytes {
        return Err(too_long());
    }
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| TargetError::io(what, std::io::Error::other(e)))?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit_bytes {
                return Err(too_long());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

fn empty() -> ReqBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn status_error(what: &str, status: StatusCode, body: &[u8]) -> TargetError {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map_or("", |(c, _)| c);
    TargetError::Status {
        what: what.to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
    }
}

/// Percent-encodes a key for a path (everything but unreserved characters and `/`).
fn encode_key(key: &str) -> String {
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

/// A request body streamed from a file, `FRAME_BYTES` at a time.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(FRAME_BYTES);
        let mut buf = BytesMut::zeroed(want);
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the segment file is shorter than when the upload began",
                    ))));
                }
                self.remaining -= n as u64;
                buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_map_back_to_keys_of_the_same_bucket_only() {
        let client = Arc::new(
            S3Client::new(S3Settings {
                endpoint: "http://127.0.0.1:9".into(),
                ca_file: None,
                region: "us-east-1".into(),
                access_key: "a".into(),
                secret_key: "b".into(),
                timeout: Duration::from_secs(1),
            })
            .unwrap(),
        );
        let t = S3Target::new(client, "cold", "/node-a/");
        let loc = t.location("data-0000-00000000000000000001.car");
        assert_eq!(loc, "s3://cold/node-a/data-0000-00000000000000000001.car");
        assert_eq!(
            t.key_of(&loc).unwrap(),
            "node-a/data-0000-00000000000000000001.car"
        );
        assert!(t.key_of("s3://other/node-a/x.car").is_err());
        assert!(t.key_of("file:///cold/x.car").is_err());
        assert_eq!(t.path("a b/c"), "/cold/a%20b/c");
    }

    #[test]
    fn endpoints_are_a_scheme_and_a_host() {
        let s = |e: &str| S3Settings {
            endpoint: e.into(),
            ca_file: None,
            region: "r".into(),
            access_key: "a".into(),
            secret_key: "b".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(S3Client::new(s("http://127.0.0.1:9000")).is_ok());
        assert!(S3Client::new(s("http://127.0.0.1:9000/")).is_ok());
        let tls = S3Client::new(s("https://s3.example.com")).unwrap();
        assert_eq!(tls.addr, "s3.example.com:443");
        assert_eq!(S3Client::new(s("http://minio")).unwrap().addr, "minio:80");
        assert!(S3Client::new(s("http://host/path")).is_err());
        assert!(S3Client::new(s("ftp://host")).is_err());
        assert!(S3Client::new(s("127.0.0.1:9000")).is_err());
    }
}
