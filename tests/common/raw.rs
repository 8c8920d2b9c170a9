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
    signed_headers_at(SystemTime::now(), method, url, headers, body, secret)
}

/// [`signed_headers`] at a given signing time.
pub fn signed_headers_at(
    time: SystemTime,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: SignableBody<'_>,
    secret: &str,
) -> Vec<(String, String)> {
    let mut settings = base_settings();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let req = SignableRequest::new(method, url, headers.iter().copied(), body).expect("signable");
    let instructions = sign_with(req, time, settings, secret);
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

/// The query string of a GET presigned for `url`, valid for `expires` (no limit is
/// checked here: the SDK's presigning refuses more than a week, the server must too).
pub fn presigned_query(url: &str, expires: Duration, secret: &str) -> String {
    presigned("GET", url, &[], expires, secret)
}

/// The signing parameters of a `method` request presigned for `url` (whose own query
/// is signed but not repeated), signing `headers` besides `host`.
pub fn presigned(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    expires: Duration,
    secret: &str,
) -> String {
    client::Signer::new(crate::common::ACCESS_KEY, secret, "us-east-1")
        .presign(method, url, headers, expires, SystemTime::now())
        .expect("presign")
}

/// Signing settings as S3 wants them: paths encoded once and not normalised.
fn base_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

/// Signs `req` with the test root key at `time`, for us-east-1.
fn sign_with(
    req: SignableRequest<'_>,
    time: SystemTime,
    settings: SigningSettings,
    secret: &str,
) -> aws_sigv4::http_request::SigningInstructions {
    let identity =
        aws_credential_types::Credentials::new(crate::common::ACCESS_KEY, secret, None, None, "t")
            .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    sign(req, &params).expect("sign").into_parts().0
}

/// Percent-encodes a query value (unreserved characters stay as they are).
pub fn percent_encode(v: &str) -> String {
    client::encode_query_value(v)
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
    let status = crate::common::head_status(&head).unwrap_or(0);
    let len = crate::common::head_content_length(&head);
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(b))
}

/// An `aws-chunked` body with signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): each
/// chunk's signature chains from the previous one, starting at the seed signature of
/// the request head. `corrupt` flips one signature digit of the chunk with that index.
pub fn signed_chunks(
    time: SystemTime,
    seed: &str,
    secret: &str,
    data: &[u8],
    chunk: usize,
    corrupt: Option<usize>,
) -> Vec<u8> {
    use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
    let key = generate_signing_key(secret, time, "us-east-1", "s3");
    let stamp = amz_stamp(time);
    let mut prev = seed.to_owned();
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = data.chunks(chunk).chain(std::iter::once(&[][..])).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}/us-east-1/s3/aws4_request\n{prev}\n{}\n{}",
            stamp.0,
            stamp.1,
            sha256_hex(b""),
            sha256_hex(piece)
        );
        let mut sig = calculate_signature(key.as_ref(), to_sign.as_bytes());
        prev = sig.clone();
        if corrupt == Some(i) {
            let flipped = if sig.starts_with('0') { "1" } else { "0" };
            sig.replace_range(..1, flipped);
        }
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A time as HTTP's `Date` header writes it (`Fri, 04 Dec 2026 20:00:00 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (full, date) = amz_stamp(t);
    let weekday =
        ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][secs.div_euclid(86_400) as usize % 7];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months[date[4..6].parse::<usize>().unwrap() - 1];
    format!(
        "{weekday}, {} {month} {} {}:{}:{} GMT",
        &date[6..8],
        &date[..4],
        &full[9..11],
        &full[11..13],
        &full[13..15]
    )
}

/// (`YYYYMMDDTHHMMSSZ`, `YYYYMMDD`) of a time, as SigV4 writes them.
pub fn amz_stamp(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let full = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (full, date)
}
