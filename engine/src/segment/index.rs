//! The segment index, written beside a sealed segment: every block's CID → (offset,
//! length) of its bytes in the CAR, plus the segment's identity, size and SHA-256.
//! Binary and fixed-width, so lookups are a binary search; derivable from the CAR alone
//! (it is a cache). Layout (little-endian):
//!
//! ```text
//! 0    8   magic "INGOTIX1"
//! 8    1   plane (0 data, 1 catalog)      9  3  zero
//! 12   4   shard u32                       16 8  seq u64
//! 24   8   segment size in bytes u64       32 32 SHA-256 of the segment file
//! 64   8   entry count n u64
//! 72   48n entries sorted by (digest, codec), unique:
//!          digest [32] · codec u8 (0x55 raw | 0x71 dag-cbor) · zero [3]
//!          · block length u32 · block offset u64
//! end  32  SHA-256 of every preceding byte of the index
//! ```

use super::frame::{FrameError, Frames, read_header};
use super::{Plane, SegmentId};
use crate::block::{CODEC_DAG_CBOR, CODEC_RAW, sha256_digest};
use cid::Cid;
use sha2::{Digest, Sha256};

pub const INDEX_MAGIC: &[u8; 8] = b"INGOTIX1";
const HEADER_BYTES: usize = 72;
const ENTRY_BYTES: usize = 48;
const TRAILER_BYTES: usize = 32;

/// Where one block lives in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    pub digest: [u8; 32],
    pub codec: u8,
    /// Offset of the block bytes (after the frame's varint and CID) in the file.
    pub offset: u64,
    pub len: u32,
}

impl IndexEntry {
    #[cfg(any(test, feature = "testing"))]
    pub fn cid(&self) -> Cid {
        crate::block::cid_from_sha256(u64::from(self.codec), self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("segment index: {0}")]
    Invalid(&'static str),
    #[error("segment frame at offset {offset}: {err}")]
    Frame { offset: u64, err: FrameError },
    #[error("block {0} cannot be indexed (only CIDv1 raw or dag-cbor with sha2-256)")]
    Unindexable(Cid),
}

/// A decoded (or built) segment index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    pub id: SegmentId,
    /// Size of the sealed segment file in bytes.
    pub segment_bytes: u64,
    pub segment_sha256: [u8; 32],
    entries: Vec<IndexEntry>,
}

fn key(cid: &Cid) -> Option<([u8; 32], u8)> {
    let codec = match cid.codec() {
        CODEC_RAW => CODEC_RAW as u8,
        CODEC_DAG_CBOR => CODEC_DAG_CBOR as u8,
        _ => return None,
    };
    Some((sha256_digest(cid)?, codec))
}

impl SegmentIndex {
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Where `cid` is in the segment.
    #[cfg(any(test, feature = "testing"))]
    pub fn get(&self, cid: &Cid) -> Option<IndexEntry> {
        let (digest, codec) = key(cid)?;
        let i = self
            .entries
            .binary_search_by(|e| (e.digest, e.codec).cmp(&(digest, codec)))
            .ok()?;
        Some(self.entries[i])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_BYTES + ENTRY_BYTES * self.entries.len() + 32);
        b.extend_from_slice(INDEX_MAGIC);
        b.extend_from_slice(&[self.id.plane.code(), 0, 0, 0]);
        b.extend_from_slice(&self.id.shard.to_le_bytes());
        b.extend_from_slice(&self.id.seq.to_le_bytes());
        b.extend_from_slice(&self.segment_bytes.to_le_bytes());
        b.extend_from_slice(&self.segment_sha256);
        b.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.digest);
            b.extend_from_slice(&[e.codec, 0, 0, 0]);
            b.extend_from_slice(&e.len.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    /// Strict decoding: any damage (length, checksum, order, ranges) is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let invalid = IndexError::Invalid;
        if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
            return Err(invalid("too short"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - TRAILER_BYTES);
        if Sha256::digest(body).as_slice() != sum {
            return Err(invalid("checksum mismatch"));
        }
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(w)
        };
        if &body[..8] != INDEX_MAGIC {
            return Err(invalid("bad magic"));
        }
        let plane = Plane::from_code(body[8]).ok_or(invalid("unknown plane"))?;
        if body[9..12] != [0, 0, 0] {
            return Err(invalid("reserved bytes are not zero"));
        }
        let shard = u32::from_le_bytes([body[12], body[13], body[14], body[15]]);
        let seq = u64_at(16);
        let segment_bytes = u64_at(24);
        let mut segment_sha256 = [0u8; 32];
        segment_sha256.copy_from_slice(&body[32..64]);
        let n = u64_at(64);
        let expect = (body.len() - HEADER_BYTES) / ENTRY_BYTES;
        if !(body.len() - HEADER_BYTES).is_multiple_of(ENTRY_BYTES) || n != expect as u64 {
            return Err(invalid("entry count does not match the length"));
        }
        let mut entries = Vec::with_capacity(expect);
        for raw in body[HEADER_BYTES..].chunks_exact(ENTRY_BYTES) {
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&raw[..32]);
            let codec = raw[32];
            if codec != CODEC_RAW as u8 && codec != CODEC_DAG_CBOR as u8 {
                return Err(invalid("unknown codec"));
            }
            if raw[33..36] != [0, 0, 0] {
                return Err(invalid("reserved bytes are not zero"));
            }
            let len = u32::from_le_bytes([raw[36], raw[37], raw[38], raw[39]]);
            let mut off = [0u8; 8];
            off.copy_from_slice(&raw[40..48]);
            let offset = u64::from_le_bytes(off);
            if offset
                .checked_add(u64::from(len))
                .is_none_or(|end| end > segment_bytes)
            {
                return Err(invalid("block range outside the segment"));
            }
            let e = IndexEntry {
                digest,
                codec,
                offset,
                len,
            };
            if entries
                .last()
                .is_some_and(|p: &IndexEntry| (p.digest, p.codec) >= (digest, codec))
            {
                return Err(invalid("entries not sorted or not unique"));
            }
            entries.push(e);
        }
        Ok(Self {
            id: SegmentId { plane, shard, seq },
            segment_bytes,
            segment_sha256,
            entries,
        })
    }

    /// Rebuilds the index of a sealed segment from its bytes alone.
    pub fn from_car(car: &[u8]) -> Result<Self, IndexError> {
        let (roots, header_len) =
            read_header(car).map_err(|err| IndexError::Frame { offset: 0, err })?;
        let id = roots
            .first()
            .and_then(SegmentId::from_header_root)
            .ok_or(IndexError::Invalid("CAR root does not name a segment"))?;
        let mut b = SegmentIndexBuilder::new(id);
        let mut frames = Frames::new(&car[header_len..]);
        while let Some(f) = frames.next() {
            let at_err = (header_len + frames.position()) as u64;
            let (at, frame) = f.map_err(|err| IndexError::Frame {
                offset: at_err,
                err,
            })?;
            let offset = (header_len + at + frame.block_offset) as u64;
            b.add(&frame.cid, offset, frame.block.len() as u32)?;
        }
        Ok(b.finish(car.len() as u64, Sha256::digest(car).into()))
    }
}

