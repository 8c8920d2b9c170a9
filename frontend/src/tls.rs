//! HTTPS on the S3 listener: a PEM certificate chain and private key, loaded at start
//! and re-read on demand (SIGHUP) without touching open connections.
//!
//! The rustls server config is built once; its certificate comes from a resolver that
//! hands out whatever [`CertStore`] holds when a handshake starts. A reload swaps that
//! one `Arc`: handshakes already done keep their keys, new ones get the new pair, and
//! a reload that fails leaves the old pair in place.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The certificate chain (leaf first) and private key files, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} is not a PEM private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "{path} is readable by other users (mode {mode:o}); a private key must not be: run `chmod 600 {path}`"
    )]
    ExposedKey { path: PathBuf, mode: u32 },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Reads and checks both files: the chain parses, the key parses, is not readable by
/// group or others, and matches the leaf certificate.
fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read_private(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(certified))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A private key readable by anyone but its owner is refused, as the node's other
/// secret files are: the check is on the file as opened, so a swap between check and
/// read cannot slip past it.
fn read_private(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mode = f.metadata().map_err(err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::ExposedKey {
            path: path.to_owned(),
            mode,
        });
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(err)?;
    Ok(buf)
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate new handshakes get; replaced whole by a reload.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Re-reads both files. On failure the certificate in use stays and the error says
    /// which file is wrong.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files)?;
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let c = match self.current.read() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        Some(c.clone())
    }
}

/// The listener's TLS side: an acceptor and the store its certificates come from.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    store: Arc<CertStore>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.store.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the pair and builds the server config: TLS 1.2 and 1.3 (ring), no client
    /// certificates, ALPN `http/1.1` (the listener speaks nothing else).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let current = load(&files)?;
        let store = Arc::new(CertStore {
            files,
            current: RwLock::new(current),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            store,
        })
    }

    /// The store to reload (SIGHUP).
    pub fn store(&self) -> Arc<CertStore> {
        self.store.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    /// The fixture pair copied into `dir`, the key with `key_mode`.
    fn pair_in(dir: &Path, key_mode: u32) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::copy(fixture("tls-server-a.pem"), &files.cert).unwrap();
        std::fs::copy(fixture("tls-server-a-key.pem"), &files.key).unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(key_mode)).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair_in(dir.path(), 0o600);
        let tls = Tls::load(files.clone()).expect("fixture pair loads");

        std::fs::write(&files.cert, "not pem").unwrap();
        let e = tls.store().reload().unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("cert.pem"), "{e}");

        let files = pair_in(dir.path(), 0o600);
        std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
        let e = Tls::load(files).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");

        let files = pair_in(dir.path(), 0o600);
        // `fs::copy` carries the fixture's mode over (0644 in a checkout): set it again.
        std::fs::copy(fixture("tls-server-b-key.pem"), &files.key).unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Tls::load(files).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");

        let mut files = pair_in(dir.path(), 0o600);
        files.key = dir.path().join("missing.pem");
        let e = Tls::load(files).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644] {
            let e = Tls::load(pair_in(dir.path(), mode)).unwrap_err();
            assert!(matches!(e, TlsError::ExposedKey { .. }), "{mode:o}: {e}");
        }
        Tls::load(pair_in(dir.path(), 0o400)).expect("owner-only key loads");
    }
}
