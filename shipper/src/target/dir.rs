//! `file:///path`: a directory (a local disk, a mounted volume). An upload is copied to a
//! temporary file while it is hashed, checked against the sealed SHA-256, fsynced, renamed
//! into place and the directory fsynced: after `put_file` returns, the object survives a
//! crash of this machine, and a crash before leaves at most a temporary file, never a
//! partial object under the final name.

use super::TargetError;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read and hashed per step of a copy.
const COPY_BYTES: usize = 1 << 20;
/// Prefix of temporary upload files (never a segment name).
const TEMP_PREFIX: &str = ".upload-";

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A directory target.
#[derive(Debug, Clone)]
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn location(&self, name: &str) -> String {
        format!("file://{}", self.root.join(name).display())
    }

    /// The file a location names, if it is one of this target's objects.
    fn path_of(&self, location: &str) -> Result<PathBuf, TargetError> {
        let foreign = || TargetError::ForeignLocation(location.to_owned());
        let path = Path::new(location.strip_prefix("file://").ok_or_else(foreign)?);
        let name = path
            .strip_prefix(&self.root)
            .map_err(|_| foreign())?
            .to_str()
            .ok_or_else(foreign)?;
        check_name(name).map_err(|_| foreign())?;
        Ok(path.to_owned())
    }

    pub async fn put_file(
        &self,
        name: &str,
        src: &Path,
        sha256: [u8; 32],
    ) -> Result<String, TargetError> {
        check_name(name)?;
        let (root, src, name_owned) = (self.root.clone(), src.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || copy_checked(&root, &src, &name_owned, sha256))
            .await
            .map_err(|e| TargetError::io("upload task", std::io::Error::other(e)))??;
        Ok(self.location(name))
    }

    pub async fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, TargetError> {
        let path = self.path_of(location)?;
        let location = location.to_owned();
        tokio::task::spawn_blocking(move || {
            let file =
                std::fs::File::open(&path).map_err(|e| TargetError::io(location.clone(), e))?;
            let size = file
                .metadata()
                .map_err(|e| TargetError::io(location.clone(), e))?
                .len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(TargetError::ShortRange {
                    location,
                    offset,
                    len,
                    size,
                });
            }
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| TargetError::io(location, e))?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| TargetError::io("read task", std::io::Error::other(e)))?
    }
}

/// Object names are plain file names: no separators, no dot-files (temporary uploads
/// start with a dot), nothing that walks out of the directory.
pub(crate) fn check_name(name: &str) -> Result<(), TargetError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(TargetError::BadName(name.to_owned()))
    }
}

/// Copies `src` into `root/name` through a temporary file, checking the digest first.
fn copy_checked(root: &Path, src: &Path, name: &str, sha256: [u8; 32]) -> Result<(), TargetError> {
    let io = |what: &str, e| TargetError::io(format!("{what} {name}"), e);
    std::fs::create_dir_all(root).map_err(|e| io("create target directory for", e))?;
    let temp = root.join(format!(
        "{TEMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut input = std::fs::File::open(src).map_err(|e| io("open local copy of", e))?;
        let mut out = std::fs::File::create(&temp).map_err(|e| io("create upload of", e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; COPY_BYTES];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| io("read local copy of", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(|e| io("write upload of", e))?;
        }
        let got: [u8; 32] = hasher.finalize().into();
        if got != sha256 {
            return Err(TargetError::DigestMismatch {
                name: name.to_owned(),
                want: engine::hex::encode(&sha256),
                got: engine::hex::encode(&got),
            });
        }
        out.sync_all().map_err(|e| io("fsync upload of", e))?;
        let dest = root.join(name);
        if dest.exists() {
            // A repeated upload (after a crash) is a success; another object under the
            // same name (another node shipping here) is never replaced.
            let have = file_sha256(&dest).map_err(|e| io("read existing", e))?;
            if have != sha256 {
                return Err(TargetError::DigestMismatch {
                    name: dest.display().to_string(),
                    want: engine::hex::encode(&sha256),
                    got: engine::hex::encode(&have),
                });
            }
            let _ = std::fs::remove_file(&temp);
            return Ok(());
        }
        std::fs::rename(&temp, &dest).map_err(|e| io("rename upload of", e))?;
        std::fs::File::open(root)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync target directory for", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BYTES];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}
