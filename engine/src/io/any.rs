//! The disk a shard runs on, chosen at start: io_uring when the kernel allows it, plain
//! blocking calls otherwise. An enum rather than a trait object: the I/O traits have
//! async methods, and one match per call costs nothing next to a system call.

use super::std_disk::{StdDisk, StdFile};
use super::uring::{UringDisk, UringFile};
use super::{AlignedBuf, Disk, SegmentFile};
use std::io;

#[derive(Debug)]
pub enum AnyDisk {
    Uring(UringDisk),
    Std(StdDisk),
}

#[derive(Debug)]
pub enum AnyFile {
    Uring(UringFile),
    Std(StdFile),
}

impl SegmentFile for AnyFile {
    async fn write_at(&self, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        match self {
            Self::Uring(f) => f.write_at(buf, offset).await,
            Self::Std(f) => f.write_at(buf, offset).await,
        }
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::Uring(f) => f.read_at(offset, len).await,
            Self::Std(f) => f.read_at(offset, len).await,
        }
    }

    async fn sync_data(&self) -> io::Result<()> {
        match self {
            Self::Uring(f) => f.sync_data().await,
            Self::Std(f) => f.sync_data().await,
        }
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            Self::Uring(f) => f.set_len(len).await,
            Self::Std(f) => f.set_len(len).await,
        }
    }

    async fn file_len(&self) -> io::Result<u64> {
        match self {
            Self::Uring(f) => f.file_len().await,
            Self::Std(f) => f.file_len().await,
        }
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        match self {
            Self::Uring(f) => f.allocate(len).await,
            Self::Std(f) => f.allocate(len).await,
        }
    }
}

impl Disk for AnyDisk {
    type File = AnyFile;

    async fn create(&self, name: &str) -> io::Result<AnyFile> {
        Ok(match self {
            Self::Uring(d) => AnyFile::Uring(d.create(name).await?),
            Self::Std(d) => AnyFile::Std(d.create(name).await?),
        })
    }

    async fn open(&self, name: &str) -> io::Result<AnyFile> {
        Ok(match self {
            Self::Uring(d) => AnyFile::Uring(d.open(name).await?),
            Self::Std(d) => AnyFile::Std(d.open(name).await?),
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        match self {
            Self::Uring(d) => d.remove(name).await,
            Self::Std(d) => d.remove(name).await,
        }
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        match self {
            Self::Uring(d) => d.list().await,
            Self::Std(d) => d.list().await,
        }
    }

    async fn sync_dir(&self) -> io::Result<()> {
        match self {
            Self::Uring(d) => d.sync_dir().await,
            Self::Std(d) => d.sync_dir().await,
        }
    }

    async fn available_bytes(&self) -> io::Result<Option<u64>> {
        match self {
            Self::Uring(d) => d.available_bytes().await,
            Self::Std(d) => d.available_bytes().await,
        }
    }
}
