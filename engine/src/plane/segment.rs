//! One open segment of a plane log: frames are appended in memory and made durable by
//! [`OpenSegment::commit`] (one write of the pages from the last partial page to the end,
//! then one fdatasync); [`OpenSegment::seal`] turns it into an ordinary CAR with its index.
//!
//! Invariants:
//! - bytes below `durable_end` are on disk and synced; they are never changed again (the
//!   partial last page is rewritten with the same leading bytes);
//! - the file was pre-written with zeros before the first frame, so every commit
//!   overwrites allocated blocks (cheaper fdatasync) and nothing after the logical end can
//!   parse as a frame of this segment;
//! - after any failed write or sync the segment is poisoned: it refuses every later call,
//!   and nothing appended after the last successful commit is ever reported durable.

use super::PlaneError;
use super::hasher::SegmentHasher;
use super::tail::Tail;
use crate::io::{AlignedBuf, Disk, PAGE_BYTES, SegmentFile, round_up_to_page};
use crate::segment::frame::{frame_len, read_header, write_frame};
use crate::segment::{FrameError, Frames, SegmentId, SegmentIndex, SegmentIndexBuilder};
use cid::Cid;
use std::rc::Rc;

/// Pre-written zeros are written in pieces of this size.
const PREWRITE_PIECE_BYTES: usize = 1 << 20;

/// File name of a segment's CAR.
pub fn car_name(id: SegmentId) -> String {
    format!("{}-{:04}-{:020}.car", id.plane.as_str(), id.shard, id.seq)
}

/// File name of a segment's index.
pub fn index_name(id: SegmentId) -> String {
    format!("{}-{:04}-{:020}.idx", id.plane.as_str(), id.shard, id.seq)
}

/// An open segment.
#[derive(Debug)]
pub struct OpenSegment<F> {
    id: SegmentId,
    /// Shared so a commit's fdatasync can run without holding the segment.
    file: Rc<F>,
    /// Size of the pre-written file: frames must end within it.
    capacity_bytes: u64,
    /// Bytes from `tail_offset` (a page boundary) to `end`, in an aligned window.
    tail: Tail,
    tail_offset: u64,
    end: u64,
    durable_end: u64,
    index: SegmentIndexBuilder,
    /// SHA-256 of the file, fed bytes `[0, hashed_end)` so far (off this thread).
    sha256: SegmentHasher,
    hashed_end: u64,
    poisoned: bool,
}

impl<F: SegmentFile> OpenSegment<F> {
    /// Creates the segment file, reserves its blocks (fallocate), pre-writes
    /// `capacity_bytes` of zeros, and makes the file and its directory entry durable.
    /// The CAR header is its first append. Every block a later append or commit writes
    /// is allocated here, so they cannot meet a full disk; ENOSPC here is
    /// [`PlaneError::NoSpace`] (the caller removes the partial file).
    pub async fn create<D: Disk<File = F>>(
        disk: &D,
        id: SegmentId,
        capacity_bytes: u64,
    ) -> Result<Self, PlaneError> {
        let capacity_bytes = round_up_to_page(capacity_bytes);
        let file = disk
            .create(&car_name(id))
            .await
            .map_err(PlaneError::making_space)?;
        // A full disk answers at once, not after writing most of the zeros.
        file.allocate(capacity_bytes)
            .await
            .map_err(PlaneError::making_space)?;
        let mut pos = 0u64;
        let mut zeros = AlignedBuf::zeroed(PREWRITE_PIECE_BYTES);
        while pos < capacity_bytes {
            let n = (capacity_bytes - pos).min(PREWRITE_PIECE_BYTES as u64) as usize;
            if n < zeros.len() {
                zeros = AlignedBuf::zeroed(n);
            }
            let (r, buf) = file.write_at(zeros, pos).await;
            r.map_err(PlaneError::making_space)?;
            zeros = buf;
            pos += n as u64;
        }
        file.sync_data().await?;
        disk.sync_dir().await?;
        let mut seg = Self {
            id,
            file: Rc::new(file),
            capacity_bytes,
            tail: Tail::default(),
            tail_offset: 0,
            end: 0,
            durable_end: 0,
            index: SegmentIndexBuilder::new(id),
            sha256: SegmentHasher::default(),
            hashed_end: 0,
            poisoned: false,
        };
        let header = id.header();
        seg.push_bytes(&header);
        Ok(seg)
    }

