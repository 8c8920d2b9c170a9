//! Signature Version 2 is refused in both its forms (the `Authorization: AWS …` header
//! and the `AWSAccessKeyId`/`Signature` query), however correctly signed and however
//! fresh, with AWS's answer where only SigV4 is accepted; nothing is written.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{ACCESS_KEY, SECRET_KEY, client, start};
use raw::{percent_encode, roundtrip};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A SigV2 signature: base64(HMAC-SHA1(secret, string to sign)).
fn sigv2(string_to_sign: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64_simd::STANDARD.encode_to_string(mac.finalize().into_bytes())
}

/// A PUT of `hello` to `/sigv2/{key}` signed with SigV2 in the header, dated `time`.
fn header_signed_put(addr: std::net::SocketAddr, key: &str, time: SystemTime) -> raw::Answer {
    let date = raw::http_date(time);
    let sig = sigv2(&format!("PUT\n\n\n{date}\n/sigv2/{key}"));
    let req = format!(
        "PUT /sigv2/{key} HTTP/1.1\r\nhost: {addr}\r\ndate: {date}\r\n\
         authorization: AWS {ACCESS_KEY}:{sig}\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
    );
    roundtrip(addr, req.as_bytes())
}

/// The same PUT presigned with SigV2 query parameters, valid for five minutes.
fn query_signed_put(addr: std::net::SocketAddr, key: &str) -> raw::Answer {
    let expires = (SystemTime::now() + Duration::from_secs(300))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = percent_encode(&sigv2(&format!("PUT\n\n\n{expires}\n/sigv2/{key}")));
    let req = format!(
        "PUT /sigv2/{key}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={sig} HTTP/1.1\r\n\
         host: {addr}\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
    );
    roundtrip(addr, req.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_version_2_is_refused_and_writes_nothing() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("sigv2").send().await.unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
        [
            (
                "fresh header",
                header_signed_put(addr, "fresh", SystemTime::now()),
            ),
            ("day-old header", header_signed_put(addr, "old", day_ago)),
            ("query", query_signed_put(addr, "query")),
        ]
    })
    .await
    .unwrap();
    for (form, a) in answers {
        assert_eq!(a.status, 400, "{form}: {}", a.body);
        assert!(
            a.body.contains("<Code>InvalidRequest</Code>"),
            "{form}: {}",
            a.body
        );
        assert!(
            a.body.contains(
                "The authorization mechanism you have provided is not supported. \
                 Please use AWS4-HMAC-SHA256."
            ),
            "{form}: {}",
            a.body
        );
    }
    let listed = s3.list_objects_v2().bucket("sigv2").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "{listed:?}");
    node.stop().await.unwrap();
}
