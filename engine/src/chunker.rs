//! Streaming chunker: cuts a body into fixed-size raw chunks while hashing it.
//!
//! Every body byte is hashed once with SHA-256 (its chunk's CID) and once with MD5 (the
//! ETag), in the same pass, while the bytes are still in cache; the whole-body SHA-256 is
//! a second SHA-256 pass and is only computed when asked for (a signed payload or a
//! SHA-256 checksum needs it anyway). At most one chunk is buffered, never the body.
//!
//! Pull-based, so an async caller can await between chunks:
//! ```
//! # use engine::chunker::Chunker;
//! let mut chunker = Chunker::new(4, false);
//! let mut chunks = Vec::new();
//! for mut piece in [&b"hello "[..], b"world"] {
//!     while !piece.is_empty() {
//!         piece = &piece[chunker.push(piece)..];
//!         if let Some(chunk) = chunker.take_chunk() {
//!             chunks.push(chunk); // write it to the data plane
//!         }
//!     }
//! }
//! let body = chunker.finish();
//! chunks.extend(body.last_chunk);
//! assert_eq!(chunks.len(), 3);
//! assert_eq!(body.run.len, 11);
//! ```

use crate::block::{CODEC_RAW, cid_from_sha256};
use crate::format::Run;
use cid::Cid;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// A complete chunk: its CID, where it starts in the body, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub cid: Cid,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// What a finished body hashed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The final short chunk, if the body does not end on a chunk boundary.
    pub last_chunk: Option<Chunk>,
    /// The body's chunks as one run (offset 0), ready for the chunk index.
    pub run: Run,
    /// MD5 of the body (zeros from a [`Chunker::chunks_only`]).
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
}

#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    buf: Vec<u8>,
    chunk_hash: Sha256,
    /// `None` when the caller hashes the body with MD5 itself (on another thread).
    md5: Option<Md5>,
    whole_sha256: Option<Sha256>,
    /// Bytes pushed so far.
    size: u64,
    cids: Vec<Cid>,
    full: Option<Chunk>,
    spare: Option<Vec<u8>>,
    /// The body's expected length, if known: a small body gets a small buffer.
    size_hint: Option<u64>,
}

impl Chunker {
    /// A chunker cutting `chunk_size`-byte chunks (> 0); `whole_sha256` also computes the
    /// SHA-256 of the whole body.
    pub fn new(chunk_size: usize, whole_sha256: bool) -> Self {
        let chunk_size = chunk_size.max(1);
        Self {
            chunk_size,
            buf: Vec::new(),
            chunk_hash: Sha256::new(),
            md5: Some(Md5::new()),
            whole_sha256: whole_sha256.then(Sha256::new),
            size: 0,
            cids: Vec::new(),
            full: None,
            spare: None,
            size_hint: None,
        }
    }

    /// A chunker that cuts and hashes chunks only: the body's MD5 (and whole SHA-256)
    /// are computed elsewhere, and [`Body::md5`] is all zeros.
    pub fn chunks_only(chunk_size: usize) -> Self {
        let mut c = Self::new(chunk_size, false);
        c.md5 = None;
        c
    }

    /// Tells the chunker how long the body will be, so buffers for small bodies are
    /// sized to them instead of to a whole chunk.
    pub fn set_size_hint(&mut self, total_bytes: u64) {
        self.size_hint = Some(total_bytes);
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Bytes pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Consumes a prefix of `data`, up to the end of the current chunk, and returns its
    /// length. Returns 0 while a full chunk waits in [`Chunker::take_chunk`].
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.full.is_some() {
            return 0;
        }
        if self.buf.capacity() == 0 {
            self.buf = self.spare.take().unwrap_or_default();
            self.buf.clear();
            // Without a hint, start small and let the buffer grow: a 4 KiB body must
            // not cost a fresh 1 MiB allocation.
            let left = self
                .size_hint
                .map_or(64 << 10, |n| n.saturating_sub(self.size).max(1) as usize);
            self.buf
                .reserve_exact(self.chunk_size.min(left.max(data.len())));
        }
        let n = data.len().min(self.chunk_size - self.buf.len());
        let piece = &data[..n];
        if let Some(h) = &mut self.md5 {
            h.update(piece);
        }
        self.chunk_hash.update(piece);
        if let Some(h) = &mut self.whole_sha256 {
            h.update(piece);
        }
        self.buf.extend_from_slice(piece);
        self.size += n as u64;
        if self.buf.len() == self.chunk_size {
            self.full = Some(self.cut());
        }
        n
    }

