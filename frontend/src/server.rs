//! The HTTP server: accepts connections (TCP_NODELAY, keep-alive, header limits, HTTPS
//! when configured, the limits of [`crate::conn`]), answers `/health/*` and `/metrics`,
//! hands every other request to s3s, logs one line per request and drains on shutdown.

use crate::conn::{BodyLimits, ConnLimits, TimedBody};
use crate::error_answer::{ErrorAnswer, ErrorSlot};
use crate::handler::{EngineSlot, IngotS3};
use crate::op_name::OpName;
use crate::request_metrics::{Metrics, render};
use crate::tls::{CertStore, Tls, TlsError, TlsFiles};
use crate::virtual_hosts::VirtualHosts;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioTimer;
use s3s::access::{S3Access, S3AccessContext};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub listen: SocketAddr,
    pub region: String,
    /// Base domain for virtual-host addressing (`bucket.domain`); path-style always works.
    pub domain: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    /// A client must send its whole request head within this time, counted from when
    /// the connection is ready for a request: for a keep-alive connection, idle time
    /// between requests counts too.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// HTTPS with this certificate and key; plain HTTP without.
    pub tls: Option<TlsFiles>,
    pub limits: ConnLimits,
}

impl FrontendConfig {
    pub fn new(listen: SocketAddr, access_key: String, secret_key: String) -> Self {
        Self {
            listen,
            region: "us-east-1".to_owned(),
            domain: None,
            access_key,
            secret_key,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            drain_timeout: Duration::from_secs(30),
            tls: None,
            limits: ConnLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid --domain {0:?}")]
    Domain(String),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

struct State {
    s3: S3Service,
    forms: crate::post_object::FormUploads,
    engine: EngineSlot,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    id_base: u64,
    body_limits: BodyLimits,
}

/// A bound S3 endpoint, ready to serve.
pub struct Frontend {
    state: Arc<State>,
    listener: TcpListener,
    config: FrontendConfig,
    tls: Option<Tls>,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("listen", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

struct Access;

/// The node's one root key pair.
struct RootKey {
    access_key: String,
    secret_key: s3s::auth::SecretKey,
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for RootKey {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret_key.clone())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            ))
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OpName>() {
            slot.set(&name);
        }
        let errors = ErrorSlot::of(cx.extensions_mut());
        if cx.credentials().is_none() {
            return errors.keep(Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Anonymous access is not allowed.",
            )));
        }
        errors.keep(crate::s3s_limits::check_body_length(&name, cx.headers()))
    }
}

impl Frontend {
    /// Binds the listening socket. Requests are answered from [`Frontend::serve`]; S3
    /// requests get 503 until `engine` is filled in (recovery finished).
    pub async fn bind(
        config: FrontendConfig,
        engine: EngineSlot,
        metrics: Arc<Metrics>,
    ) -> Result<Self, FrontendError> {
        // The pair is checked before the port is taken: a bad file fails the start.
        let tls = config.tls.clone().map(Tls::load).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| FrontendError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let s3 = IngotS3::new(
            engine.clone(),
            config.region.clone(),
            metrics.clone(),
            &config.access_key,
        );
        let hosts = match &config.domain {
            Some(d) => Some(VirtualHosts::new(d).ok_or_else(|| FrontendError::Domain(d.clone()))?),
            None => None,
        };
        let forms = crate::post_object::FormUploads::new(
            s3.clone(),
            config.access_key.clone(),
            config.secret_key.clone(),
            hosts.clone(),
            if tls.is_some() { "https" } else { "http" },
        );
        let mut b = S3ServiceBuilder::new(s3);
        b.set_config(crate::s3s_limits::config());
        b.set_auth(RootKey {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone().into(),
        });
        b.set_access(Access);
        b.set_route(crate::admin::AdminRoute {
            engine: engine.clone(),
            bytes_in: metrics.bytes_in.clone(),
            bytes_out: metrics.bytes_out.clone(),
        });
        if let Some(h) = hosts {
            b.set_host(h);
        }
        let id_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let state = Arc::new(State {
            s3: b.build(),
            forms,
            engine,
            metrics,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            id_base,
            body_limits: BodyLimits {
                timeout: config.limits.body_read_timeout,
                min_bytes_per_s: config.limits.body_min_bytes_per_s,
            },
        });
        Ok(Self {
            state,
            listener,
            config,
            tls,
        })
    }

