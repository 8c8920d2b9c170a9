//! CARv1 framing: the segment header and the `varint(len) · CID · block` frames.
//!
//! The reader takes bytes from disk or the network: it never panics, bounds every
//! length before trusting it, verifies each block against its CID, and tells a torn tail
//! ([`FrameError::Truncated`]) and zero padding ([`FrameError::Zero`]) apart from garbage.

use crate::block::{MH_IDENTITY, VerifyError, verify_block};
use crate::cbor::{self, Decoder, cid_encoded_len, varint_len, write_cid, write_varint};
use cid::Cid;

/// Largest frame (CID + block) accepted: chunks are at most 16 MiB and MST nodes at most
/// 8,192 keys of 1 KiB.
pub const MAX_FRAME_BYTES: u64 = 32 << 20;
/// Largest CAR header accepted.
pub const MAX_HEADER_BYTES: u64 = 64 << 10;

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside the frame: a torn write, or more bytes are needed.
    #[error("frame is truncated: {need} bytes needed, {have} available")]
    Truncated { need: u64, have: u64 },
    /// A zero length prefix: pre-zeroed space, the logical end of an open segment.
    #[error("zero-length frame (padding)")]
    Zero,
    #[error("frame length {0} exceeds the limit")]
    TooLarge(u64),
    #[error("invalid frame: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Hash(#[from] VerifyError),
}

/// Reads an unsigned LEB128 varint (at most 9 bytes, shortest form). `Ok(None)` when the
/// input ends first.
pub fn read_varint(bytes: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(FrameError::Invalid("varint not in shortest form"));
            }
            return Ok(Some((n, i + 1)));
        }
    }
    if bytes.len() >= 9 {
        return Err(FrameError::Invalid("varint longer than 9 bytes"));
    }
    Ok(None)
}

/// Total bytes of the frame for `cid` and a block of `block_len` bytes.
pub fn frame_len(cid: &Cid, block_len: usize) -> usize {
    let body = cid_encoded_len(cid) + block_len;
    varint_len(body as u64) + body
}

/// Appends a frame.
pub fn write_frame(buf: &mut Vec<u8>, cid: &Cid, block: &[u8]) {
    write_varint(buf, (cid_encoded_len(cid) + block.len()) as u64);
    write_cid(buf, cid);
    buf.extend_from_slice(block);
}

/// Appends a CARv1 header `{"roots": [...], "version": 1}` with its length prefix.
pub fn write_header(buf: &mut Vec<u8>, roots: &[Cid]) {
    let mut h = Vec::with_capacity(32 + roots.len() * 40);
    cbor::write_map(&mut h, 2);
    cbor::write_text(&mut h, "roots");
    cbor::write_array(&mut h, roots.len());
    for r in roots {
        cbor::write_link(&mut h, r);
    }
    cbor::write_text(&mut h, "version");
    cbor::write_uint(&mut h, 1);
    write_varint(buf, h.len() as u64);
    buf.extend_from_slice(&h);
}

/// Splits off a `varint(len) · body` item: (offset of the body, body, end of the item).
fn length_prefixed(bytes: &[u8], max_len: u64) -> Result<(usize, &[u8], usize), FrameError> {
    let have = bytes.len() as u64;
    let (len, at) = read_varint(bytes)?.ok_or(FrameError::Truncated { need: 1, have })?;
    if len == 0 {
        return Err(FrameError::Zero);
    }
    if len > max_len {
        return Err(FrameError::TooLarge(len));
    }
    let end = at + len as usize;
    let body = bytes.get(at..end).ok_or(FrameError::Truncated {
        need: end as u64,
        have,
    })?;
    Ok((at, body, end))
}