    fn cut(&mut self) -> Chunk {
        let digest = std::mem::take(&mut self.chunk_hash).finalize();
        let cid = cid_from_sha256(CODEC_RAW, digest.into());
        self.cids.push(cid);
        let data = std::mem::take(&mut self.buf);
        Chunk {
            cid,
            offset: self.size - data.len() as u64,
            data,
        }
    }

    /// The chunk completed by the last [`Chunker::push`], if any.
    pub fn take_chunk(&mut self) -> Option<Chunk> {
        self.full.take()
    }

    /// Gives a chunk's buffer back for reuse, saving an allocation per chunk.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() >= self.chunk_size {
            self.spare = Some(buf);
        }
    }

    /// Ends the body: cuts the last short chunk and returns the digests.
    pub fn finish(mut self) -> Body {
        let mut last_chunk = self.full.take();
        if !self.buf.is_empty() {
            last_chunk = Some(self.cut());
        }
        Body {
            last_chunk,
            run: Run {
                offset: 0,
                len: self.size,
                chunk_size: self.chunk_size as u64,
                chunks: self.cids,
            },
            md5: self.md5.map_or([0; 16], |h| h.finalize().into()),
            sha256: self.whole_sha256.map(|h| h.finalize().into()),
        }
    }
}

/// Chunks a body that is already in memory: its chunks in order (the short last one
/// included) and its digests.
#[cfg(any(test, feature = "testing"))]
pub fn chunk_slice(chunk_size: usize, whole_sha256: bool, mut body: &[u8]) -> (Vec<Chunk>, Body) {
    let mut chunker = Chunker::new(chunk_size, whole_sha256);
    let mut chunks = Vec::new();
    while !body.is_empty() {
        body = &body[chunker.push(body)..];
        chunks.extend(chunker.take_chunk());
    }
    let mut digests = chunker.finish();
    chunks.extend(digests.last_chunk.take());
    (chunks, digests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::cid_raw;

    fn chunk_all(body: &[u8], chunk_size: usize, piece: usize) -> (Vec<Chunk>, Body) {
        let mut c = Chunker::new(chunk_size, true);
        let mut chunks = Vec::new();
        for mut p in body.chunks(piece.max(1)) {
            while !p.is_empty() {
                p = &p[c.push(p)..];
                if let Some(ch) = c.take_chunk() {
                    chunks.push(ch);
                }
            }
        }
        let b = c.finish();
        chunks.extend(b.last_chunk.clone());
        (chunks, b)
    }

    #[test]
    fn chunks_cover_the_body_whatever_the_piece_sizes() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for (cs, piece) in [
            (1024, 1),
            (1024, 1000),
            (1024, 1024),
            (1000, 4096),
            (20_000, 3),
        ] {
            let (chunks, b) = chunk_all(&body, cs, piece);
            assert_eq!(chunks.len(), body.len().div_ceil(cs));
            let mut joined = Vec::new();
            for (i, ch) in chunks.iter().enumerate() {
                assert_eq!(ch.offset, (i * cs) as u64);
                assert_eq!(ch.cid, cid_raw(&ch.data));
                assert_eq!(b.run.chunks[i], ch.cid);
                joined.extend_from_slice(&ch.data);
            }
            assert_eq!(joined, body);
            assert_eq!(b.run.len, body.len() as u64);
            assert_eq!(b.md5, <[u8; 16]>::from(Md5::digest(&body)));
            assert_eq!(b.sha256, Some(Sha256::digest(&body).into()));
        }
    }

    #[test]
    fn empty_body_has_no_chunks() {
        let (chunks, b) = chunk_all(b"", 16, 4);
        assert!(chunks.is_empty() && b.run.chunks.is_empty() && b.last_chunk.is_none());
        assert_eq!(
            crate::hex::encode(&b.md5),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn body_ending_on_a_boundary_has_no_short_chunk() {
        let (chunks, b) = chunk_all(&[9u8; 64], 16, 64);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.data.len() == 16));
        assert!(b.last_chunk.is_none(), "no short chunk is left over");
    }
}
