//! Files that hold secrets (the root credentials, `--secret-key-file`, the shipping
//! credentials, a config file with keys in it) must be readable by their owner alone:
//! one rule, `mode & 0o077 == 0`, checked on the descriptor the secret is read from.
//!
//! Any group or other bit refuses the file, not only the read bits: a file others may
//! write is a secret others may replace. The error names the file, its mode and the fix.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds a secret but other users have access to it (mode {mode:04o}); \
         run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// The text of `path` and its permission bits, from one open descriptor (so the mode
/// checked is that of the bytes read, even if the path is swapped meanwhile).
pub fn read_with_mode(path: &Path) -> Result<(String, u32), SecretFileError> {
    let read = |source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read)?;
    Ok((text, mode))
}

/// Refuses `mode` if group or others have any access.
pub fn ensure_private(path: &Path, mode: u32) -> Result<(), SecretFileError> {
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// The text of a file that holds a secret, refused unless it is private.
pub fn read_private(path: &Path) -> Result<String, SecretFileError> {
    let (text, mode) = read_with_mode(path)?;
    ensure_private(path, mode)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    #[test]
    fn only_owner_only_modes_pass() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cr3t").unwrap();
        for mode in [0o640, 0o604, 0o620, 0o602, 0o610, 0o644, 0o666] {
            std::fs::set_permissions(&f, Permissions::from_mode(mode)).unwrap();
            let e = read_private(&f).unwrap_err();
            assert!(matches!(e, SecretFileError::Exposed { mode: m, .. } if m == mode));
            let msg = e.to_string();
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains(&format!("chmod 600 {}", f.display())), "{msg}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&f, Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private(&f).unwrap(), "s3cr3t");
        }
    }
}
