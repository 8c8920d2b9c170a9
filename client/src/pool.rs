//! One S3 endpoint and its keep-alive HTTP/1.1 connections, plain or TLS (rustls with
//! the Mozilla root certificates and an optional extra CA file).

use crate::body::ReqBody;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Why an endpoint is not usable.
#[derive(Debug, thiserror::Error)]
#[error("S3 endpoint {endpoint:?}: {why}")]
pub struct EndpointError {
    pub endpoint: String,
    pub why: String,
}

/// `http://host[:port]` or `https://host[:port]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// `host[:port]`, as sent in `Host` and signed.
    pub host: String,
    /// `host:port` to connect to.
    pub addr: String,
}

impl Endpoint {
    pub fn parse(endpoint: &str) -> Result<Self, EndpointError> {
        let bad = |why: &str| EndpointError {
            endpoint: endpoint.to_owned(),
            why: why.to_owned(),
        };
        let (https, rest) = match endpoint.split_once("://") {
            Some(("http", r)) => (false, r),
            Some(("https", r)) => (true, r),
            _ => {
                return Err(bad(
                    "the S3 endpoint must be http:// or https://host[:port]",
                ));
            }
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad("the S3 endpoint is a scheme and host[:port] only"));
        }
        let addr = if port_of(host).is_some() {
            host.to_owned()
        } else {
            format!("{host}:{}", if https { 443 } else { 80 })
        };
        Ok(Self {
            https,
            host: host.to_owned(),
            addr,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// The port of `host:port`, if it names one.
fn port_of(host: &str) -> Option<u16> {
    host.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// TLS for an `https://` endpoint.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
}

/// Idle connections kept per endpoint by default.
pub const IDLE_CONNECTIONS: usize = 8;

/// Connections to one endpoint: idle ones are reused, new ones made when none is idle.
pub struct Pool {
    endpoint: Endpoint,
    tls: Option<Tls>,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
    idle_max: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `endpoint`; `ca_file` adds PEM certificates to the trusted roots (a
    /// private CA, a self-signed endpoint).
    pub fn new(
        endpoint: Endpoint,
        ca_file: Option<&Path>,
        idle_max: usize,
    ) -> Result<Self, EndpointError> {
        let tls = if endpoint.https {
            Some(tls(&endpoint.host, ca_file).map_err(|why| EndpointError {
                endpoint: format!("https://{}", endpoint.host),
                why,
            })?)
        } else {
            None
        };
        Ok(Self {
            endpoint,
            tls,
            idle: Mutex::new(Vec::new()),
            idle_max,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An idle connection, or a new one.
    pub async fn connection(&self) -> std::io::Result<SendRequest<ReqBody>> {
        loop {
            let c = self.idle.lock().ok().and_then(|mut v| v.pop());
            match c {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(&self.endpoint.addr).await?;
        stream.set_nodelay(true)?;
        match &self.tls {
            Some(tls) => {
                let stream = tls.connector.connect(tls.name.clone(), stream).await?;
                handshake(TokioIo::new(stream)).await
            }
            None => handshake(TokioIo::new(stream)).await,
        }
    }

    /// [`Pool::connection`], ready to send a request.
    pub async fn ready_connection(&self) -> std::io::Result<SendRequest<ReqBody>> {
        let mut c = self.connection().await?;
        c.ready().await.map_err(std::io::Error::other)?;
        Ok(c)
    }

    /// Keeps a connection for reuse; call only after its answer was read to the end
    /// (otherwise the next request would read the rest of this one's).
    pub fn give_back(&self, c: SendRequest<ReqBody>) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < self.idle_max
        {
            v.push(c);
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> std::io::Result<SendRequest<ReqBody>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// The TLS client for `host`: Mozilla's roots plus the certificates of `ca_file`.
fn tls(host: &str, ca_file: Option<&Path>) -> Result<Tls, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| format!("ca_file {}: {e}", path.display());
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
        for cert in certs {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name_part = match host.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => host,
    };
    let name =
        rustls_pki_types::ServerName::try_from(name_part.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("{name_part}: {e}"))?;
    Ok(Tls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    })
}
