//! The S3 target's reads against a misbehaving server: a success must be a 206 with
//! exactly the range asked for, and no answer body is read past what was asked for (the
//! range; a small cap for error documents). A server that ignores `Range`, answers
//! another range, or sends more bytes than asked is refused, and its bytes are neither
//! returned nor buffered.

use client::{ClientError, S3Client, S3Settings};
use shipper::target::S3Target;
use shipper::{Target, TargetError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOCATION: &str = "s3://cold/node/data-0000-00000000000000000001.car";
/// What a flooding server offers; far more than any read asks for.
const FLOOD_BYTES: u64 = 96 << 20;
/// What a refused flood may have pushed into the socket buffers at most.
const FLOOD_READ_MAX: u64 = 24 << 20;

fn object() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// The bytes after a fake server's answer head.
#[derive(Clone, Copy)]
enum Tail {
    /// The given bytes.
    Object { offset: usize, len: usize },
    /// `FLOOD_BYTES` of filler, plain or in chunked encoding.
    Flood { chunked: bool },
}

/// A server answering every request with `head` and `tail`; counts the body bytes it
/// managed to write.
async fn fake(head: String, tail: Tail) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (head, count) = (head.clone(), count.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).await.unwrap_or(0) == 1 {
                    req.push(b[0]);
                }
                let _ = s.write_all(head.as_bytes()).await;
                write_tail(&mut s, tail, &count).await;
            });
        }
    });
    (addr, written)
}

async fn write_tail(s: &mut tokio::net::TcpStream, tail: Tail, count: &AtomicU64) {
    match tail {
        Tail::Object { offset, len } => {
            let _ = s.write_all(&object()[offset..offset + len]).await;
        }
        Tail::Flood { chunked } => {
            let piece = vec![b'x'; 64 << 10];
            let mut frame = Vec::new();
            if chunked {
                frame.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            }
            frame.extend_from_slice(&piece);
            if chunked {
                frame.extend_from_slice(b"\r\n");
            }
            while count.load(Relaxed) < FLOOD_BYTES {
                // A reader that stopped reading but keeps the connection stalls us.
                let w = tokio::time::timeout(Duration::from_secs(2), s.write_all(&frame));
                match w.await {
                    Ok(Ok(())) => count.fetch_add(piece.len() as u64, Relaxed),
                    _ => return,
                };
            }
        }
    }
}

fn target(addr: SocketAddr) -> Target {
    let client = S3Client::new(S3Settings {
        endpoint: format!("http://{addr}"),
        ca_file: None,
        region: "us-east-1".into(),
        access_key: "AK".into(),
        secret_key: "SK".into(),
        timeout: Some(Duration::from_secs(20)),
    })
    .unwrap();
    Target::S3(S3Target::new(Arc::new(client), "cold", "node"))
}

#[tokio::test]
async fn the_exact_partial_answer_is_accepted() {
    let head = "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 100-149/1000\r\n\
                content-length: 50\r\n\r\n";
    let (addr, _) = fake(
        head.into(),
        Tail::Object {
            offset: 100,
            len: 50,
        },
    )
    .await;
    let got = target(addr).read_range(LOCATION, 100, 50).await.unwrap();
    assert_eq!(&got[..], &object()[100..150]);
}

#[tokio::test]
async fn a_whole_object_answer_to_a_ranged_read_is_refused() {
    let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
    let (addr, _) = fake(
        head.into(),
        Tail::Object {
            offset: 0,
            len: 1000,
        },
    )
    .await;
    let e = target(addr)
        .read_range(LOCATION, 100, 50)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            TargetError::S3(ClientError::RangeNotHonoured { status: 200, .. })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_partial_answer_for_another_range_is_refused() {
    let head = "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-49/1000\r\n\
                content-length: 50\r\n\r\n";
    let (addr, _) = fake(head.into(), Tail::Object { offset: 0, len: 50 }).await;
    let e = target(addr)
        .read_range(LOCATION, 100, 50)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            TargetError::S3(ClientError::RangeNotHonoured { status: 206, .. })
        ),
        "{e}"
    );
}

/// Each flood is refused with `AnswerTooLong` long before the server is done.
async fn flood_is_cut_off(head: &str, chunked: bool) {
    let (addr, written) = fake(head.into(), Tail::Flood { chunked }).await;
    let e = target(addr)
        .read_range(LOCATION, 100, 50)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TargetError::S3(ClientError::AnswerTooLong { .. })),
        "{e}"
    );
    // A client that buffered the answer would have taken all of it by now.
    let n = written.load(Relaxed);
    assert!(n < FLOOD_READ_MAX, "{n} bytes of the flood were taken");
}

#[tokio::test]
async fn a_partial_answer_longer_than_asked_is_refused_unread() {
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 100-149/1000\r\n\
         content-length: {FLOOD_BYTES}\r\n\r\n"
    );
    flood_is_cut_off(&head, false).await;
}

#[tokio::test]
async fn an_endless_partial_answer_is_cut_off() {
    let head = "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 100-149/1000\r\n\
                transfer-encoding: chunked\r\n\r\n";
    flood_is_cut_off(head, true).await;
}

#[tokio::test]
async fn an_endless_error_document_is_cut_off() {
    let head = "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n";
    flood_is_cut_off(head, true).await;
}
