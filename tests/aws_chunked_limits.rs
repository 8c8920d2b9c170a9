//! An aws-chunked body is refused at a chunk line declaring more than what remains of
//! `x-amz-decoded-content-length`, or a signed chunk over 8 MiB, before the client
//! sends the chunk's data (s3s would otherwise wait for and buffer the whole chunk
//! before checking its signature); nothing is written. Unsigned chunks as large as a
//! part, as the AWS CRT sends them, still pass.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sigv4::http_request::SignableBody;
use common::{SECRET_KEY, client, read_all, start};
use raw::{head, roundtrip};
use std::io::Write;
use std::net::SocketAddr;

/// A header-signed aws-chunked PUT of `decoded` bytes whose first chunk line declares
/// `chunk` bytes; only the head and that line are sent, then the answer is read.
fn declare_chunk(addr: SocketAddr, key: &str, decoded: u64, chunk: u64) -> raw::Answer {
    let host = addr.to_string();
    let (decoded_s, body_len) = (decoded.to_string(), (decoded + 4096).to_string());
    let hs = raw::signed_headers(
        "PUT",
        &format!("http://{host}/limits/{key}"),
        &[
            ("host", host.as_str()),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded_s.as_str()),
            ("content-length", body_len.as_str()),
        ],
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
        SECRET_KEY,
    );
    let mut req = head("PUT", &format!("/limits/{key}"), &hs);
    req.extend_from_slice(format!("{chunk:x};chunk-signature={}\r\n", "0".repeat(64)).as_bytes());
    let mut s = raw::connect(addr);
    s.write_all(&req).unwrap();
    raw::read_answer(&mut s)
}

/// A PUT of `data` as one unsigned chunk with a CRC32 trailer, as aws-c-s3 sends a part.
fn one_unsigned_chunk(addr: SocketAddr, key: &str, data: &[u8]) -> raw::Answer {
    let host = addr.to_string();
    let crc = base64_simd::STANDARD.encode_to_string(crc32fast::hash(data).to_be_bytes());
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    let (decoded, body_len) = (data.len().to_string(), body.len().to_string());
    let mut hs = raw::signed_headers(
        "PUT",
        &format!("http://{host}/limits/{key}"),
        &[
            ("host", host.as_str()),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("content-length", body_len.as_str()),
        ],
        SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
        SECRET_KEY,
    );
    hs.push(("connection".into(), "close".into()));
    let mut req = head("PUT", &format!("/limits/{key}"), &hs);
    req.extend_from_slice(&body);
    roundtrip(addr, &req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunks_are_refused_before_their_data() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("limits").send().await.unwrap();
    let part = common::body(9 << 20, 5);
    let sent = part.clone();
    let (over_cap, over_length, crt) = tokio::task::spawn_blocking(move || {
        (
            declare_chunk(addr, "huge", 64 << 20, 64 << 20),
            declare_chunk(addr, "long", 10, 1 << 20),
            one_unsigned_chunk(addr, "crt", &sent),
        )
    })
    .await
    .unwrap();
    for (case, a) in [
        ("over the cap", &over_cap),
        ("over the length", &over_length),
    ] {
        assert_eq!(a.status, 400, "{case}: {}", a.body);
        assert!(
            a.body.contains("<Code>InvalidChunkSizeError</Code>"),
            "{case}: {}",
            a.body
        );
    }
    assert_eq!(crt.status, 200, "{}", crt.body);
    let got = read_all(
        s3.get_object()
            .bucket("limits")
            .key("crt")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(got == part, "the unsigned 9 MiB chunk reads back whole");
    let listed = s3.list_objects_v2().bucket("limits").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["crt"]);
    node.stop().await.unwrap();
}
