//! aws-chunked framing, checked as the bytes stream by, in front of s3s's decoder.
//!
//! s3s reads a chunk's declared size, then buffers the whole chunk before it checks the
//! chunk's signature. A signed request head (a fresh one, or one replayed within the
//! clock skew) could otherwise declare a 4 GiB chunk and make the node hold it. This
//! pass-through reads each chunk line as it arrives and fails the body, before any of
//! the chunk's data is read, when the chunk is longer than what remains of
//! `x-amz-decoded-content-length`, or is signed and longer than
//! [`MAX_SIGNED_CHUNK_BYTES`]. Malformed framing is left to s3s, which refuses it.
//!
//! Unsigned chunks (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) are bounded by the declared
//! length only: the AWS CRT (aws-c-s3: the CLI's and Java's CRT clients, mountpoint-s3)
//! sends each part as one chunk, and aws-sdk-rust sends a whole body as one chunk when
//! chunking is turned off, so a few-MiB cap would refuse them.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::Request;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Largest signed chunk accepted. Signers' chunk sizes: aws-sdk-rust 64 KiB (its
/// default; chunks are signed over plain HTTP), minio-go 64 KiB, the .NET SDK 80 KiB,
/// the Java SDKs 128 KiB; AWS asks for at least 8 KiB and recommends 64 KiB. 8 MiB is
/// 64 times the largest of those and bounds what one request makes s3s hold.
pub const MAX_SIGNED_CHUNK_BYTES: u64 = 8 << 20;

/// Longest chunk line read here; s3s refuses lines over 1 KiB itself.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Why an aws-chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRefusal {
    #[error("chunk of {declared_bytes} bytes, but only {remaining_bytes} declared bytes remain")]
    BeyondDeclaredLength {
        declared_bytes: u64,
        remaining_bytes: u64,
    },
    #[error("signed chunk of {declared_bytes} bytes, over {MAX_SIGNED_CHUNK_BYTES}")]
    TooLarge { declared_bytes: u64 },
}

impl ChunkRefusal {
    pub(crate) fn response(&self) -> hyper::Response<s3s::Body> {
        crate::auth_rules::error_response(&crate::error::chunk_error(self), "")
    }
}

/// Where the check leaves its refusal for the server to answer with (s3s reports a
/// failed body as an opaque error).
#[derive(Debug, Clone, Default)]
pub(crate) struct RefusalSlot(Arc<Mutex<Option<ChunkRefusal>>>);

impl RefusalSlot {
    fn set(&self, r: ChunkRefusal) {
        if let Ok(mut s) = self.0.lock() {
            s.get_or_insert(r);
        }
    }

    pub(crate) fn get(&self) -> Option<ChunkRefusal> {
        self.0.lock().ok().and_then(|s| *s)
    }
}

/// The request with its body checked if it is aws-chunked (an `x-amz-content-sha256`
/// of `STREAMING-…` and a decoded length), and where a refusal will be left.
pub(crate) fn guard(req: Request<Incoming>) -> (Request<s3s::Body>, Option<RefusalSlot>) {
    let h = req.headers();
    let streaming = h
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    let decoded_bytes = h
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match decoded_bytes {
        Some(n) if streaming => {
            let slot = RefusalSlot::default();
            let checked = slot.clone();
            let req = req.map(move |inner| {
                s3s::Body::http_body(CheckedBody {
                    inner,
                    framing: Framing::new(n),
                    slot: checked,
                })
            });
            (req, Some(slot))
        }
        _ => (req.map(s3s::Body::from), None),
    }
}

/// Where the reader is in the aws-chunked framing.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a chunk line (`size[;chunk-signature=…]\r\n`).
    Line(Vec<u8>),
    /// This many bytes of chunk data to go.
    Data(u64),
    /// The CRLF after chunk data: this many bytes to go.
    DataEnd(u64),
    /// After the last chunk (trailers, bounded by s3s), or framing s3s will refuse.
    Rest,
}

/// The chunk-line reader: it only looks at the bytes, they pass on unchanged.
#[derive(Debug)]
struct Framing {
    remaining_bytes: u64,
    phase: Phase,
}

impl Framing {
    fn new(decoded_bytes: u64) -> Self {
        Self {
            remaining_bytes: decoded_bytes,
            phase: Phase::Line(Vec::new()),
        }
    }

