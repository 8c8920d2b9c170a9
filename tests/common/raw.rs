//! Hand-made HTTP/1.1 requests, signed with aws-sigv4, for what an SDK will not send:
//! malformed XML, short bodies, slow or huge headers, `Expect: 100-continue`.
#![allow(dead_code)]

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

/// Signature headers for a request to `url` whose body hashes as `body` claims.
pub fn signed_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: SignableBody<'_>,
    secret: &str,
) -> Vec<(String, String)> {
    let identity =
        aws_credential_types::Credentials::new(crate::common::ACCESS_KEY, secret, None, None, "t")
            .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let req = SignableRequest::new(method, url, headers.iter().copied(), body).expect("signable");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    out
}

/// The head of a request: request line and headers, ending with the blank line.
pub fn head(method: &str, path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one response (head, then `content-length` bytes of body).
pub fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends a whole request and reads the answer.
pub fn roundtrip(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    read_answer(&mut s)
}
