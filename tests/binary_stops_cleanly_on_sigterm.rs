//! The real `ingot-engine` binary: starts on its embedded defaults (plus a data dir and
//! port), generates credentials once (mode 0600), serves S3, answers health, and on
//! SIGTERM drains, seals and exits 0 with every acknowledged object kept.

mod common;

use common::binary::{Running, command, free_port, get_status, serve};
use std::os::unix::fs::PermissionsExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_generates_credentials_serves_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = Running::spawn(
        serve(dir.path(), port, 2)
            .env_remove("INGOT_ACCESS_KEY")
            .env_remove("INGOT_SECRET_KEY"),
    );
    node.wait_ready(port, "node");
    assert_eq!(get_status(port, "/health/live"), Some(200));
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
    node.signal("TERM");
    let status = node.wait();
    assert_eq!(status.code(), Some(0), "exit status");
    let log = node.log();
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
    let mut again = Running::spawn(&mut serve(dir.path(), port, 1));
    again.wait_ready(port, "restarted node");
    let s3 = common::client_with(addr, &ak, &sk);
    let got = common::read_all(s3.get_object().bucket("bin").key("k").send().await.unwrap()).await;
    assert!(got == data);
    again.signal("TERM");
    assert_eq!(again.wait().code(), Some(0));
}

#[test]
fn config_print_default_is_a_valid_config() {
    let out = command()
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
    let out = command()
        .args(["--config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
}
