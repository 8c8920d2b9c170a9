//! The chunk index of an object body: `{"/chunks/1": {"r": [run…]}}` (a leaf) or
//! `{"/chunks/1": {"x": [child…]}}` (an interior block of a large index).
//!
//! A body is a sequence of runs: a single-part body is one run, a multipart body one run
//! per part. Within a run every chunk but the last is exactly the run's chunk size, so
//! chunk `i` of a run at offset `o` covers `[o + i·cs, min(o + (i+1)·cs, o + n))` and a
//! range read finds its chunks by arithmetic, reading no chunk. An index block holds at
//! most [`MAX_INDEX_LINKS`] links; a body with more chunks gets leaves of at most that
//! many chunk links under interior blocks, each child covering a contiguous byte span.

use super::{check_cbor_link, open_union, write_union};
use crate::block::{BlockSink, CODEC_RAW, MH_SHA2_256, cid_dag_cbor};
use crate::cbor::{self, DecodeError, Decoder};
use cid::Cid;

pub const CHUNKS_TAG: &str = "/chunks/1";
/// Most links (chunks or children) in one index block (about 160 KB of CIDs).
pub const MAX_INDEX_LINKS: usize = 4096;
/// Largest chunk size a run may declare.
pub const MAX_CHUNK_BYTES: u64 = 16 << 20;

/// A run of fixed-size chunks: `{"c": [links], "n": len, "o": offset, "cs": chunk size}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Offset of the run's first byte in the body.
    pub offset: u64,
    /// Length of the run in bytes (> 0).
    pub len: u64,
    pub chunk_size: u64,
    /// `ceil(len / chunk_size)` raw sha2-256 chunk CIDs.
    pub chunks: Vec<Cid>,
}

/// A child index block covering `[offset, offset + len)`: `{"l": link, "n": len, "o": offset}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildIndex {
    pub offset: u64,
    pub len: u64,
    pub link: Cid,
}

/// One index block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkIndex {
    Leaf(Vec<Run>),
    Interior(Vec<ChildIndex>),
}

/// A chunk a range read needs: its CID and the body bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub cid: Cid,
    /// Body offset of the chunk's first byte.
    pub offset: u64,
    pub len: u64,
}

/// What a block contributes to a range: chunks (leaf) or children to descend (interior).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    Chunks(Vec<ChunkRef>),
    Children(Vec<ChildIndex>),
}

impl Run {
    /// The chunk holding body offset `pos` (which must lie in the run).
    fn chunk_at(&self, pos: u64) -> usize {
        ((pos - self.offset) / self.chunk_size) as usize
    }

    fn chunk_ref(&self, i: usize) -> ChunkRef {
        let start = i as u64 * self.chunk_size;
        ChunkRef {
            cid: self.chunks[i],
            offset: self.offset + start,
            len: self.chunk_size.min(self.len - start),
        }
    }
}

impl ChunkIndex {
    /// `(offset, len)` of the bytes this block covers.
    pub fn span(&self) -> (u64, u64) {
        let spans: Vec<(u64, u64)> = match self {
            Self::Leaf(runs) => runs.iter().map(|r| (r.offset, r.len)).collect(),
            Self::Interior(children) => children.iter().map(|c| (c.offset, c.len)).collect(),
        };
        match (spans.first(), spans.last()) {
            (Some(first), Some(last)) => (first.0, last.0 + last.1 - first.0),
            _ => (0, 0),
        }
    }