    /// Reads the next bytes of the body; `Err` at the first chunk line to refuse.
    fn feed(&mut self, mut b: &[u8]) -> Result<(), ChunkRefusal> {
        while !b.is_empty() {
            match &mut self.phase {
                Phase::Line(line) => {
                    let Some(i) = b.iter().position(|&c| c == b'\n') else {
                        line.extend_from_slice(b);
                        if line.len() > MAX_CHUNK_LINE_BYTES {
                            self.phase = Phase::Rest;
                        }
                        return Ok(());
                    };
                    line.extend_from_slice(&b[..=i]);
                    b = &b[i + 1..];
                    let line = std::mem::take(line);
                    self.phase = self.chunk_starts(&line)?;
                }
                Phase::Data(left) | Phase::DataEnd(left) => {
                    let n = (*left).min(b.len() as u64);
                    *left -= n;
                    b = &b[n as usize..];
                    if *left == 0 {
                        self.phase = match self.phase {
                            Phase::Data(_) => Phase::DataEnd(2),
                            _ => Phase::Line(Vec::new()),
                        };
                    }
                }
                Phase::Rest => return Ok(()),
            }
        }
        Ok(())
    }

    /// The phase after a complete chunk line.
    fn chunk_starts(&mut self, line: &[u8]) -> Result<Phase, ChunkRefusal> {
        let size_field = line
            .split(|&c| c == b';' || c == b'\r' || c == b'\n')
            .next()
            .unwrap_or_default();
        let Some(declared_bytes) = std::str::from_utf8(size_field)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            return Ok(Phase::Rest);
        };
        if declared_bytes > self.remaining_bytes {
            return Err(ChunkRefusal::BeyondDeclaredLength {
                declared_bytes,
                remaining_bytes: self.remaining_bytes,
            });
        }
        let signed = line.windows(17).any(|w| w == b";chunk-signature=");
        if signed && declared_bytes > MAX_SIGNED_CHUNK_BYTES {
            return Err(ChunkRefusal::TooLarge { declared_bytes });
        }
        self.remaining_bytes -= declared_bytes;
        Ok(match declared_bytes {
            0 => Phase::Rest,
            n => Phase::Data(n),
        })
    }
}

/// A request body passed through [`Framing`].
struct CheckedBody {
    inner: Incoming,
    framing: Framing,
    slot: RefusalSlot,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for CheckedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(r) = self.slot.get() {
            return Poll::Ready(Some(Err(Box::new(r))));
        }
        let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match polled {
            Some(Ok(frame)) => {
                let checked = match frame.data_ref() {
                    Some(data) => self.framing.feed(data),
                    None => Ok(()),
                };
                match checked {
                    Ok(()) => Some(Ok(frame)),
                    Err(r) => {
                        tracing::debug!(refusal = %r, "aws-chunked body refused");
                        self.slot.set(r);
                        Some(Err(Box::new(r)))
                    }
                }
            }
            Some(Err(e)) => Some(Err(Box::new(e))),
            None => None,
        })
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
    use super::*;

    const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn signed_line(size: u64) -> Vec<u8> {
        format!("{size:x};chunk-signature={SIG}\r\n").into_bytes()
    }

    #[test]
    fn chunks_within_the_declared_length_pass_even_split_anywhere() {
        let mut body = signed_line(5);
        body.extend_from_slice(b"hello\r\n");
        body.extend_from_slice(&signed_line(3));
        body.extend_from_slice(b"abc\r\n");
        body.extend_from_slice(&signed_line(0));
        body.extend_from_slice(b"\r\n");
        for split in 0..body.len() {
            let mut f = Framing::new(8);
            f.feed(&body[..split]).unwrap();
            f.feed(&body[split..]).unwrap();
            assert_eq!(f.phase, Phase::Rest, "split at {split}");
            assert_eq!(f.remaining_bytes, 0);
        }
    }

    #[test]
    fn a_chunk_beyond_the_declared_length_is_refused_at_its_line() {
        let mut f = Framing::new(8);
        let mut body = signed_line(5);
        body.extend_from_slice(b"hello\r\n");
        f.feed(&body).unwrap();
        assert_eq!(
            f.feed(&signed_line(4)),
            Err(ChunkRefusal::BeyondDeclaredLength {
                declared_bytes: 4,
                remaining_bytes: 3
            })
        );
        // Unsigned chunks too, and a size no u64 holds.
        assert!(Framing::new(8).feed(b"9\r\n").is_err());
        assert!(
            Framing::new(u64::MAX)
                .feed(b"fffffffffffffffff\r\n")
                .is_ok()
        );
    }

    #[test]
    fn signed_chunks_over_the_cap_are_refused_unsigned_ones_are_not() {
        let big = MAX_SIGNED_CHUNK_BYTES + 1;
        assert_eq!(
            Framing::new(u64::MAX).feed(&signed_line(big)),
            Err(ChunkRefusal::TooLarge {
                declared_bytes: big
            })
        );
        let mut f = Framing::new(u64::MAX);
        f.feed(format!("{big:x}\r\n").as_bytes()).unwrap();
        assert_eq!(f.phase, Phase::Data(big));
        assert!(
            Framing::new(u64::MAX)
                .feed(&signed_line(MAX_SIGNED_CHUNK_BYTES))
                .is_ok()
        );
    }
}
