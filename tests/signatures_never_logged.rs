//! The binary never logs the signature it computes for a request, even with s3s's
//! debug logging asked for: on a mismatch s3s logs it at debug, and it is a valid
//! signature for whatever the client sent, so a log reader could sign with it.

mod common;
#[path = "common/raw.rs"]
mod raw;

use aws_sigv4::http_request::SignableBody;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

#[test]
fn a_bad_signature_does_not_log_the_right_one_even_at_s3s_debug() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cores",
            "1",
            "--log",
            "info,s3s=debug",
        ])
        .env("INGOT_ACCESS_KEY", common::ACCESS_KEY)
        .env("INGOT_SECRET_KEY", common::SECRET_KEY)
        .env_remove("INGOT_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(port) {
        assert!(Instant::now() < deadline, "node never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }

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

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    let log = lines.join().unwrap().join("\n");
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
