//! The real binary serving HTTPS: SIGHUP re-reads the certificate and key; new
//! connections get the new certificate while a connection opened before keeps working;
//! a broken pair is refused with an error in the log and the current one stays.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, name: &str) {
    let st = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{name}");
}

/// Waits (bounded) for a log line containing `needle`.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(e) => panic!("no log line with {needle:?}: {e}"),
        }
    }
}

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", &addr.to_string(), "--cores", "1"])
        .args(["--tls-cert", files.cert.to_str().unwrap()])
        .args(["--tls-key", files.key.to_str().unwrap()])
        .env_remove("INGOT_ACCESS_KEY")
        .env_remove("INGOT_SECRET_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let banner = wait_for_line(&lines, "S3 endpoint:");
    assert!(banner.contains(&format!("https://{addr}")), "{banner}");
    wait_for_line(&lines, "storage recovered; ready");

    // A connection opened on the first certificate...
    let mut old = tls::connect(addr).await.unwrap();
    assert_eq!(tls::peer_cert(&old), tls::server_cert("a"));
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    // ...the files renewed, SIGHUP: new connections get the new one,
    tls::install_pair(&files, "b");
    signal(child.id(), "HUP");
    wait_for_line(&lines, "TLS certificate reloaded");
    wait_for_cert(addr, "b").await;
    // and the old connection is still served.
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    // A broken pair is refused: logged, and the current certificate stays.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ntruncated\n").unwrap();
    signal(child.id(), "HUP");
    let refused = wait_for_line(&lines, "not reloaded");
    assert!(refused.contains("ERROR"), "{refused}");
    assert!(refused.contains(files.cert.to_str().unwrap()), "{refused}");
    let mut c = tls::connect(addr).await.unwrap();
    assert_eq!(tls::peer_cert(&c), tls::server_cert("b"));
    assert_eq!(tls::get(&mut c, "/health/ready").await.unwrap().0, 200);
    assert_eq!(tls::get(&mut old, "/health/live").await.unwrap().0, 200);

    signal(child.id(), "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