    /// `https` when the listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The certificate store a SIGHUP reloads, when the listener speaks TLS.
    pub fn cert_store(&self) -> Option<Arc<CertStore>> {
        self.tls.as_ref().map(Tls::store)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish (at most `drain_timeout`) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_header_size(self.config.max_header_bytes)
            .keep_alive(true);
        let max_connections = self.config.limits.max_connections;
        assert!(max_connections > 0, "max_connections must be at least 1");
        let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
        let listener = crate::conn::Listener {
            tls: self.tls.as_ref().map(|t| t.acceptor.clone()),
            http,
            limits: self.config.limits,
            metrics: self.state.metrics.clone(),
        };
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Without TCP_NODELAY small responses wait ~40 ms for delayed ACKs.
            let _ = stream.set_nodelay(true);
            self.state.metrics.connections.fetch_add(1, Relaxed);
            // At the cap the client hears so at once: waiting in the listen backlog
            // looks like a dead node, and a 503 SlowDown makes SDKs back off.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "connection refused: max_connections reached");
                crate::conn::refuse(stream, listener.tls.is_some(), &self.state.metrics);
                continue;
            };
            let state = self.state.clone();
            tokio::spawn(crate::conn::serve(
                stream,
                peer,
                slot,
                graceful.watcher(),
                listener.clone(),
                move |req| handle(state.clone(), req),
            ));
        }
        self.state.stopping.store(true, Relaxed);
        drop(self.listener);
        tracing::info!("stopped accepting; draining in-flight requests");
        if tokio::time::timeout(self.config.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_s = self.config.drain_timeout.as_secs(),
                "requests still running after the drain timeout; closing them"
            );
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<s3s::Body> {
    let mut r = Response::new(s3s::Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Health and metrics answer without credentials, but only unsigned requests reach
/// them: a signed request for `/health/live` is an S3 request for bucket `health`.
fn is_signed(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::AUTHORIZATION)
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature") || q.contains("Signature="))
}

async fn special(
    state: &State,
    req: &Request<Incoming>,
) -> Option<(&'static str, Response<s3s::Body>)> {
    if !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD) || is_signed(req) {
        return None;
    }
    match req.uri().path() {
        "/health/live" => Some(("HealthLive", text(StatusCode::OK, "live\n"))),
        "/health/ready" => {
            let resp = match (state.engine.get(), state.stopping.load(Relaxed)) {
                (_, true) => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
                (None, _) => text(StatusCode::SERVICE_UNAVAILABLE, "recovering\n"),
                (Some(e), _) if !e.is_healthy() => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "a shard stopped after an I/O failure\n",
                ),
                (Some(_), _) => text(StatusCode::OK, "ready\n"),
            };
            Some(("HealthReady", resp))
        }
        "/metrics" => {
            let body = render(&state.metrics, |o| match state.engine.get() {
                Some(e) => e.render_metrics(o),
                None => engine::metrics::render(o, &[], &Default::default()),
            });
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Some(("Metrics", r))
        }
        _ => None,
    }
}