    /// Reopens a segment found by recovery: its valid frames end at `recovered.end`.
    /// Later appends overwrite whatever followed (a torn tail).
    #[cfg(any(test, feature = "testing"))]
    pub async fn reopen(file: F, recovered: &Recovered) -> Result<Self, PlaneError> {
        let bytes = file.read_at(0, recovered.end as usize).await?;
        Self::reopen_from(file, recovered, bytes).await
    }

    /// [`OpenSegment::reopen`] with the segment's bytes already read by the scan (at
    /// least `[0, recovered.end)`), so recovery reads each open segment once.
    pub async fn reopen_from(
        file: F,
        recovered: &Recovered,
        mut bytes: Vec<u8>,
    ) -> Result<Self, PlaneError> {
        let capacity_bytes = file.file_len().await?;
        bytes.truncate(recovered.end as usize);
        if bytes.len() as u64 != recovered.end {
            return Err(PlaneError::Corrupt(
                "segment shorter than its recovered end".into(),
            ));
        }
        let mut index = SegmentIndexBuilder::new(recovered.id);
        for (cid, offset, len) in &recovered.blocks {
            index
                .add(cid, *offset, *len)
                .map_err(|e| PlaneError::Corrupt(e.to_string()))?;
        }
        let tail_offset = recovered.end - recovered.end % PAGE_BYTES as u64;
        let tail = Tail::with_bytes(None, &bytes[tail_offset as usize..]);
        let mut sha256 = SegmentHasher::default();
        sha256.update(bytes).await?;
        Ok(Self {
            id: recovered.id,
            file: Rc::new(file),
            capacity_bytes,
            tail,
            tail_offset,
            end: recovered.end,
            durable_end: recovered.end,
            index,
            sha256,
            hashed_end: recovered.end,
            poisoned: false,
        })
    }

    pub fn id(&self) -> SegmentId {
        self.id
    }

    /// The segment's file, for reads while it seals in the background.
    pub fn file(&self) -> Rc<F> {
        self.file.clone()
    }

    /// Logical end: header and every appended frame.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Everything below this offset is durable.
    #[cfg(any(test, feature = "testing"))]
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether a frame for `cid` and `block_len` bytes still fits.
    pub fn fits(&self, cid: &Cid, block_len: usize) -> bool {
        self.end + frame_len(cid, block_len) as u64 <= self.capacity_bytes
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.tail.reserve(bytes.len()).extend_from_slice(bytes);
        self.end += bytes.len() as u64;
    }

    /// Appends a frame in memory; returns the offset of the block bytes. Durable only
    /// after the next successful [`OpenSegment::commit`].
    pub fn append(&mut self, cid: &Cid, block: &[u8]) -> Result<u64, PlaneError> {
        if self.poisoned {
            return Err(PlaneError::Poisoned);
        }
        if !self.fits(cid, block.len()) {
            return Err(PlaneError::Full);
        }
        // The frame goes straight into the tail (no frame buffer): its head, then the
        // block.
        let tail = self.tail.reserve(frame_len(cid, block.len()));
        let from = tail.len();
        write_frame(tail, cid, block);
        let frame_bytes = tail.len() - from;
        let block_offset = self.end + (frame_bytes - block.len()) as u64;
        self.end += frame_bytes as u64;
        self.index
            .add(cid, block_offset, block.len() as u32)
            .map_err(|e| PlaneError::Corrupt(e.to_string()))?;
        Ok(block_offset)
    }

    /// Makes every appended frame durable: writes the pages from the last partial page
    /// to the end, then fdatasync. Returns the new durable end. Poisons on failure.
    pub async fn commit(&mut self) -> Result<u64, PlaneError> {
        match self.start_commit().await? {
            None => Ok(self.durable_end),
            Some((file, end)) => {
                let synced = file.sync_data().await;
                self.finish_commit(end, synced)
            }
        }
    }

