//! Plane-log files on a real directory through the shard's io_uring runtime (monoio):
//! writes, reads and fdatasync are submitted to the ring, so a shard thread never blocks
//! on the disk. Files are opened with O_DIRECT where the filesystem accepts it, else
//! buffered with the same fdatasync points (one warning, as [`super::std_disk`]).
//!
//! Rare metadata calls (create, truncate, fallocate, length, unlink, directory fsync,
//! statvfs) stay plain
//! system calls: they happen a few times per segment, never per object.

use super::{AlignedBuf, Disk, PAGE_BYTES, SegmentFile, round_up_to_page};
use monoio::buf::{IoBuf, IoBufMut};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A directory of plane-log files, driven by the current thread's monoio runtime.
#[derive(Debug)]
pub struct UringDisk {
    dir: PathBuf,
    direct: AtomicBool,
}

/// One open file: the ring-driven handle for data, and a duplicate descriptor for
/// truncation and length.
pub struct UringFile {
    ring: monoio::fs::File,
    meta: File,
}

impl std::fmt::Debug for UringFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringFile")
            .field("meta", &self.meta)
            .finish()
    }
}

impl UringDisk {
    /// Uses `dir` (created if missing). Must be used from inside a monoio runtime.
    pub fn new(dir: &Path) -> io::Result<Self> {
        crate::data_dir::create_private(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            direct: AtomicBool::new(true),
        })
    }

    /// Whether files are opened with O_DIRECT (false after a filesystem refused it).
    #[cfg(any(test, feature = "testing"))]
    pub fn is_direct(&self) -> bool {
        self.direct.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn open_with(&self, name: &str, create: bool) -> io::Result<UringFile> {
        let file = super::std_disk::open_file(&self.dir, name, create, &self.direct)?;
        let meta = file.try_clone()?;
        Ok(UringFile {
            ring: monoio::fs::File::from_std(file)?,
            meta,
        })
    }
}

impl SegmentFile for UringFile {
    async fn write_at(&self, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        let (raw, start, len) = buf.into_parts();
        let (r, slice) = self
            .ring
            .write_all_at(raw.slice(start..start + len), offset)
            .await;
        (r, AlignedBuf::from_parts(slice.into_inner(), start, len))
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // O_DIRECT reads need aligned buffers, offsets and lengths: read the covering
        // pages and cut out the range.
        let first = offset - offset % PAGE_BYTES as u64;
        let end = round_up_to_page(offset + len as u64);
        let (mut raw, start, total) = AlignedBuf::zeroed((end - first) as usize).into_parts();
        let mut got = 0usize;
        while got < total {
            let window = raw.slice_mut(start + got..start + total);
            let (r, window) = self.ring.read_at(window, first + got as u64).await;
            raw = window.into_inner();
            match r? {
                0 => break,
                n => got += n,
            }
        }
        let skip = (offset - first) as usize;
        let avail = got.saturating_sub(skip).min(len);
        Ok(raw[start + skip..start + skip + avail].to_vec())
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.ring.sync_data().await
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.meta.set_len(len)
    }

    async fn file_len(&self) -> io::Result<u64> {
        Ok(self.meta.metadata()?.len())
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        super::fallocate(&self.meta, len)
    }
}

impl Disk for UringDisk {
    type File = UringFile;

    async fn create(&self, name: &str) -> io::Result<UringFile> {
        self.open_with(name, true)
    }

    async fn open(&self, name: &str) -> io::Result<UringFile> {
        self.open_with(name, false)
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        super::std_disk::list_files(&self.dir)
    }

    async fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    async fn available_bytes(&self) -> io::Result<Option<u64>> {
        super::available_bytes(&self.dir)
    }
}