    /// The chunks (or children) overlapping the body range `[start, end)`.
    pub fn locate(&self, start: u64, end: u64) -> Located {
        let overlaps = |o: u64, n: u64| o < end && start < o + n;
        match self {
            Self::Leaf(runs) => {
                let mut out = Vec::new();
                for r in runs.iter().filter(|r| overlaps(r.offset, r.len)) {
                    let first = r.chunk_at(start.max(r.offset));
                    let last = r.chunk_at(end.min(r.offset + r.len) - 1);
                    out.extend((first..=last).map(|i| r.chunk_ref(i)));
                }
                Located::Chunks(out)
            }
            Self::Interior(children) => Located::Children(
                children
                    .iter()
                    .filter(|c| overlaps(c.offset, c.len))
                    .cloned()
                    .collect(),
            ),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + 40 * self.link_count());
        write_union(&mut buf, CHUNKS_TAG);
        cbor::write_map(&mut buf, 1);
        match self {
            Self::Leaf(runs) => {
                cbor::write_text(&mut buf, "r");
                cbor::write_array(&mut buf, runs.len());
                for r in runs {
                    cbor::write_map(&mut buf, 4);
                    cbor::write_text(&mut buf, "c");
                    cbor::write_array(&mut buf, r.chunks.len());
                    for c in &r.chunks {
                        cbor::write_link(&mut buf, c);
                    }
                    cbor::write_text(&mut buf, "n");
                    cbor::write_uint(&mut buf, r.len);
                    cbor::write_text(&mut buf, "o");
                    cbor::write_uint(&mut buf, r.offset);
                    cbor::write_text(&mut buf, "cs");
                    cbor::write_uint(&mut buf, r.chunk_size);
                }
            }
            Self::Interior(children) => {
                cbor::write_text(&mut buf, "x");
                cbor::write_array(&mut buf, children.len());
                for c in children {
                    cbor::write_map(&mut buf, 3);
                    cbor::write_text(&mut buf, "l");
                    cbor::write_link(&mut buf, &c.link);
                    cbor::write_text(&mut buf, "n");
                    cbor::write_uint(&mut buf, c.len);
                    cbor::write_text(&mut buf, "o");
                    cbor::write_uint(&mut buf, c.offset);
                }
            }
        }
        buf
    }

    fn link_count(&self) -> usize {
        match self {
            Self::Leaf(runs) => runs.iter().map(|r| r.chunks.len()).sum(),
            Self::Interior(children) => children.len(),
        }
    }

    /// Strict decoding: runs and children must be non-empty, contiguous, within limits,
    /// with exactly the chunk count their length needs.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        open_union(&mut d, CHUNKS_TAG)?;
        if d.map()? != 1 {
            return Err(DecodeError::schema(
                "chunk index must hold exactly one of r, x",
            ));
        }
        let at = d.position();
        let index = match d.text()? {
            "r" => Self::Leaf(decode_runs(&mut d)?),
            "x" => Self::Interior(decode_children(&mut d)?),
            other => {
                return Err(DecodeError::schema(format!(
                    "unknown chunk index field {other:?} at byte {at}"
                )));
            }
        };
        d.finish()?;
        if index.link_count() > MAX_INDEX_LINKS {
            return Err(DecodeError::schema(
                "chunk index block holds too many links",
            ));
        }
        Ok(index)
    }
}

fn check_contiguous(spans: impl Iterator<Item = (u64, u64)>) -> Result<(), DecodeError> {
    let mut next: Option<u64> = None;
    for (offset, len) in spans {
        if len == 0 {
            return Err(DecodeError::schema("chunk index span of length 0"));
        }
        if next.is_some_and(|n| n != offset) {
            return Err(DecodeError::schema("chunk index spans are not contiguous"));
        }
        next = Some(
            offset
                .checked_add(len)
                .ok_or_else(|| DecodeError::schema("chunk index span overflows"))?,
        );
    }
    if next.is_none() {
        return Err(DecodeError::schema("chunk index block is empty"));
    }
    Ok(())
}

fn decode_runs(d: &mut Decoder<'_>) -> Result<Vec<Run>, DecodeError> {
    let n = d.array()?;
    let mut runs = Vec::with_capacity(n.min(MAX_INDEX_LINKS));
    for _ in 0..n {
        if d.map()? != 4 {
            return Err(DecodeError::schema(
                "run must be a map of exactly c, n, o, cs",
            ));
        }
        d.expect_key("c")?;
        let count = d.array()?;
        if count > MAX_INDEX_LINKS {
            return Err(DecodeError::schema("run holds too many chunks"));
        }
        let mut chunks = Vec::with_capacity(count);
        for _ in 0..count {
            let c = d.link()?;
            let raw_sha256 = c.version() == cid::Version::V1
                && c.codec() == CODEC_RAW
                && c.hash().code() == MH_SHA2_256
                && c.hash().size() == 32;
            if !raw_sha256 {
                return Err(DecodeError::schema(format!(
                    "chunk {c} is not a raw sha2-256 CID"
                )));
            }
            chunks.push(c);
        }
        d.expect_key("n")?;
        let len = d.uint()?;
        d.expect_key("o")?;
        let offset = d.uint()?;
        d.expect_key("cs")?;
        let chunk_size = d.uint()?;
        if chunk_size == 0 || chunk_size > MAX_CHUNK_BYTES {
            return Err(DecodeError::schema("run chunk size out of range"));
        }
        if len.div_ceil(chunk_size) != count as u64 {
            return Err(DecodeError::schema(
                "run chunk count does not match its length",
            ));
        }
        runs.push(Run {
            offset,
            len,
            chunk_size,
            chunks,
        });
    }
    check_contiguous(runs.iter().map(|r| (r.offset, r.len)))?;
    Ok(runs)
}

