//! The I/O seam: the few file operations the plane logs need, behind traits of our own,
//! so the same log code runs on the io_uring runtime, on plain blocking files, and on a
//! simulated disk with crashes and injected faults (`sim::SimDisk`, built for tests only).
//!
//! Writes take owned, page-aligned buffers at page-aligned offsets (what O_DIRECT and
//! io_uring need); a write returns its buffer for reuse.

pub mod any;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
pub mod std_disk;
pub mod uring;

use std::io;

/// Alignment of O_DIRECT buffers, offsets and lengths.
pub const PAGE_BYTES: usize = 4096;

/// Rounds `n` up to a whole number of pages.
pub fn round_up_to_page(n: u64) -> u64 {
    n.div_ceil(PAGE_BYTES as u64) * PAGE_BYTES as u64
}

/// A page-aligned buffer whose length is a whole number of pages. Aligned without
/// `unsafe`: it over-allocates by a page and uses the aligned window inside.
#[derive(Debug)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to whole pages.
    pub fn zeroed(len: usize) -> Self {
        let len = len.div_ceil(PAGE_BYTES) * PAGE_BYTES;
        let raw = vec![0u8; len + PAGE_BYTES];
        let start = raw.as_ptr().align_offset(PAGE_BYTES);
        Self { raw, start, len }
    }

    /// A buffer holding `data` followed by zeros up to the next page boundary.
    pub fn from_padded(data: &[u8]) -> Self {
        let mut b = Self::zeroed(data.len());
        b.as_mut_slice()[..data.len()].copy_from_slice(data);
        b
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }

    /// The backing vector (fully initialised) and the aligned window in it, for I/O
    /// APIs that take owned buffers; moving the vector keeps its heap block in place.
    pub(crate) fn into_parts(self) -> (Vec<u8>, usize, usize) {
        (self.raw, self.start, self.len)
    }

    pub(crate) fn from_parts(raw: Vec<u8>, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= raw.len());
        Self { raw, start, len }
    }
}

/// An open file of a plane log. Futures need not be `Send`: each file belongs to one
/// shard thread.
#[allow(async_fn_in_trait)]
pub trait SegmentFile {
    /// Writes the whole buffer at `offset` (page-aligned); returns the buffer.
    async fn write_at(&self, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf);
    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// fdatasync: every write before it is durable when it returns `Ok`.
    async fn sync_data(&self) -> io::Result<()>;
    /// Sets the file length (durable after the next sync).
    async fn set_len(&self, len: u64) -> io::Result<()>;
    async fn file_len(&self) -> io::Result<u64>;
    /// Reserves the disk blocks of `[0, len)` (fallocate): a full disk answers ENOSPC
    /// here, at once, instead of part-way through writing the range. A filesystem that
    /// cannot preallocate answers `Ok` and the writes allocate.
    async fn allocate(&self, len: u64) -> io::Result<()>;
}

/// A directory of plane-log files.
#[allow(async_fn_in_trait)]
pub trait Disk {
    type File: SegmentFile + 'static;
    /// Creates a new, empty file (an error if it exists). Its directory entry is durable
    /// after [`Disk::sync_dir`].
    async fn create(&self, name: &str) -> io::Result<Self::File>;
    async fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Removes a file; durable after [`Disk::sync_dir`].
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of the files present, sorted.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// fsync of the directory: creations and removals before it are durable.
    async fn sync_dir(&self) -> io::Result<()>;
    /// Bytes an unprivileged writer can still allocate on the filesystem (statvfs), or
    /// `None` where that is not known.
    async fn available_bytes(&self) -> io::Result<Option<u64>>;
}

/// Whether an I/O error says the filesystem is out of space (ENOSPC) or the writer's
/// quota is spent (EDQUOT): a refusal that ends when space returns, unlike EIO.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// `fallocate(fd, 0, 0, len)`, with filesystems that do not support it (EOPNOTSUPP)
/// answering `Ok`: their writes allocate the blocks instead.
pub(crate) fn fallocate(file: &std::fs::File, len: u64) -> io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    use std::os::fd::AsRawFd;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match fallocate(file.as_raw_fd(), FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`.
pub(crate) fn available_bytes(dir: &std::path::Path) -> io::Result<Option<u64>> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok(Some(
        (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64),
    ))
}
