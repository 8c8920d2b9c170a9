//! One client connection, from accept to close, and the limits that keep a slow or
//! idle client from holding it (or a shard's body stream) forever.
//!
//! What bounds what:
//! - the connection cap: past `max_connections` open connections a new one is answered
//!   `503 SlowDown` and closed (over TLS: closed) instead of queueing unseen;
//! - the TLS handshake: `tls_handshake_timeout`;
//! - the wait for a request head, idle keep-alive time included: hyper's header read
//!   timeout (`FrontendConfig::header_read_timeout`), which hyper 1.x starts anew
//!   whenever the connection is ready for its next request;
//! - the wait for each piece of a request body: `body_read_timeout`, and a body
//!   dripped just fast enough to dodge it: `body_min_bytes_per_s` ([`TimedBody`]);
//! - the requests one connection may carry: `max_requests_per_connection`.

use crate::request_metrics::{CutReason, Metrics};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use s3s::{S3Error, S3ErrorCode};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Limits of the listener besides the head's (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once (TLS handshakes included).
    pub max_connections: usize,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Slowest average a request body may arrive at once past its first
    /// `body_read_timeout` of waiting; 0 turns the check off.
    pub body_min_bytes_per_s: u64,
    /// Requests one keep-alive connection carries; the last is answered with
    /// `Connection: close`.
    pub max_requests_per_connection: u64,
    /// Longest TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            body_read_timeout: Duration::from_secs(30),
            body_min_bytes_per_s: 1024,
            max_requests_per_connection: 1000,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The answer to a connection past the cap, written before anything is read: S3's