fn decode_children(d: &mut Decoder<'_>) -> Result<Vec<ChildIndex>, DecodeError> {
    let n = d.array()?;
    if n > MAX_INDEX_LINKS {
        return Err(DecodeError::schema(
            "chunk index block holds too many children",
        ));
    }
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        if d.map()? != 3 {
            return Err(DecodeError::schema(
                "child must be a map of exactly l, n, o",
            ));
        }
        d.expect_key("l")?;
        let link = d.link()?;
        check_cbor_link(&link, "chunk index child")?;
        d.expect_key("n")?;
        let len = d.uint()?;
        d.expect_key("o")?;
        let offset = d.uint()?;
        children.push(ChildIndex { offset, len, link });
    }
    check_contiguous(children.iter().map(|c| (c.offset, c.len)))?;
    Ok(children)
}

/// Splits runs so that no piece holds more than `max` chunks (pieces of a run are runs
/// too: every chunk before the split point is full-size).
fn split_runs(runs: Vec<Run>, max: usize) -> Vec<Run> {
    let mut out = Vec::new();
    for r in runs {
        let mut offset = r.offset;
        let mut left = r.len;
        for piece in r.chunks.chunks(max) {
            let len = (piece.len() as u64 * r.chunk_size).min(left);
            out.push(Run {
                offset,
                len,
                chunk_size: r.chunk_size,
                chunks: piece.to_vec(),
            });
            offset += len;
            left -= len;
        }
    }
    out
}

/// Writes the index blocks for a body made of `runs` (contiguous, from offset 0) to
/// `sink` and returns the root block's CID, or `None` for an empty body.
pub fn build_chunk_index(runs: Vec<Run>, sink: &mut impl BlockSink) -> Option<Cid> {
    build_with_limit(runs, sink, MAX_INDEX_LINKS)
}