async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
) -> Result<Response<s3s::Body>, std::convert::Infallible> {
    let start = Instant::now();
    let n = state.next_id.fetch_add(1, Relaxed);
    let request_id = format!("{:016X}", state.id_base.wrapping_add(n));
    let method = req.method().clone();
    // The path only: a presigned URL's query holds its signature.
    let path = req.uri().path().to_owned();
    let close_after = expects_continue_without_body(&req);
    let (op, mut resp) = match special(&state, &req).await {
        Some((op, r)) => (op.to_owned(), r),
        // Browser-form uploads never reach s3s, which reads a form's whole file into
        // memory before it checks anything (`post_object.rs`).
        None if state.forms.accepts(&req) => {
            let (limits, metrics) = (state.body_limits, state.metrics.clone());
            let req = req.map(|b| s3s::Body::http_body(TimedBody::new(b, limits, metrics)));
            ("PostObject".to_owned(), state.forms.serve(req).await)
        }
        None => {
            let slot = OpName::default();
            req.extensions_mut().insert(slot.clone());
            req.extensions_mut().insert(ErrorSlot::default());
            let resp = match crate::auth_rules::screen(req.headers(), req.uri()) {
                Err(refusal) => crate::error::refusal_response(&refusal),
                Ok(()) => call_s3(&state, req, &request_id).await,
            };
            (slot.get().unwrap_or_else(|| "Unknown".to_owned()), resp)
        }
    };
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    let answer = resp.extensions_mut().remove::<ErrorAnswer>();
    if let Some(a) = &answer {
        write_error_body(&mut resp, a, &request_id);
    }
    if close_after {
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    let status = resp.status();
    let elapsed = start.elapsed();
    state.metrics.record(&op, status.as_u16(), elapsed);
    let code = answer
        .as_ref()
        .map(|a| a.code().as_str())
        .unwrap_or_default();
    log_request(&request_id, &method, &path, &op, status, elapsed, code);
    Ok(resp)
}

/// Hands a request to s3s, its aws-chunked body checked on the way
/// (`chunk_limits.rs`); a refused body is answered with the refusal.
async fn call_s3(state: &State, req: Request<Incoming>, request_id: &str) -> Response<s3s::Body> {
    let (limits, metrics) = (state.body_limits, state.metrics.clone());
    let req = req.map(|b| TimedBody::new(b, limits, metrics));
    let (req, chunks) = crate::chunk_limits::guard(req);
    let errors = ErrorSlot::of(req.extensions());
    let resp = match state.s3.call(req).await {
        Ok(r) if r.status().as_u16() >= 400 => with_answer(r, errors.take()),
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id, error = ?e, "request failed inside the S3 layer");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    };
    match chunks.and_then(|c| c.get()) {
        Some(refusal) => crate::error::chunk_refusal_response(&refusal),
        None => resp,
    }
}

/// An error answer from s3s, with its [`ErrorAnswer`]: the one a handler kept, else
/// (an error s3s raised itself) the one s3s's body says (`error_answer.rs`).
fn with_answer(mut resp: Response<s3s::Body>, kept: Option<ErrorAnswer>) -> Response<s3s::Body> {
    let answer = kept.or_else(|| {
        resp.body()
            .bytes()
            .and_then(|b| ErrorAnswer::from_s3s_body(&b))
    });
    if let Some(a) = answer {
        resp.extensions_mut().insert(a);
    }
    resp
}

/// The error body AWS writes (with `<Message>` and `<RequestId>`), keeping
/// `Content-Length` true.
fn write_error_body(resp: &mut Response<s3s::Body>, answer: &ErrorAnswer, request_id: &str) {
    let body = answer.body(request_id);
    resp.headers_mut()
        .insert(hyper::header::CONTENT_LENGTH, body.len().into());
    *resp.body_mut() = s3s::Body::from(body);
}

/// `Expect: 100-continue` on an empty body: no `100 Continue` is ever sent (there is no
/// body to ask for), which is correct HTTP, but botocore then keeps treating every later
/// response on that connection as the early final response it saw, and misreads them
/// (`aws s3 sync` of an empty file followed by a part upload failed with a missing
/// ETag). Closing the connection after the answer resets the client.
fn expects_continue_without_body(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let expects = h
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty = h
        .get(hyper::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    expects && empty
}

/// One line per request at debug; failures with their S3 code at the level they
/// deserve: server errors at error, refused credentials, operations not offered (501)
/// and writes refused by a full disk (507: no fault, the node is full) at warn, the
/// rest at debug (a 404 is an ordinary answer).
fn log_request(
    request_id: &str,
    method: &hyper::Method,
    path: &str,
    op: &str,
    status: StatusCode,
    elapsed: Duration,
    code: &str,
) {
    let latency_us = elapsed.as_micros() as u64;
    let status = status.as_u16();
    if status < 400 {
        tracing::debug!(request_id, %method, path, op, status, latency_us, "request");
        return;
    }
    match status {
        // A readiness probe answering 503 (recovering, stopping) is not a failure.
        503 if op.starts_with("Health") => {
            tracing::debug!(request_id, %method, path, op, status, latency_us, "not ready")
        }
        // An operation ingot-engine does not offer is the client's choice, not a fault.
        501 => {
            tracing::warn!(request_id, %method, path, op, status, code, latency_us, "request not implemented")
        }
        507 => {
            tracing::warn!(request_id, %method, path, op, status, code, latency_us, "request refused: disk full")
        }
        500.. => {
            tracing::error!(request_id, %method, path, op, status, code, latency_us, "request failed")
        }
        401 | 403 => {
            tracing::warn!(request_id, %method, path, op, status, code, latency_us, "request refused")
        }
        _ => {
            tracing::debug!(request_id, %method, path, op, status, code, latency_us, "request failed")
        }
    }
}
