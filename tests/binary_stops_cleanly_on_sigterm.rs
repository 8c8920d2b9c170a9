//! The real `ingot-engine` binary: starts on its embedded defaults (plus a data dir and
//! port), generates credentials once (mode 0600), serves S3, answers health, and on
//! SIGTERM drains, seals and exits 0 with every acknowledged object kept.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_generates_credentials_serves_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cores",
            "2",
        ])
        .env_remove("INGOT_ACCESS_KEY")
        .env_remove("INGOT_SECRET_KEY")
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
    // Wait for readiness (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(port, "/health/ready") != Some(200) {
        assert!(Instant::now() < deadline, "node never became ready");
        std::thread::yield_now();
    }
    assert_eq!(get(port, "/health/live"), Some(200));
    let cred_file = dir.path().join("credentials.toml");
    let mode = std::fs::metadata(&cred_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&cred_file).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = \"")))
            .unwrap()
            .trim_end_matches('"')
            .to_owned()
    };
    let (ak, sk) = (field("access_key"), field("secret_key"));

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let s3 = common::client_with(addr, &ak, &sk);
    s3.create_bucket().bucket("bin").send().await.unwrap();
    let data = common::body(1 << 20, 5);
    s3.put_object()
        .bucket("bin")
        .key("k")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();

    // SIGTERM: drain, commit, seal, exit 0.
    let rc = sigterm(child.id() as i32);
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exit status");
    let log = lines.join().unwrap().join("\n");
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}")),
        "banner names the endpoint:\n{log}"
    );
    assert!(
        log.contains("credentials.toml"),
        "banner says where the credentials are:\n{log}"
    );
    assert!(!log.contains(&sk), "the secret is never printed");
    assert!(log.contains("stopped cleanly"), "{log}");

    // The same data dir serves the object again, with the same credentials.
    let mut again = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cores",
            "1",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(port, "/health/ready") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "restarted node never became ready"
        );
        std::thread::yield_now();
    }
    let s3 = common::client_with(addr, &ak, &sk);
    let got = common::read_all(s3.get_object().bucket("bin").key("k").send().await.unwrap()).await;
    assert!(got == data);
    assert_eq!(sigterm(again.id() as i32), 0);
    assert_eq!(again.wait().unwrap().code(), Some(0));
}

/// SIGTERM via the `kill` command, so the test needs no `unsafe`.
fn sigterm(pid: i32) -> i32 {
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    st.code().unwrap_or(-1)
}

#[test]
fn config_print_default_is_a_valid_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args(["config", "print-default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, &text).unwrap();
    ingot_engine::config::load_file(&f).expect("printed default parses");
    // An unknown key is refused with its name, exit code 2.
    std::fs::write(&f, "listen_addr = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
        .args(["--config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
}