pub(crate) fn build_with_limit(
    runs: Vec<Run>,
    sink: &mut impl BlockSink,
    max_links: usize,
) -> Option<Cid> {
    let runs: Vec<Run> = runs.into_iter().filter(|r| r.len > 0).collect();
    let pieces = split_runs(runs, max_links);
    // Pack pieces into leaves of at most max_links chunk links.
    let mut level: Vec<ChildIndex> = Vec::new();
    let mut leaf: Vec<Run> = Vec::new();
    let mut links = 0;
    let emit = |leaf: Vec<Run>, level: &mut Vec<ChildIndex>, sink: &mut _| {
        let block = ChunkIndex::Leaf(leaf);
        let (offset, len) = block.span();
        let bytes = block.encode();
        let link = cid_dag_cbor(&bytes);
        BlockSink::put_block(sink, link, bytes);
        level.push(ChildIndex { offset, len, link });
    };
    for p in pieces {
        if links + p.chunks.len() > max_links && !leaf.is_empty() {
            emit(std::mem::take(&mut leaf), &mut level, sink);
            links = 0;
        }
        links += p.chunks.len();
        leaf.push(p);
    }
    if !leaf.is_empty() {
        emit(leaf, &mut level, sink);
    }
    // Interior levels until one block remains.
    while level.len() > 1 {
        let mut next = Vec::new();
        for group in level.chunks(max_links) {
            let block = ChunkIndex::Interior(group.to_vec());
            let (offset, len) = block.span();
            let bytes = block.encode();
            let link = cid_dag_cbor(&bytes);
            sink.put_block(link, bytes);
            next.push(ChildIndex { offset, len, link });
        }
        level = next;
    }
    level.pop().map(|c| c.link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemoryBlocks, cid_raw};

    fn run(offset: u64, len: u64, cs: u64, tag: u8) -> Run {
        let n = len.div_ceil(cs) as usize;
        let chunks = (0..n)
            .map(|i| cid_raw(&[tag, i as u8, (i >> 8) as u8]))
            .collect();
        Run {
            offset,
            len,
            chunk_size: cs,
            chunks,
        }
    }

    /// Walks an index from its root, collecting the chunks for `[start, end)`.
    fn resolve(root: &Cid, blocks: &MemoryBlocks, start: u64, end: u64) -> Vec<ChunkRef> {
        let block = ChunkIndex::decode(blocks.get(root).unwrap()).unwrap();
        match block.locate(start, end) {
            Located::Chunks(c) => c,
            Located::Children(children) => children
                .iter()
                .flat_map(|c| resolve(&c.link, blocks, start, end))
                .collect(),
        }
    }

    #[test]
    fn range_maps_to_chunks_by_arithmetic() {
        let idx = ChunkIndex::Leaf(vec![run(0, 10, 4, 1)]);
        let Located::Chunks(c) = idx.locate(3, 9) else {
            panic!()
        };
        assert_eq!(
            c.iter().map(|c| (c.offset, c.len)).collect::<Vec<_>>(),
            [(0, 4), (4, 4), (8, 2)]
        );
        let Located::Chunks(c) = idx.locate(4, 8) else {
            panic!()
        };
        assert_eq!(
            c.iter().map(|c| (c.offset, c.len)).collect::<Vec<_>>(),
            [(4, 4)]
        );
    }

    #[test]
    fn multipart_runs_keep_part_boundaries() {
        // parts of 10, 7 and 3 bytes with 4-byte chunks
        let idx = ChunkIndex::Leaf(vec![run(0, 10, 4, 1), run(10, 7, 4, 2), run(17, 3, 4, 3)]);
        let Located::Chunks(c) = idx.locate(9, 18) else {
            panic!()
        };
        let spans: Vec<_> = c.iter().map(|c| (c.offset, c.len)).collect();
        assert_eq!(spans, [(8, 2), (10, 4), (14, 3), (17, 3)]);
        assert_eq!(ChunkIndex::decode(&idx.encode()).unwrap(), idx);
    }

    #[test]
    fn large_bodies_become_a_tree_with_the_same_chunks() {
        let runs = vec![run(0, 45, 4, 1), run(45, 30, 4, 2)]; // 12 + 8 chunks
        let mut blocks = MemoryBlocks::new();
        let root = build_with_limit(runs.clone(), &mut blocks, 3).unwrap();
        let root_block = ChunkIndex::decode(blocks.get(&root).unwrap()).unwrap();
        assert!(matches!(root_block, ChunkIndex::Interior(_)));
        assert_eq!(root_block.span(), (0, 75));
        let all: Vec<Cid> = runs.iter().flat_map(|r| r.chunks.clone()).collect();
        let got: Vec<Cid> = resolve(&root, &blocks, 0, 75)
            .iter()
            .map(|c| c.cid)
            .collect();
        assert_eq!(got, all);
        for (s, e) in [(0, 1), (44, 46), (11, 60), (74, 75)] {
            let refs = resolve(&root, &blocks, s, e);
            assert!(
                refs.first().unwrap().offset <= s
                    && refs.last().map(|c| c.offset + c.len) >= Some(e)
            );
            assert!(
                refs.windows(2)
                    .all(|w| w[0].offset + w[0].len == w[1].offset)
            );
        }
    }

    #[test]
    fn decoder_refuses_gaps_wrong_counts_and_foreign_chunks() {
        let gap = ChunkIndex::Leaf(vec![run(0, 8, 4, 1), run(9, 4, 4, 2)]);
        assert!(ChunkIndex::decode(&gap.encode()).is_err());
        let mut short = run(0, 8, 4, 1);
        short.chunks.pop();
        assert!(ChunkIndex::decode(&ChunkIndex::Leaf(vec![short]).encode()).is_err());
        let mut foreign = run(0, 4, 4, 1);
        foreign.chunks[0] = cid_dag_cbor(b"x");
        assert!(ChunkIndex::decode(&ChunkIndex::Leaf(vec![foreign]).encode()).is_err());
        assert!(ChunkIndex::decode(&ChunkIndex::Leaf(vec![]).encode()).is_err());
        let zero_cs = Run {
            offset: 0,
            len: 0,
            chunk_size: 0,
            chunks: vec![],
        };
        assert!(ChunkIndex::decode(&ChunkIndex::Leaf(vec![zero_cs]).encode()).is_err());
    }
}
