//! Request bodies (empty, in memory, streamed from a file) and reading answer bodies
//! with a cap on their size.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

/// The body of every request the client sends: in memory or streamed from a file (an
/// enum, not a boxed body: the load generator sends one per request).
#[derive(Debug)]
pub struct ReqBody(Source);

#[derive(Debug)]
enum Source {
    /// Bytes not yet sent (`None` once sent, or when there were none).
    Memory(Option<Bytes>),
    File(FileBody),
}

/// Bytes read from disk per body frame.
const FRAME_BYTES: usize = 256 << 10;

pub fn empty() -> ReqBody {
    full(Bytes::new())
}

pub fn full(bytes: Bytes) -> ReqBody {
    ReqBody(Source::Memory((!bytes.is_empty()).then_some(bytes)))
}

/// A body that does not fit in memory (a segment file, a CAR export), read
/// [`FRAME_BYTES`] at a time.
pub fn file(file: tokio::fs::File, len: u64) -> ReqBody {
    ReqBody(Source::File(FileBody {
        file,
        remaining: len,
    }))
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut self.get_mut().0 {
            Source::Memory(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Source::File(f) => Pin::new(f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Memory(bytes) => bytes.is_none(),
            Source::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.0 {
            Source::Memory(bytes) => {
                hyper::body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Source::File(f) => f.size_hint(),
        }
    }
}

/// A request body streamed from a file of known length; a file that turns out shorter
/// fails the request rather than sending less than `Content-Length` promised.
#[derive(Debug)]
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
                        "the file is shorter than when the upload began",
                    ))));
                }
                debug_assert!(n as u64 <= self.remaining);
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

/// Why an answer's body could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Longer than allowed (by its declared length, before reading, or by what arrived).
    TooLong {
        limit_bytes: u64,
    },
    Io(hyper::Error),
}

/// Reads an answer's body, refusing it as soon as it is longer than `limit_bytes`.
pub(crate) async fn read_capped(
    mut body: hyper::body::Incoming,
    limit_bytes: u64,
) -> Result<Bytes, ReadError> {
    if body.size_hint().lower() > limit_bytes {
        return Err(ReadError::TooLong { limit_bytes });
    }
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(ReadError::Io)?.into_data() {
            if (out.len() + data.len()) as u64 > limit_bytes {
                return Err(ReadError::TooLong { limit_bytes });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Reads an answer's body to its end, keeping nothing; returns its length.
pub(crate) async fn drain(mut body: hyper::body::Incoming) -> Result<u64, ReadError> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.map_err(ReadError::Io)?.data_ref() {
            n += d.len() as u64;
        }
    }
    Ok(n)
}