/// Entries per piece of a [`SegmentIndexBuilder`].
const BUILDER_PIECE_ENTRIES: usize = 4096;

/// Collects entries while a segment is written; duplicates keep the first copy.
///
/// Entries go into fixed-size pieces, so a growing index never reallocates and copies
/// everything it holds (a catalog segment collects ~150,000 entries, 7 MB, between
/// seals); `finish` joins them once.
#[derive(Debug)]
pub struct SegmentIndexBuilder {
    id: SegmentId,
    pieces: Vec<Vec<IndexEntry>>,
}

impl SegmentIndexBuilder {
    /// Whether no block was added.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub fn new(id: SegmentId) -> Self {
        Self {
            id,
            pieces: Vec::new(),
        }
    }

    pub fn add(&mut self, cid: &Cid, offset: u64, len: u32) -> Result<(), IndexError> {
        let (digest, codec) = key(cid).ok_or(IndexError::Unindexable(*cid))?;
        let entry = IndexEntry {
            digest,
            codec,
            offset,
            len,
        };
        match self.pieces.last_mut() {
            Some(p) if p.len() < BUILDER_PIECE_ENTRIES => p.push(entry),
            _ => {
                let mut p = Vec::with_capacity(BUILDER_PIECE_ENTRIES);
                p.push(entry);
                self.pieces.push(p);
            }
        }
        Ok(())
    }

    pub fn finish(self, segment_bytes: u64, segment_sha256: [u8; 32]) -> SegmentIndex {
        let mut entries = Vec::with_capacity(self.pieces.iter().map(Vec::len).sum());
        for p in self.pieces {
            entries.extend(p);
        }
        // Among duplicates the earliest frame (lowest offset) sorts first and is kept.
        // An unstable sort needs no scratch buffer (a stable one allocates half the
        // entries again: fresh pages, at every seal).
        entries.sort_unstable_by(|a, b| {
            (a.digest, a.codec, a.offset).cmp(&(b.digest, b.codec, b.offset))
        });
        entries.dedup_by(|b, a| (a.digest, a.codec) == (b.digest, b.codec));
        SegmentIndex {
            id: self.id,
            segment_bytes,
            segment_sha256,
            entries,
        }
    }
}
