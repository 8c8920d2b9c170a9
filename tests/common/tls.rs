//! HTTPS clients for the node's TLS listener: the test CA and server pairs of
//! `tests/fixtures/`, raw TLS connections, and aws-sdk-s3 over TLS.
//!
//! The SDK client goes through a small connector of our own (one TLS connection per
//! request, hyper's HTTP/1.1 client on tokio-rustls): the SDK's built-in TLS stack
//! would bring aws-lc and HTTP/2 into the build for one test.
#![allow(dead_code)]

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_sdk_s3::config::{Credentials, Region, RuntimeComponents};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Server pair `name` ("a" or "b") copied to `cert.pem` / `key.pem` in `dir`, the key
/// with mode 0600 (git keeps no modes; the node refuses a key others can read).
pub fn pair_in(dir: &Path, name: &str) -> frontend::TlsFiles {
    let files = frontend::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    install_pair(&files, name);
    files
}

/// Overwrites `files` with server pair `name`, as a certificate renewal would.
pub fn install_pair(files: &frontend::TlsFiles, name: &str) {
    std::fs::copy(fixture(&format!("tls-server-{name}.pem")), &files.cert).unwrap();
    std::fs::write(
        &files.key,
        std::fs::read(fixture(&format!("tls-server-{name}-key.pem"))).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The DER of server certificate `name`, to compare with what a handshake presented.
pub fn server_cert(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(fixture(&format!("tls-server-{name}.pem"))).unwrap()
}

/// A client config trusting only the test CA, offering ALPN `http/1.1`.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fixture("tls-ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr`, verified against the test CA for `127.0.0.1`.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(client_config())
        .connect(name, tcp)
        .await
}

/// The leaf certificate a TLS connection was given.
pub fn peer_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Sends `GET path` on an open connection (keep-alive) and reads the answer's status
/// and body.
pub async fn get(s: &mut TlsStream<TcpStream>, path: &str) -> std::io::Result<(u16, String)> {
    roundtrip(
        s,
        format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(),
    )
    .await
}

/// Sends a whole request on an open connection and reads the answer's status and body
/// (`Content-Length` framed).
pub async fn roundtrip(
    s: &mut TlsStream<TcpStream>,
    request: &[u8],
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    s.write_all(request).await?;
    let mut r = tokio::io::BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if r.read_line(&mut head).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    let status = crate::common::head_status(&head).unwrap_or(0);
    let len = crate::common::head_content_length(&head);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// aws-sdk-s3 for `https://addr`, trusting the test CA.
pub fn s3_client(addr: SocketAddr) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("https://{addr}"))
        .credentials_provider(Credentials::new(
            crate::common::ACCESS_KEY,
            crate::common::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .force_path_style(true)
        .http_client(SharedHttpClient::new(TlsClient))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[derive(Debug, Clone)]
struct TlsClient;

impl HttpClient for TlsClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(TlsConnector)
    }
}

#[derive(Debug, Clone)]
struct TlsConnector;

impl HttpConnector for TlsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(async move { send(request).await.map_err(ConnectorError::io) })
    }
}

/// One request on a fresh TLS connection.
async fn send(
    request: HttpRequest,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    let mut req = request.try_into_http1x()?;
    let authority = req.uri().authority().ok_or("no authority")?.clone();
    let addr: SocketAddr = authority.as_str().parse()?;
    // hyper's connection-level client sends the URI as given: use origin form, and
    // name the host as a pooled client would.
    let origin = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    *req.uri_mut() = origin;
    if !req.headers().contains_key(hyper::header::HOST) {
        req.headers_mut()
            .insert(hyper::header::HOST, authority.as_str().parse()?);
    }
    let tls = connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    Ok(HttpResponse::try_from(resp.map(SdkBody::from_body_1_x))?)
}
