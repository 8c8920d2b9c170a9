//! A real ingot-engine node on an ephemeral loopback port (real shards, real files in a
//! temp dir) and aws-sdk-s3 clients for it.
#![allow(dead_code)]

pub mod binary;
pub mod ship;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use ingot_engine::config::{FileConfig, ServeArgs, Settings};
use ingot_engine::credentials::{Credentials as NodeCredentials, Source};
use ingot_engine::node::Node;
use std::net::SocketAddr;
use std::path::Path;

pub const ACCESS_KEY: &str = "INGOTTESTACCESSKEY01";
pub const SECRET_KEY: &str = "ingot-test-secret-key-0123456789abcdefgh";

pub fn settings(dir: &Path, listen: SocketAddr) -> Settings {
    let args = ServeArgs {
        data_dir: Some(dir.to_owned()),
        listen: Some(listen),
        cores: Some(2),
        frontend_threads: Some(2),
        ..ServeArgs::default()
    };
    let mut s = Settings::merge(args, FileConfig::default()).expect("settings");
    // Tests share two cores with each other: do not pin.
    s.pin_cores = false;
    s.header_read_timeout = std::time::Duration::from_secs(2);
    s
}

pub fn creds() -> NodeCredentials {
    NodeCredentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
        source: Source::Given,
        generated: false,
    }
}

/// A node serving from `dir`, ready (recovered).
pub async fn start_in(dir: &Path, listen: SocketAddr) -> Node {
    start_with(settings(dir, listen)).await
}

pub async fn start_with(s: Settings) -> Node {
    let mut node = Node::start(&s, &creds()).await.expect("node starts");
    node.ready().await.expect("engine opens");
    node
}

/// A node on a fresh temp dir; keep the `TempDir` alive as long as the node.
pub async fn start() -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_in(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    (node, dir)
}

pub fn client(addr: SocketAddr) -> Client {
    client_with(addr, ACCESS_KEY, SECRET_KEY)
}

pub fn client_with(addr: SocketAddr, access: &str, secret: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

/// Deterministic pseudo-random bytes.
pub fn body(n: usize, seed: u64) -> Vec<u8> {
    engine::testing::pseudo_random_bytes(n, seed)
}

pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The S3 error code of a failed SDK call.
pub fn code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("").to_owned(),
        aws_sdk_s3::error::SdkError::DispatchFailure(_) => "dispatch failure".to_owned(),
        aws_sdk_s3::error::SdkError::ResponseError(_) => "unparsable response".to_owned(),
        _ => "not a service error".to_owned(),
    }
}

/// The HTTP status of a failed SDK call.
pub fn status<E, R: HasStatus>(e: &aws_sdk_s3::error::SdkError<E, R>) -> u16 {
    e.raw_response().map_or(0, HasStatus::status)
}

pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

pub async fn read_all(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The keys in `bucket` (one page of `ListObjectsV2`).
pub async fn keys(s3: &Client, bucket: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The status code of an HTTP/1.1 response head (`HTTP/1.1 200 OK`...).
pub fn head_status(head: &str) -> Option<u16> {
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The `Content-Length` of an HTTP/1.1 response head (0 when it has none).
pub fn head_content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0)
}