    /// Writes the first `n` tail bytes (zero-padded to a page) at `tail_offset` straight
    /// from the tail, then moves the tail on to `keep_from` (a page boundary, at most
    /// the end): the written vector goes to the hashing thread with every byte not yet
    /// hashed (bytes are hashed in file order, once written), and a new tail, in a
    /// vector the thread handed back, keeps the bytes from `keep_from` on (less than a
    /// page). Poisons on failure.
    async fn write_out(&mut self, n: usize, keep_from: u64) -> Result<(), PlaneError> {
        let buf = self.tail.take_for_write(n);
        let (r, buf) = self.file.write_at(buf, self.tail_offset).await;
        self.tail.written(buf);
        if let Err(e) = r {
            self.poisoned = true;
            return Err(PlaneError::Io(e));
        }
        let keep = (keep_from - self.tail_offset) as usize;
        let (written, start) = self.tail.split_off(keep, self.sha256.spare());
        let unhashed = start + (self.hashed_end - self.tail_offset) as usize;
        self.tail_offset = keep_from;
        if let Err(e) = self.sha256.update_owned(written, unhashed).await {
            self.poisoned = true;
            return Err(e);
        }
        self.hashed_end = self.end;
        Ok(())
    }

    /// Bytes appended but not yet written to the file.
    #[cfg(any(test, feature = "testing"))]
    pub fn unwritten_bytes(&self) -> u64 {
        self.end - self.tail_offset
    }

    /// Whether any frame follows the header.
    pub fn has_frames(&self) -> bool {
        !self.index.is_empty()
    }

    /// Writes the whole pages of the unwritten tail (no fdatasync) once there are at
    /// least `min_bytes` of them, so large bodies go to disk in bounded pieces while
    /// they stream instead of all at the next commit. Poisons on failure.
    pub async fn write_behind(&mut self, min_bytes: u64) -> Result<(), PlaneError> {
        if self.poisoned {
            return Err(PlaneError::Poisoned);
        }
        let upto = self.end - self.end % PAGE_BYTES as u64;
        if upto <= self.tail_offset || upto - self.tail_offset < min_bytes {
            return Ok(());
        }
        let n = (upto - self.tail_offset) as usize;
        self.write_out(n, upto).await
    }

    /// The first half of a commit that does not hold the segment across its fsync:
    /// writes the pending pages (the partial last page rewritten with the same leading
    /// bytes) and returns the file and the end the next fdatasync makes durable, or
    /// `None` when nothing is pending. Then: `file.sync_data()` without the segment,
    /// and [`OpenSegment::finish_commit`]. Appends may continue in between.
    pub async fn start_commit(&mut self) -> Result<Option<(Rc<F>, u64)>, PlaneError> {
        if self.poisoned {
            return Err(PlaneError::Poisoned);
        }
        if self.end == self.durable_end {
            return Ok(None);
        }
        let end = self.end;
        // Written (not yet synced): reads of these bytes can go to the file now. The
        // partial last page stays in the tail, to be rewritten with the next bytes.
        if !self.tail.is_empty() {
            let keep_from = end - end % PAGE_BYTES as u64;
            self.write_out(self.tail.len(), keep_from).await?;
        }
        Ok(Some((self.file.clone(), end)))
    }

    /// Ends a commit begun by [`OpenSegment::start_commit`] with its fdatasync result.
    pub fn finish_commit(
        &mut self,
        end: u64,
        synced: std::io::Result<()>,
    ) -> Result<u64, PlaneError> {
        if let Err(e) = synced {
            // fsyncgate: after a failed fsync the page cache may have dropped the dirty
            // pages; retrying could report lost data as durable. Poison instead.
            self.poisoned = true;
            return Err(PlaneError::Io(e));
        }
        if self.poisoned {
            return Err(PlaneError::Poisoned);
        }
        self.durable_end = self.durable_end.max(end);
        Ok(self.durable_end)
    }

