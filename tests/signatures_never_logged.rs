//! The binary never logs the signature it computes for a request, even with s3s's
//! debug logging asked for: on a mismatch s3s logs it at debug, and it is a valid
//! signature for whatever the client sent, so a log reader could sign with it.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sigv4::http_request::SignableBody;
use common::binary::{Running, free_port, serve};

#[test]
fn a_bad_signature_does_not_log_the_right_one_even_at_s3s_debug() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = Running::spawn(
        serve(dir.path(), port, 1)
            .args(["--log", "info,s3s=debug"])
            .env("INGOT_ACCESS_KEY", common::ACCESS_KEY)
            .env("INGOT_SECRET_KEY", common::SECRET_KEY)
            .env_remove("INGOT_LOG"),
    );
    node.wait_ready(port, "node");

    // Signed right, then one digit of the signature changed: the node computes the
    // right one and finds it does not match.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let host = addr.to_string();
    let mut hs = raw::signed_headers(
        "GET",
        &format!("http://{host}/logged"),
        &[("host", host.as_str())],
        SignableBody::Bytes(b""),
        common::SECRET_KEY,
    );
    let auth = hs
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .unwrap();
    let right = auth.1.rsplit("Signature=").next().unwrap().to_owned();
    let wrong = format!(
        "{}{}",
        if right.starts_with('0') { "1" } else { "0" },
        &right[1..]
    );
    auth.1 = auth.1.replace(&right, &wrong);
    hs.push(("connection".into(), "close".into()));
    let answer = raw::roundtrip(addr, &raw::head("GET", "/logged", &hs));
    assert_eq!(answer.status, 403, "{}", answer.body);

    node.signal("TERM");
    node.wait();
    let log = node.log();
    // s3s's debug lines are on (the filter was honoured)...
    assert!(
        log.contains("s3s::ops: parsing path-style request"),
        "{log}"
    );
    // ...but not those of its signature check.
    assert!(
        !log.contains(&right),
        "the computed signature was logged:\n{log}"
    );
}