/// throttling error, which SDKs retry with backoff.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/xml\r\n\
content-length: 126\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// How long a refused connection is drained after its answer, so the client reads the
/// 503 instead of a reset (closing with unread input makes the kernel send RST).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection past the cap and closes it. Over TLS nothing is written: a
/// handshake is the expensive part a cap exists to avoid.
pub(crate) fn refuse(mut stream: TcpStream, tls: bool, metrics: &Metrics) {
    metrics.connections_refused.fetch_add(1, Relaxed);
    if tls {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

/// Counts an open connection for `ingot_connections_open` and gives its slot back.
struct Open<'a> {
    metrics: &'a Metrics,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

/// What every connection of one listener is served with.
#[derive(Clone)]
pub(crate) struct Listener {
    /// Set when the listener speaks TLS.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) http: hyper::server::conn::http1::Builder,
    pub(crate) limits: ConnLimits,
    pub(crate) metrics: Arc<Metrics>,
}

/// Serves one accepted connection (after its TLS handshake, when the listener speaks
/// TLS) until the client or a limit closes it, or shutdown drains it. Holds `permit`
/// throughout.
pub(crate) async fn serve<S, F>(
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    watcher: Watcher,
    listener: Listener,
    service: S,
) where
    S: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<s3s::Body>, Infallible>> + Send + 'static,
{
    let Listener {
        tls,
        http,
        limits,
        metrics,
    } = listener;
    metrics.connections_open.fetch_add(1, Relaxed);
    let _open = Open {
        metrics: &metrics,
        _permit: permit,
    };
    let service = capped(service, limits.max_requests_per_connection, &metrics);
    let Some(acceptor) = tls else {
        return run(stream, peer, http, watcher, service, &metrics).await;
    };
    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => run(tls, peer, http, watcher, service, &metrics).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => {
            metrics.cut(CutReason::TlsHandshakeTimeout);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}

async fn run<I, S, F>(
    io: I,
    peer: SocketAddr,
    http: hyper::server::conn::http1::Builder,
    watcher: Watcher,
    service: S,
    metrics: &Metrics,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<s3s::Body>, Infallible>> + Send + 'static,
{
    let conn = http.serve_connection(TokioIo::new(io), hyper::service::service_fn(service));
    if let Err(e) = watcher.watch(conn).await {
        if e.is_timeout() {
            metrics.cut(CutReason::HeadTimeout);
        }
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// `service` answering the `max`-th request of its connection with `Connection:
/// close`, which makes hyper close the connection once the answer is out.
fn capped<S, F>(
    service: S,
    max: u64,
    metrics: &Arc<Metrics>,
) -> impl Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = F::Output> + Send>> + Send + Sync + 'static
where
    S: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<s3s::Body>, Infallible>> + Send + 'static,
{
    assert!(max > 0, "max_requests_per_connection must be at least 1");
    let served = std::sync::atomic::AtomicU64::new(0);
    let metrics = metrics.clone();
    move |req| {
        let last = served.fetch_add(1, Relaxed) + 1 >= max;
        let answer = service(req);
        let metrics = metrics.clone();
        Box::pin(async move {
            let mut resp = answer.await?;
            if last {
                metrics.cut(CutReason::MaxRequests);
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(resp)
        })
    }
}

/// S3's answer to a client that stopped sending: 400 RequestTimeout.
pub fn request_timeout() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the \
         timeout period. Idle connections will be closed.",
    )
}

/// A request body that fails with [`request_timeout`] when the client makes it wait
/// too long: longer than `timeout` for any one piece, or, summed over the body, longer
/// than `timeout` plus one second per `min_bytes_per_s` bytes received (so a client
/// dripping a byte just inside `timeout` is cut too, as Apache's `MinRate` does). Only
/// time spent waiting on the client counts: while the engine applies backpressure
/// nobody polls, and the clock is not running.
pub(crate) struct TimedBody {
    inner: Incoming,
    limits: BodyLimits,
    /// When the current wait on the client began; `None` while not waiting.
    waiting_since: Option<Instant>,
    /// Time spent waiting on the client before the current wait.
    waited: Duration,
    received_bytes: u64,
    /// Created at the first wait (most bodies never wait).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    metrics: Arc<Metrics>,
}

/// The two body limits of [`ConnLimits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub(crate) timeout: Duration,
    pub(crate) min_bytes_per_s: u64,
}

impl BodyLimits {
    /// How long the wait that began after `waited` of waiting and `received_bytes` may
    /// last.
    fn allowance(&self, waited: Duration, received_bytes: u64) -> Duration {
        if self.min_bytes_per_s == 0 {
            return self.timeout;
        }
        let earned = Duration::from_secs_f64(received_bytes as f64 / self.min_bytes_per_s as f64);
        (self.timeout + earned)
            .saturating_sub(waited)
            .min(self.timeout)
    }
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, limits: BodyLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            limits,
            waiting_since: None,
            waited: Duration::ZERO,
            received_bytes: 0,
            sleep: None,
            metrics,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(since) = this.waiting_since.take() {
                this.waited += since.elapsed();
            }
            if let Some(Ok(f)) = &frame
                && let Some(data) = f.data_ref()
            {
                this.received_bytes += data.len() as u64;
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.waiting_since.is_none() {
            let now = Instant::now();
            this.waiting_since = Some(now);
            let deadline = now + this.limits.allowance(this.waited, this.received_bytes);
            match &mut this.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(sleep) = &mut this.sleep
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.waiting_since = None;
            this.metrics.cut(CutReason::BodyTimeout);
            return Poll::Ready(Some(Err(Box::new(request_timeout()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::BodyLimits;
    use std::time::Duration;

    #[test]
    fn a_body_earns_waiting_time_by_the_bytes_it_sends() {
        let l = BodyLimits {
            timeout: Duration::from_secs(30),
            min_bytes_per_s: 1024,
        };
        let s = Duration::from_secs;
        // Any one wait: at most the timeout, however much was sent.
        assert_eq!(l.allowance(s(0), 0), s(30));
        assert_eq!(l.allowance(s(0), 1 << 30), s(30));
        // A drip of a byte every 29 s has used up its allowance by the second wait.
        assert_eq!(
            l.allowance(s(29), 1),
            Duration::from_secs_f64(1.0 + 1.0 / 1024.0)
        );
        assert_eq!(l.allowance(s(60), 2), Duration::ZERO);
        // 10 KiB earn 10 s more waiting in all.
        assert_eq!(l.allowance(s(35), 10 << 10), s(5));
        let off = BodyLimits {
            min_bytes_per_s: 0,
            ..l
        };
        assert_eq!(off.allowance(s(1000), 0), s(30));
    }

    #[test]
    fn the_refusal_declares_its_body_length() {
        let text = std::str::from_utf8(super::REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