    /// Where the `len` bytes at `offset` are (written or not yet committed): copied out
    /// of the unwritten tail, or a handle on the file to read them from without holding
    /// the segment, so a read never waits for an append or a write, nor they for it.
    pub fn source(&self, offset: u64, len: usize) -> Result<BlockSource<F>, PlaneError> {
        let end = offset + len as u64;
        if end > self.end {
            return Err(PlaneError::Corrupt(
                "read past the end of the segment".into(),
            ));
        }
        if offset >= self.tail_offset {
            let start = (offset - self.tail_offset) as usize;
            let bytes = &self.tail.bytes()[start..start + len];
            return Ok(BlockSource::Memory(bytes.to_vec()));
        }
        // Invariant: bytes below `tail_offset` are in the file. A later commit may
        // rewrite the page holding `tail_offset`, but with the same leading bytes.
        // Bytes at or past it may not be written yet (write-behind writes whole pages
        // only): a block straddling it takes those from the tail.
        let in_file = (self.tail_offset - offset).min(len as u64) as usize;
        let rest = len - in_file;
        Ok(BlockSource::File {
            file: self.file.clone(),
            offset,
            len: in_file,
            tail: self.tail.bytes()[..rest].to_vec(),
        })
    }

    /// Reads `len` bytes at `offset` (durable or not yet committed).
    #[cfg(any(test, feature = "testing"))]
    pub async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, PlaneError> {
        self.source(offset, len)?.read().await
    }

    /// Commits, truncates the file to its logical length, syncs it, and writes the index
    /// beside it (file, then directory synced). The result is an ordinary CAR.
    pub async fn seal<D: Disk<File = F>>(mut self, disk: &D) -> Result<SegmentIndex, PlaneError> {
        self.commit().await?;
        let fail = |seg: &mut Self, e| {
            seg.poisoned = true;
            PlaneError::Io(e)
        };
        if let Err(e) = self.file.set_len(self.end).await {
            return Err(fail(&mut self, e));
        }
        if let Err(e) = self.file.sync_data().await {
            return Err(fail(&mut self, e));
        }
        // Every byte was handed to the hasher by the commit's write.
        debug_assert_eq!(self.hashed_end, self.end);
        let sha256 = std::mem::take(&mut self.sha256).finish().await?;
        // Sorting and encoding ~100,000 entries took 8–49 ms of the shard thread at
        // every catalog seal under 4 KiB PUTs: a helper thread does it meanwhile.
        let builder = std::mem::replace(&mut self.index, SegmentIndexBuilder::new(self.id));
        let end = self.end;
        let (index, bytes) = crate::threads::run_off_thread("ingot-index", move || {
            let index = builder.finish(end, sha256);
            let bytes = index.encode();
            (index, bytes)
        })
        .await?;
        let idx = disk.create(&index_name(self.id)).await?;
        let (r, _) = idx.write_at(AlignedBuf::from_padded(&bytes), 0).await;
        r?;
        idx.set_len(bytes.len() as u64).await?;
        idx.sync_data().await?;
        disk.sync_dir().await?;
        Ok(index)
    }
}

/// A block's bytes as located under the plane log's lock, read after releasing it.
#[derive(Debug)]
pub enum BlockSource<F> {
    /// Not yet written: a copy from memory.
    Memory(Vec<u8>),
    /// In a segment file (open or sealed); the handle keeps the file readable even if
    /// the segment is sealed, reopened or unlinked meanwhile.
    File {
        file: Rc<F>,
        offset: u64,
        len: usize,
        /// The block's last bytes, not yet written: copied from memory.
        tail: Vec<u8>,
    },
}

impl<F: SegmentFile> BlockSource<F> {
    /// The bytes (the caller verifies them against the CID).
    pub async fn read(self) -> Result<Vec<u8>, PlaneError> {
        match self {
            BlockSource::Memory(bytes) => Ok(bytes),
            BlockSource::File {
                file,
                offset,
                len,
                tail,
            } => {
                let mut bytes = file.read_at(offset, len).await?;
                if bytes.len() != len {
                    return Err(PlaneError::Corrupt("block extends past its segment".into()));
                }
                bytes.extend_from_slice(&tail);
                Ok(bytes)
            }
        }
    }
}

