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
//! chunking is turned off, so a few-MiB cap would refuse them. Having no signature to
//! wait for, they are passed on to s3s split, one chunk per network read, so s3s never
//! holds more of one than a read.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::Request;
use std::collections::VecDeque;
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
pub(crate) fn guard<B>(req: Request<B>) -> (Request<s3s::Body>, Option<RefusalSlot>)
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin + Send + Sync + 'static,
{
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
                    pending: VecDeque::new(),
                    inner_done: false,
                })
            });
            (req, Some(slot))
        }
        _ => (req.map(s3s::Body::http_body), None),
    }
}

/// Where the reader is in the aws-chunked framing.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a chunk line (`size[;chunk-signature=…]\r\n`), held until complete.
    Line(Vec<u8>),
    /// Chunk data to go; `split` when the chunk is unsigned and passed on in pieces.
    Data { left: u64, split: bool },
    /// The CRLF after chunk data to go.
    DataEnd { left: u64, split: bool },
    /// After the last chunk (trailers, bounded by s3s), or framing s3s will refuse.
    Rest,
}

/// The chunk-line reader. Signed chunks pass on unchanged. An unsigned chunk is passed
/// on as one chunk per piece of it that arrives, so s3s, which buffers a chunk whole,
/// holds no more than one network read of it: the data and the trailer checksum are
/// the same, only the framing differs.
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

    /// Reads the next bytes of the body into `out`, as they are to be passed on;
    /// `Err` at the first chunk line to refuse.
    fn feed(&mut self, input: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), ChunkRefusal> {
        let mut pos = 0;
        while pos < input.len() {
            match &mut self.phase {
                Phase::Line(line) => {
                    let rest = &input[pos..];
                    let Some(i) = rest.iter().position(|&c| c == b'\n') else {
                        line.extend_from_slice(rest);
                        if line.len() > MAX_CHUNK_LINE_BYTES {
                            out.push_back(Bytes::from(std::mem::take(line)));
                            self.phase = Phase::Rest;
                        }
                        return Ok(());
                    };
                    line.extend_from_slice(&rest[..=i]);
                    pos += i + 1;
                    let line = std::mem::take(line);
                    self.phase = self.chunk_starts(&line)?;
                    if !matches!(self.phase, Phase::Data { split: true, .. }) {
                        out.push_back(Bytes::from(line));
                    }
                }
                Phase::Data { left, split } => {
                    let (n, split) = ((*left).min((input.len() - pos) as u64), *split);
                    *left -= n;
                    let done = *left == 0;
                    let piece = input.slice(pos..pos + n as usize);
                    pos += n as usize;
                    if split {
                        out.push_back(Bytes::from(format!("{n:x}\r\n")));
                        out.push_back(piece);
                        out.push_back(Bytes::from_static(b"\r\n"));
                    } else {
                        out.push_back(piece);
                    }
                    if done {
                        self.phase = Phase::DataEnd { left: 2, split };
                    }
                }
                Phase::DataEnd { left, split } => {
                    let n = (*left).min((input.len() - pos) as u64) as usize;
                    let expected = &b"\r\n"[2 - *left as usize..][..n];
                    let piece = input.slice(pos..pos + n);
                    pos += n;
                    // A split chunk's CRLF was written with each piece; anything else
                    // goes on for s3s to refuse.
                    if !*split || piece != expected {
                        out.push_back(piece);
                    }
                    *left -= n as u64;
                    if *left == 0 {
                        self.phase = Phase::Line(Vec::new());
                    }
                }
                Phase::Rest => {
                    out.push_back(input.slice(pos..));
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// At the end of the body: a chunk line cut short goes on for s3s to refuse.
    fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        if let Phase::Line(line) = &mut self.phase
            && !line.is_empty()
        {
            out.push_back(Bytes::from(std::mem::take(line)));
        }
        self.phase = Phase::Rest;
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
            n => Phase::Data {
                left: n,
                split: !signed,
            },
        })
    }
}