/// Reads a CARv1 header: its roots and its total length in bytes.
pub fn read_header(bytes: &[u8]) -> Result<(Vec<Cid>, usize), FrameError> {
    let (_, body, end) = length_prefixed(bytes, MAX_HEADER_BYTES)?;
    let bad = |_| FrameError::Invalid("CAR header is not canonical {roots, version: 1}");
    let mut d = Decoder::new(body);
    if d.map().map_err(bad)? != 2 {
        return Err(FrameError::Invalid(
            "CAR header must have exactly roots and version",
        ));
    }
    d.expect_key("roots").map_err(bad)?;
    let n = d.array().map_err(bad)?;
    let mut roots = Vec::with_capacity(n);
    for _ in 0..n {
        roots.push(d.link().map_err(bad)?);
    }
    d.expect_key("version").map_err(bad)?;
    if d.uint().map_err(bad)? != 1 {
        return Err(FrameError::Invalid("CAR version is not 1"));
    }
    d.finish().map_err(bad)?;
    Ok((roots, end))
}

/// A verified frame, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub cid: Cid,
    pub block: &'a [u8],
    /// Offset of the block bytes from the start of the frame.
    pub block_offset: usize,
    /// Total frame length in bytes.
    pub len: usize,
}

/// Reads and verifies the frame at the start of `bytes`.
pub fn read_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let (at, body, end) = length_prefixed(bytes, MAX_FRAME_BYTES)?;
    let cid =
        Cid::read_bytes(body).map_err(|_| FrameError::Invalid("frame holds an invalid CID"))?;
    let cid_len = cid_encoded_len(&cid);
    let mut canonical = Vec::with_capacity(cid_len);
    write_cid(&mut canonical, &cid);
    if body.get(..cid_len) != Some(canonical.as_slice()) {
        return Err(FrameError::Invalid(
            "frame CID is not in canonical binary form",
        ));
    }
    if cid.hash().code() == MH_IDENTITY {
        return Err(FrameError::Invalid("identity CIDs are never framed"));
    }
    let block = &body[cid_len..];
    verify_block(&cid, block)?;
    Ok(Frame {
        cid,
        block,
        block_offset: at + cid_len,
        len: end,
    })
}

/// Iterates the frames of a CAR body, stopping at the first error (which it yields).
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Frames of `data`, which starts right after the header.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            failed: false,
        }
    }

    /// Offset of the next frame: after an error, the end of the valid prefix.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Frames<'a> {
    /// `(offset of the frame, frame)`
    type Item = Result<(usize, Frame<'a>), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        match read_frame(&self.data[self.pos..]) {
            Ok(f) => {
                let at = self.pos;
                self.pos += f.len;
                Some(Ok((at, f)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{cid_dag_cbor, cid_raw};

    #[test]
    fn frame_round_trip_and_length() {
        let block = b"some block".to_vec();
        let cid = cid_raw(&block);
        let mut buf = Vec::new();
        write_frame(&mut buf, &cid, &block);
        assert_eq!(buf.len(), frame_len(&cid, block.len()));
        let f = read_frame(&buf).unwrap();
        assert_eq!((f.cid, f.block, f.len), (cid, &block[..], buf.len()));
        assert_eq!(&buf[f.block_offset..], &block[..]);
    }

    #[test]
    fn torn_zero_and_corrupt_frames_are_told_apart() {
        let block = vec![7u8; 300];
        let cid = cid_raw(&block);
        let mut buf = Vec::new();
        write_frame(&mut buf, &cid, &block);
        for cut in [0, 1, 2, 10, buf.len() - 1] {
            assert!(
                matches!(read_frame(&buf[..cut]), Err(FrameError::Truncated { .. })),
                "{cut}"
            );
        }
        assert_eq!(read_frame(&[0u8; 64]), Err(FrameError::Zero));
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(read_frame(&flipped), Err(FrameError::Hash(_))));
        assert!(matches!(
            read_frame(&[0xff; 16]),
            Err(FrameError::Invalid(_))
        ));
        assert!(matches!(
            read_frame(&[0x80, 0x00]),
            Err(FrameError::Invalid(_))
        ));
        assert!(matches!(
            read_frame(&[0xff, 0xff, 0xff, 0x7f]),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn header_round_trip() {
        let roots = [cid_dag_cbor(b"r")];
        let mut buf = Vec::new();
        write_header(&mut buf, &roots);
        let (got, len) = read_header(&buf).unwrap();
        assert_eq!((got.as_slice(), len), (&roots[..], buf.len()));
        assert!(read_header(&buf[..buf.len() - 1]).is_err());
    }
}
