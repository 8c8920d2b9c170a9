//! Plane-log files on a real directory with blocking system calls: O_DIRECT where the
//! filesystem accepts it, buffered writes + fdatasync where it does not (tmpfs, some
//! overlays) — durability rules are the same either way. Used by tests, tools, and as
//! the fallback where io_uring is unavailable.

use super::{AlignedBuf, Disk, SegmentFile};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A directory of plane-log files.
#[derive(Debug)]
pub struct StdDisk {
    dir: PathBuf,
    direct: AtomicBool,
}

/// One open file.
#[derive(Debug)]
pub struct StdFile {
    file: File,
}

impl StdDisk {
    /// Uses `dir` (created if missing) for the files.
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
        self.direct.load(Ordering::Relaxed)
    }

    fn open_with(&self, name: &str, create: bool) -> io::Result<File> {
        open_file(&self.dir, name, create, &self.direct)
    }
}

impl SegmentFile for StdFile {
    async fn write_at(&self, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        let r = self.file.write_all_at(buf.as_slice(), offset);
        (r, buf)
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // O_DIRECT reads need aligned buffers, offsets and lengths: read the covering
        // pages and cut out the range.
        let start = offset - offset % super::PAGE_BYTES as u64;
        let end = super::round_up_to_page(offset + len as u64);
        let mut buf = AlignedBuf::zeroed((end - start) as usize);
        let mut got = 0;
        while got < buf.len() {
            let n = self
                .file
                .read_at(&mut buf.as_mut_slice()[got..], start + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let skip = (offset - start) as usize;
        let avail = got.saturating_sub(skip).min(len);
        Ok(buf.as_slice()[skip..skip + avail].to_vec())
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    async fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        super::fallocate(&self.file, len)
    }
}

impl Disk for StdDisk {
    type File = StdFile;

    async fn create(&self, name: &str) -> io::Result<StdFile> {
        Ok(StdFile {
            file: self.open_with(name, true)?,
        })
    }

    async fn open(&self, name: &str) -> io::Result<StdFile> {
        Ok(StdFile {
            file: self.open_with(name, false)?,
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        list_files(&self.dir)
    }

    async fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    async fn available_bytes(&self) -> io::Result<Option<u64>> {
        super::available_bytes(&self.dir)
    }
}

/// Names of the regular files in `dir`, sorted.
pub(crate) fn list_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens (or creates, failing if it exists) `dir/name` for reading and writing, with
/// O_DIRECT while `direct` holds. A filesystem that refuses O_DIRECT (EINVAL: tmpfs,
/// some overlays) clears `direct` with one warning; the file is then opened buffered,
/// with the same fdatasync points.
pub(crate) fn open_file(
    dir: &Path,
    name: &str,
    create: bool,
    direct: &AtomicBool,
) -> io::Result<File> {
    let path = dir.join(name);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if create {
        opts.create_new(true).mode(crate::data_dir::FILE_MODE);
    }
    if direct.load(Ordering::Relaxed) {
        match opts.clone().custom_flags(libc::O_DIRECT).open(&path) {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if direct.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        dir = %dir.display(),
                        "filesystem refuses O_DIRECT; using buffered writes with fdatasync"
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    opts.open(&path)
}
