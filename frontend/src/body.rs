//! Bodies between hyper/s3s streams and the engine's bounded channels.
//!
//! A PUT body is pumped piece by piece into the engine's body channel, so it is never
//! held whole and a slow shard slows the client (backpressure through hyper's window).
//! The pump also runs the additional checksum the client asked for; it ends the
//! channel cleanly only after the checksum matched, so the engine commits nothing a
//! client did not mean.

use crate::checksum::ExpectedChecksum;
use crate::error::{BodyFault, body_fault_error};
use bytes::Bytes;
use engine::{BodyReceiver, BodySender, EngineError};
use futures_core::Stream;
use s3s::S3Error;
use s3s::dto::StreamingBlob;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Why a pump ended a body early: the S3 error to answer with instead of the
/// engine's generic body error.
#[derive(Debug, Clone, Default)]
pub struct PumpFailure(Arc<Mutex<Option<S3Error>>>);

impl PumpFailure {
    fn set(&self, e: S3Error) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    /// The recorded failure, if the pump ended the body.
    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// Counts bytes that crossed the frontend, for the metrics.
pub type ByteCounter = Arc<std::sync::atomic::AtomicU64>;

/// Forwards `blob` into `tx`, hashing it for `checksum`. Returns when the body ended or
/// the engine stopped reading.
pub async fn pump(
    mut blob: StreamingBlob,
    tx: BodySender,
    mut checksum: Option<ExpectedChecksum>,
    failure: PumpFailure,
    bytes_in: ByteCounter,
) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let piece = std::future::poll_fn(|cx| Pin::new(&mut blob).poll_next(cx)).await;
        match piece {
            Some(Ok(b)) => {
                bytes_in.fetch_add(b.len() as u64, Relaxed);
                if let Some(c) = &mut checksum {
                    c.update(&b);
                }
                if tx.send(Ok(b)).await.is_err() {
                    return; // the engine refused the body; it says why
                }
            }
            Some(Err(e)) => {
                let s3 = match e.downcast::<S3Error>() {
                    Ok(s3) => *s3,
                    Err(other) => body_fault_error(BodyFault::of_s3s(&other.to_string())),
                };
                failure.set(s3);
                let _ = tx
                    .send(Err(EngineError::Body("body stream failed".into())))
                    .await;
                return;
            }
            None => break,
        }
    }
    if let Some(c) = checksum
        && let Err(e) = c.verify()
    {
        failure.set(e);
        let _ = tx
            .send(Err(EngineError::Body("checksum mismatch".into())))
            .await;
    }
}

/// An engine body stream as an S3 response body.
pub fn into_blob(rx: BodyReceiver, bytes_out: ByteCounter) -> StreamingBlob {
    StreamingBlob::wrap(EngineBody { rx, bytes_out })
}

struct EngineBody {
    rx: BodyReceiver,
    bytes_out: ByteCounter,
}

impl Stream for EngineBody {
    type Item = Result<Bytes, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(b))) = &polled {
            self.bytes_out
                .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if let Poll::Ready(Some(Err(e))) = &polled {
            // Headers are gone already: the connection is cut, and the log says why.
            tracing::error!(error = %e, "GET body failed after the response started");
        }
        polled
    }
}