/// What recovery found in an open segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub id: SegmentId,
    /// End of the last valid frame: the segment's logical length.
    pub end: u64,
    /// Every valid block: (CID, offset of its bytes, length).
    pub blocks: Vec<(Cid, u64, u32)>,
    /// Why the scan stopped (`None` at the end of the file).
    pub stopped_by: Option<String>,
}

/// Scans an open segment frame by frame, verifying each block against its CID, and
/// stops at the first torn, zero or invalid frame. `None` when not even the header is
/// valid (the segment never had a durable commit).
#[cfg(any(test, feature = "testing"))]
pub async fn recover<F: SegmentFile>(file: &F) -> Result<Option<Recovered>, PlaneError> {
    recover_with(file, &mut |_, _, _| {}).await
}

/// [`recover`], showing each valid block (CID, offset, bytes) to `visit` as it is found.
#[cfg(any(test, feature = "testing"))]
pub async fn recover_with<F: SegmentFile>(
    file: &F,
    visit: &mut dyn FnMut(&Cid, u64, &[u8]),
) -> Result<Option<Recovered>, PlaneError> {
    Ok(scan(file, visit).await?.map(|(r, _)| r))
}

/// Recovery reads open segments in pieces of this size: large sequential reads, and
/// the pre-written zeros after the last frame are not read at all.
const SCAN_PIECE_BYTES: usize = 8 << 20;

/// [`recover_with`], also returning the bytes read (at least the valid prefix, for
/// [`OpenSegment::reopen_from`]). Reads piece by piece and stops at the first frame
/// that is not valid, so the time is proportional to the data, not the file size.
pub async fn scan<F: SegmentFile>(
    file: &F,
    visit: &mut dyn FnMut(&Cid, u64, &[u8]),
) -> Result<Option<(Recovered, Vec<u8>)>, PlaneError> {
    let len = file.file_len().await?;
    let mut bytes: Vec<u8> = Vec::new();
    let mut header: Option<(SegmentId, usize)> = None;
    let mut pos = 0usize; // end of the last valid frame (absolute)
    let mut blocks = Vec::new();
    let mut stopped_by = None;
    loop {
        let at_eof = bytes.len() as u64 >= len;
        if !at_eof {
            let want = (len - bytes.len() as u64).min(SCAN_PIECE_BYTES as u64) as usize;
            let piece = file.read_at(bytes.len() as u64, want).await?;
            if piece.is_empty() {
                return Err(PlaneError::Corrupt(
                    "segment shrank while being scanned".into(),
                ));
            }
            bytes.extend_from_slice(&piece);
        }
        let at_eof = bytes.len() as u64 >= len;
        let (id, header_len) = match header {
            Some(h) => h,
            None => match read_header(&bytes) {
                Ok((roots, n)) => {
                    let Some(id) = roots.first().and_then(SegmentId::from_header_root) else {
                        return Err(PlaneError::Corrupt(
                            "segment header does not name a segment".into(),
                        ));
                    };
                    pos = n;
                    header = Some((id, n));
                    (id, n)
                }
                Err(FrameError::Truncated { .. }) if !at_eof => continue,
                Err(_) => return Ok(None),
            },
        };
        let _ = header_len;
        let mut done = false;
        let mut frames = Frames::new(&bytes[pos..]);
        let base = pos;
        for f in frames.by_ref() {
            match f {
                Ok((at, frame)) => {
                    let offset = (base + at + frame.block_offset) as u64;
                    visit(&frame.cid, offset, frame.block);
                    blocks.push((frame.cid, offset, frame.block.len() as u32));
                }
                Err(FrameError::Truncated { .. }) if !at_eof => {}
                Err(e) => {
                    stopped_by = Some(e.to_string());
                    done = true;
                }
            }
        }
        pos = base + frames.position();
        if done || at_eof || pos as u64 >= len {
            let rec = Recovered {
                id,
                end: pos as u64,
                blocks,
                stopped_by,
            };
            return Ok(Some((rec, bytes)));
        }
    }
}