/// A request body passed through [`Framing`].
struct CheckedBody<B> {
    inner: B,
    framing: Framing,
    slot: RefusalSlot,
    /// Bytes to pass on, in order.
    pending: VecDeque<Bytes>,
    inner_done: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B: Body<Data = Bytes, Error = BoxError> + Unpin> Body for CheckedBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(r) = this.slot.get() {
                return Poll::Ready(Some(Err(Box::new(r))));
            }
            if let Some(b) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(r) = this.framing.feed(data, &mut this.pending) {
                            tracing::debug!(refusal = %r, "aws-chunked body refused");
                            this.pending.clear();
                            this.slot.set(r);
                        }
                    }
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.framing.finish(&mut this.pending);
                    this.inner_done = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // Split chunks change the length; what s3s decodes is x-amz-decoded-content-length.
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn signed_line(size: u64) -> Vec<u8> {
        format!("{size:x};chunk-signature={SIG}\r\n").into_bytes()
    }

    /// Feeds `body` in two pieces split at `at`; what is passed on, joined.
    fn pass(f: &mut Framing, body: &[u8], at: usize) -> Result<Vec<u8>, ChunkRefusal> {
        let mut out = VecDeque::new();
        f.feed(Bytes::copy_from_slice(&body[..at]), &mut out)?;
        f.feed(Bytes::copy_from_slice(&body[at..]), &mut out)?;
        f.finish(&mut out);
        Ok(out.iter().flat_map(|b| b.iter().copied()).collect())
    }

    fn feed(f: &mut Framing, body: &[u8]) -> Result<(), ChunkRefusal> {
        f.feed(Bytes::copy_from_slice(body), &mut VecDeque::new())
    }

    /// The data and chunk sizes of an unsigned aws-chunked body (test decoder).
    fn decode(mut body: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let (mut data, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
            body = &body[eol + 2..];
            if size == 0 {
                return (data, sizes);
            }
            sizes.push(size);
            data.extend_from_slice(&body[..size]);
            assert_eq!(&body[size..size + 2], b"\r\n");
            body = &body[size + 2..];
        }
    }

    #[test]
    fn signed_chunks_pass_unchanged_split_anywhere() {
        let mut body = signed_line(5);
        body.extend_from_slice(b"hello\r\n");
        body.extend_from_slice(&signed_line(3));
        body.extend_from_slice(b"abc\r\n");
        body.extend_from_slice(&signed_line(0));
        body.extend_from_slice(b"\r\n");
        for at in 0..body.len() {
            let mut f = Framing::new(8);
            assert_eq!(pass(&mut f, &body, at).unwrap(), body, "split at {at}");
            assert_eq!(f.remaining_bytes, 0);
        }
    }

    #[test]
    fn unsigned_chunks_are_passed_on_in_the_pieces_that_arrive() {
        let body = b"9\r\nabcdefghi\r\n3\r\njkl\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        for at in 0..body.len() {
            let out = pass(&mut Framing::new(12), body, at).unwrap();
            let (data, _) = decode(&out);
            assert_eq!(data, b"abcdefghijkl", "split at {at}");
            assert!(out.ends_with(b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"));
        }
        // Split inside the first chunk's data: two chunks where it had one.
        let (_, sizes) = decode(&pass(&mut Framing::new(12), body, 6).unwrap());
        assert_eq!(sizes, [3, 6, 3]);
        // One read: the chunk goes on as it came.
        assert_eq!(pass(&mut Framing::new(12), body, body.len()).unwrap(), body);
        // Bytes where the CRLF after data belongs go on, for s3s to refuse.
        let bad = pass(&mut Framing::new(3), b"3\r\nabcXY0\r\n\r\n", 5).unwrap();
        assert_eq!(bad, b"2\r\nab\r\n1\r\nc\r\nXY0\r\n\r\n");
    }

    #[test]
    fn a_chunk_beyond_the_declared_length_is_refused_at_its_line() {
        let mut f = Framing::new(8);
        let mut body = signed_line(5);
        body.extend_from_slice(b"hello\r\n");
        feed(&mut f, &body).unwrap();
        assert_eq!(
            feed(&mut f, &signed_line(4)),
            Err(ChunkRefusal::BeyondDeclaredLength {
                declared_bytes: 4,
                remaining_bytes: 3
            })
        );
        // Unsigned chunks too; a size no u64 holds is left to s3s.
        assert!(feed(&mut Framing::new(8), b"9\r\n").is_err());
        assert!(feed(&mut Framing::new(u64::MAX), b"fffffffffffffffff\r\n").is_ok());
    }

    #[test]
    fn signed_chunks_over_the_cap_are_refused_unsigned_ones_are_not() {
        let big = MAX_SIGNED_CHUNK_BYTES + 1;
        assert_eq!(
            feed(&mut Framing::new(u64::MAX), &signed_line(big)),
            Err(ChunkRefusal::TooLarge {
                declared_bytes: big
            })
        );
        let mut f = Framing::new(u64::MAX);
        feed(&mut f, format!("{big:x}\r\n").as_bytes()).unwrap();
        assert_eq!(
            f.phase,
            Phase::Data {
                left: big,
                split: true
            }
        );
        assert!(
            feed(
                &mut Framing::new(u64::MAX),
                &signed_line(MAX_SIGNED_CHUNK_BYTES)
            )
            .is_ok()
        );
    }
}
