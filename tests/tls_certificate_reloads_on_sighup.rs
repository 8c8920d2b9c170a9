//! The real binary serving HTTPS: SIGHUP re-reads the certificate and key; new
//! connections get the new certificate while a connection opened before keeps working;
//! a broken pair is refused with an error in the log and the current one stays.

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::binary::{Running, free_port, serve};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Waits (bounded) until a new connection is given server certificate `name`.
async fn wait_for_cert(addr: SocketAddr, name: &str) {
    let want = tls::server_cert(name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = tls::connect(addr).await
            && tls::peer_cert(&c) == want
        {
            return;
        }
        assert!(Instant::now() < deadline, "never served certificate {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_gives_new_connections_the_new_certificate_and_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let files = tls::pair_in(certs.path(), "a");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut node = Running::spawn(
        serve(dir.path(), port, 1)
            .args(["--tls-cert", files.cert.to_str().unwrap()])
            .args(["--tls-key", files.key.to_str().unwrap()])
            .env_remove("INGOT_ACCESS_KEY")
            .env_remove("INGOT_SECRET_KEY"),
    );
    let banner = node.wait_for_line("S3 endpoint:");
    assert!(banner.contains(&format!("https://{addr}")), "{banner}");
    node.wait_for_line("storage recovered; ready");

    // A connection opened on the first certificate...
    let mut old = tls::connect(addr).await.unwrap();
    assert_eq!(tls::peer_cert(&old), tls::server_cert("a"));
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    // ...the files renewed, SIGHUP: new connections get the new one,
    tls::install_pair(&files, "b");
    node.signal("HUP");
    node.wait_for_line("TLS certificate reloaded");
    wait_for_cert(addr, "b").await;
    // and the old connection is still served.
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    // A broken pair is refused: logged, and the current certificate stays.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ntruncated\n").unwrap();
    node.signal("HUP");
    let refused = node.wait_for_line("not reloaded");
    assert!(refused.contains("ERROR"), "{refused}");
    assert!(refused.contains(files.cert.to_str().unwrap()), "{refused}");
    let mut c = tls::connect(addr).await.unwrap();
    assert_eq!(tls::peer_cert(&c), tls::server_cert("b"));
    assert_eq!(tls::get(&mut c, "/health/ready").await.unwrap().0, 200);
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    node.signal("TERM");
    assert_eq!(node.wait().code(), Some(0));
}
