//! The data directory: its layout, its modes, and the directory fsyncs that make a
//! first start durable.
//!
//! Everything in it is the node's alone: object bodies, trees, access keys in the
//! catalog. Directories are created 0700 and files 0600, set at creation (not by a
//! later chmod, so there is no moment when another user could open them), whatever the
//! process umask. Data directories written by earlier versions, which created them
//! with the umask's modes (usually 0755 and 0644), are tightened at start with one
//! warning: the node owns these files and no other user needs them, and refusing to
//! start would only push operators to a blanket chmod.

use std::fs::{DirBuilder, File, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Mode of the data directory and the shard directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the node writes there (segments, indexes, catalog, lock).
pub const FILE_MODE: u32 = 0o600;
/// The embedded catalog's file.
pub const CATALOG_FILE: &str = "catalog.redb";
/// The lock file held while a process uses the directory.
pub const LOCK_FILE: &str = "LOCK";

/// Shard `id`'s directory (its plane logs' segments and indexes).
pub fn shard_dir(data_dir: &Path, id: u32) -> PathBuf {
    data_dir.join(format!("shard-{id:04}"))
}

/// Creates `dir` (and missing parents) with mode 0700. When it did not exist, its
/// parent is fsynced, so the new entry survives a power loss.
pub fn create_private(dir: &Path) -> io::Result<()> {
    if !make_dir(dir)? {
        return Ok(());
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Creates `dir` (and missing parents) with mode 0700; false when it existed.
fn make_dir(dir: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    Ok(true)
}

/// fsync of a directory: entries created or removed in it before are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the shard directories that are missing, then fsyncs the data directory:
/// after this, the shard directories and the catalog file created before it survive a
/// power loss. Runs before any shard writes, so a segment fsynced into its shard
/// directory never sits in a directory whose own entry could vanish.
pub fn prepare_shards(data_dir: &Path, ids: impl IntoIterator<Item = u32>) -> io::Result<()> {
    for id in ids {
        make_dir(&shard_dir(data_dir, id))?;
    }
    sync_dir(data_dir)
}

/// Sets owner-only modes on the data directory, the catalog and lock files, the shard
/// directories and the files in them, where group or others had any access. Returns
/// how many entries changed. Entries of other names are left alone.
pub fn tighten(data_dir: &Path) -> io::Result<u64> {
    let mut changed = u64::from(restrict(data_dir, DIR_MODE)?);
    for name in [CATALOG_FILE, LOCK_FILE] {
        let path = data_dir.join(name);
        if path.is_file() {
            changed += u64::from(restrict(&path, FILE_MODE)?);
        }
    }
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let is_shard = entry.file_name().to_string_lossy().starts_with("shard-");
        if !is_shard || !entry.file_type()?.is_dir() {
            continue;
        }
        changed += u64::from(restrict(&entry.path(), DIR_MODE)?);
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            if file.file_type()?.is_file() {
                changed += u64::from(restrict(&file.path(), FILE_MODE)?);
            }
        }
    }
    Ok(changed)
}

/// Clears the group and other bits of `path` (to `mode`) when any is set.
fn restrict(path: &Path, mode: u32) -> io::Result<bool> {
    let now = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if now & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn older_modes_are_tightened_and_other_names_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let shard = shard_dir(&data, 0);
        std::fs::create_dir(&shard).unwrap();
        let seg = shard.join("data-0000-00000000000000000001.car");
        let other = data.join("notes.txt");
        for f in [&seg, &data.join(CATALOG_FILE), &other] {
            std::fs::write(f, b"x").unwrap();
            std::fs::set_permissions(f, Permissions::from_mode(0o644)).unwrap();
        }
        for d in [&data, &shard] {
            std::fs::set_permissions(d, Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(tighten(&data).unwrap(), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&shard), 0o700);
        assert_eq!(mode(&seg), 0o600);
        assert_eq!(mode(&data.join(CATALOG_FILE)), 0o600);
        assert_eq!(mode(&other), 0o644);
        assert_eq!(tighten(&data).unwrap(), 0, "nothing left to change");
    }

    #[test]
    fn created_directories_are_private_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b");
        create_private(&data).unwrap();
        prepare_shards(&data, [0, 3]).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&shard_dir(&data, 3)), 0o700);
    }
}
