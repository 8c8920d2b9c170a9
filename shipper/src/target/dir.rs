//! `file:///path`: a directory (a local disk, a mounted volume). An upload is copied to a
//! temporary file while it is hashed, checked against the sealed SHA-256, fsynced, renamed
//! into place and the directory fsynced: after `put_file` returns, the object survives a
//! crash of this machine, and a crash before leaves at most a temporary file, never a
//! partial object under the final name.
//!
//! The directory may be shared (another node shipping to it, other users on a mounted
//! volume): the temporary file is created new and never through a symbolic link, and the
//! final rename never replaces an object, checked by the kernel in the same step, so no
//! race between a check and the rename can lose another node's object. Objects are
//! owner-only (0600).

use super::TargetError;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read and hashed per step of a copy.
const COPY_BYTES: usize = 1 << 20;
/// Prefix of temporary upload files (never a segment name).
const TEMP_PREFIX: &str = ".upload-";
/// Mode of a target directory this node creates, and of every object it stores.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

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
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(root)
        .map_err(|e| io("create target directory for", e))?;
    let temp = root.join(format!(
        "{TEMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    // Nothing to clean up when this fails: whatever is at `temp` is not ours.
    let mut out = create_temp(&temp).map_err(|e| io("create upload of", e))?;
    let result = (|| {
        let mut input = std::fs::File::open(src).map_err(|e| io("open local copy of", e))?;
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
        publish(&temp, &root.join(name), sha256)?;
        std::fs::File::open(root)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync target directory for", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates the temporary file of an upload: a new file (`O_EXCL`), never through a
/// symbolic link (`O_NOFOLLOW`; `O_EXCL` alone already refuses one), owner-only.
fn create_temp(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(FILE_MODE)
        .open(path)
}

/// Gives `temp` the name `dest` without ever replacing an object there, also when
/// another process creates `dest` at the same moment: the kernel checks and renames in
/// one step. An object already there with our digest is a repeated upload (success);
/// another one is an error, and it stays as it was.
fn publish(temp: &Path, dest: &Path, sha256: [u8; 32]) -> Result<(), TargetError> {
    let what = || dest.display().to_string();
    match rename_noreplace(temp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let have = file_sha256(dest).map_err(|e| TargetError::io(what(), e))?;
            if have != sha256 {
                return Err(TargetError::DigestMismatch {
                    name: what(),
                    want: engine::hex::encode(&sha256),
                    got: engine::hex::encode(&have),
                });
            }
            let _ = std::fs::remove_file(temp);
            Ok(())
        }
        Err(e) => Err(TargetError::io(format!("rename upload to {}", what()), e)),
    }
}

/// `renameat2(RENAME_NOREPLACE)`; on a filesystem without it (`EINVAL`, or `ENOSYS` on
/// an old kernel), [`link_then_unlink`]. `AlreadyExists` when `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            link_then_unlink(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// The portable no-replace rename: link(2) fails with `EEXIST` when `to` exists; the
/// temporary name is dropped only once the object has its final one.
fn link_then_unlink(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// The SHA-256 of a local file, hashed on a blocking thread (the shipping runtime has
/// one thread, which keeps serving meanwhile).
pub(crate) async fn file_sha256_async(path: &Path) -> Result<[u8; 32], TargetError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || file_sha256(&owned))
        .await
        .map_err(|e| TargetError::io("hash task", std::io::Error::other(e)))?
        .map_err(|e| TargetError::io(format!("read {}", path.display()), e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn digest(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn an_object_that_appears_before_the_rename_is_never_replaced() {
        // The state a race leaves: the name was free when the upload began, another
        // writer took it before the rename.
        let dir = tempfile::tempdir().unwrap();
        let (temp, dest) = (dir.path().join(".upload-x"), dir.path().join("seg.car"));
        std::fs::write(&temp, b"ours").unwrap();
        std::fs::write(&dest, b"theirs").unwrap();
        let e = publish(&temp, &dest, digest(b"ours")).unwrap_err();
        assert!(matches!(e, TargetError::DigestMismatch { .. }), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"theirs");
        // The same object already there: a repeated upload, and the temporary file goes.
        std::fs::write(&dest, b"ours").unwrap();
        publish(&temp, &dest, digest(b"ours")).unwrap();
        assert!(!temp.exists());
    }

    #[test]
    fn the_link_fallback_never_replaces_either() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, dest) = (dir.path().join(".upload-x"), dir.path().join("seg.car"));
        std::fs::write(&temp, b"ours").unwrap();
        std::fs::write(&dest, b"theirs").unwrap();
        let e = link_then_unlink(&temp, &dest).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"theirs");
        assert!(temp.exists());
        std::fs::remove_file(&dest).unwrap();
        link_then_unlink(&temp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"ours");
        assert!(!temp.exists());
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let temp = dir.path().join(".upload-x");
        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        assert!(create_temp(&temp).is_err());
        std::os::unix::fs::symlink(dir.path().join("absent"), dir.path().join(".upload-y"))
            .unwrap();
        assert!(create_temp(&dir.path().join(".upload-y")).is_err());
        assert!(
            !dir.path().join("absent").exists(),
            "a dangling link is not followed"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let f = dir.path().join(".upload-z");
        create_temp(&f).unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
