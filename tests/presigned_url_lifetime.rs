//! A presigned URL lives at most a week on every route, the admin endpoint's too, and
//! `X-Amz-Expires` counts however its name is percent-encoded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{SECRET_KEY, client, start};
use raw::roundtrip;
use std::net::SocketAddr;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `method` of `target` (path and query) presigned for `expires`, optionally with the
/// `X-Amz-Expires` name percent-encoded (the signature stays valid: s3s decodes it).
fn presigned(
    addr: SocketAddr,
    method: &str,
    target: &str,
    expires: Duration,
    encode_name: bool,
) -> raw::Answer {
    let url = format!("http://{addr}{target}");
    let mut q = raw::presigned(method, &url, &[], expires, SECRET_KEY);
    if encode_name {
        q = q.replace("X-Amz-Expires=", "X-Amz-%45xpires=");
    }
    let sep = if target.contains('?') { '&' } else { '?' };
    let body = if method == "POST" {
        "not a CAR file"
    } else {
        ""
    };
    let req = format!(
        "{method} {target}{sep}{q} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    roundtrip(addr, req.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_live_at_most_a_week_on_every_route() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);
    s3.create_bucket().bucket("life").send().await.unwrap();
    s3.put_object()
        .bucket("life")
        .key("k")
        .body(b"kept".to_vec().into())
        .send()
        .await
        .unwrap();
    let (refused, week) = tokio::task::spawn_blocking(move || {
        let refused = [
            (
                "export",
                presigned(addr, "GET", "/life?ingot-export", 8 * DAY, false),
            ),
            (
                "verify",
                presigned(addr, "GET", "/life?ingot-verify", 8 * DAY, false),
            ),
            (
                "import",
                presigned(addr, "POST", "/imported?ingot-import", 8 * DAY, false),
            ),
            (
                "object, encoded",
                presigned(addr, "GET", "/life/k", 30 * DAY, true),
            ),
            (
                "export, encoded",
                presigned(addr, "GET", "/life?ingot-export", 30 * DAY, true),
            ),
        ];
        let week = presigned(addr, "GET", "/life?ingot-verify", 7 * DAY, false);
        (refused, week)
    })
    .await
    .unwrap();
    for (route, a) in refused {
        assert_eq!(a.status, 400, "{route}: {}", a.body);
        assert!(
            a.body
                .contains("<Code>AuthorizationQueryParametersError</Code>"),
            "{route}: {}",
            a.body
        );
    }
    // A week is served on the admin endpoint like anywhere.
    assert_eq!(week.status, 200, "{}", week.body);
    let buckets = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["life"], "the refused import created nothing");
    node.stop().await.unwrap();
}
