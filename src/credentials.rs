//! The root credentials: given (flag, environment, file) or generated once and kept in
//! the data directory with mode 0600. There is no built-in default secret.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Where the credentials came from, for the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Given,
    SecretFile(PathBuf),
    /// Generated now, or on an earlier first start, and stored here.
    Stored(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub source: Source,
    /// True when this start generated the pair.
    pub generated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0}")]
    Incomplete(&'static str),
    #[error("cannot store generated credentials in {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    SecretFile(#[from] crate::secret_file::SecretFileError),
    #[error("{path} is not a credentials file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("no randomness for a secret: {0}")]
    Random(String),
}

pub const FILE_NAME: &str = "credentials.toml";

fn read_secret_file(path: &Path) -> Result<String, CredentialsError> {
    Ok(crate::secret_file::read_private(path)?.trim().to_owned())
}

/// Resolves the credentials from the settings, or loads/generates the stored pair.
pub fn resolve(
    access_key: Option<String>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    data_dir: &Path,
) -> Result<Credentials, CredentialsError> {
    let (secret, source) = match (secret_key, secret_key_file) {
        (Some(s), _) => (Some(s), Source::Given),
        (None, Some(f)) => (Some(read_secret_file(&f)?), Source::SecretFile(f)),
        (None, None) => (None, Source::Given),
    };
    match (access_key, secret) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Credentials {
            access_key: a,
            secret_key: s,
            source,
            generated: false,
        }),
        (Some(_), Some(_)) => Err(CredentialsError::Incomplete(
            "access and secret keys must not be empty",
        )),
        (Some(_), None) => Err(CredentialsError::Incomplete(
            "an access key was given without a secret key (--secret-key or --secret-key-file)",
        )),
        (None, Some(_)) => Err(CredentialsError::Incomplete(
            "a secret key was given without an access key (--access-key)",
        )),
        (None, None) => stored(data_dir),
    }
}

/// The pair in `<data_dir>/credentials.toml`, generated on first start.
fn stored(data_dir: &Path) -> Result<Credentials, CredentialsError> {
    let path = data_dir.join(FILE_NAME);
    if path.exists() {
        let text = read_secret_file(&path)?;
        let (access_key, secret_key) =
            parse(&text).map_err(|reason| CredentialsError::Malformed {
                path: path.clone(),
                reason,
            })?;
        return Ok(Credentials {
            access_key,
            secret_key,
            source: Source::Stored(path),
            generated: false,
        });
    }
    let access_key = random_string(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")?;
    let secret_key = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )?;
    let write_err = |source| CredentialsError::Write {
        path: path.clone(),
        source,
    };
    engine::create_private_dir(data_dir).map_err(write_err)?;
    // create_new: two first starts racing cannot overwrite each other's pair.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    let text = format!(
        "# ingot-engine root credentials, generated on first start.\naccess_key = \"{access_key}\"\nsecret_key = \"{secret_key}\"\n"
    );
    f.write_all(text.as_bytes()).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    Ok(Credentials {
        access_key,
        secret_key,
        source: Source::Stored(path),
        generated: true,
    })
}

fn parse(text: &str) -> Result<(String, String), String> {
    #[derive(serde::Deserialize)]
    struct Pair {
        access_key: String,
        secret_key: String,
    }
    let p: Pair = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok((p.access_key, p.secret_key))
}

fn random_string(len: usize, alphabet: &[u8]) -> Result<String, CredentialsError> {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| CredentialsError::Random(e.to_string()))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn generated_pair_is_stored_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(None, None, None, dir.path()).unwrap();
        assert!(first.generated);
        assert_eq!(first.access_key.len(), 20);
        assert_eq!(first.secret_key.len(), 40);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = resolve(None, None, None, dir.path()).unwrap();
        assert!(!again.generated);
        assert_eq!(
            (again.access_key, again.secret_key),
            (first.access_key.clone(), first.secret_key.clone())
        );
        let other = tempfile::tempdir().unwrap();
        let third = resolve(None, None, None, other.path()).unwrap();
        assert_ne!(third.secret_key, first.secret_key, "secrets are random");
    }

    #[test]
    fn a_stored_pair_readable_by_the_group_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        resolve(None, None, None, &data).unwrap();
        let path = data.join(FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = resolve(None, None, None, &data).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700,
            "a data directory created for the pair is private"
        );
    }

    #[test]
    fn half_a_pair_and_exposed_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resolve(Some("a".into()), None, None, dir.path()).is_err());
        assert!(resolve(None, Some("s".into()), None, dir.path()).is_err());
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cr3t\n").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = resolve(Some("a".into()), None, Some(f.clone()), dir.path()).unwrap_err();
            assert!(
                matches!(e, CredentialsError::SecretFile(_)),
                "{mode:o}: {e}"
            );
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = resolve(Some("a".into()), None, Some(f), dir.path()).unwrap();
        assert_eq!(c.secret_key, "s3cr3t");
    }
}
