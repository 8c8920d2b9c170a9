//! The real binary refuses to start on a secret file that group or others can access
//! (0640, 0604): a config file holding `secret_key`, `--secret-key-file`, and
//! `[s3_target] credentials_file`. It says which file, and the fix, and creates nothing.

mod common;

use common::binary::{Running, serve};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Runs the server with `args` and expects a refusal naming `secret` with the fix.
fn refused(args: &[&str], secret: &Path, data: &Path) {
    let mut node = Running::spawn(
        serve(data, 0, 1)
            .args(args)
            .env_remove("INGOT_CONFIG")
            .stdout(Stdio::null()),
    );
    // A refusal comes at once; a server that started would run until killed (on drop).
    let Some(status) = node.exit_within(Duration::from_secs(20)) else {
        panic!("the server started with {} exposed", secret.display());
    };
    let stderr = node.log();
    assert!(!status.success(), "started: {stderr}");
    let fix = format!("chmod 600 {}", secret.display());
    assert!(stderr.contains(&fix), "{stderr}");
    assert!(!data.exists(), "a refused start created the data directory");
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn exposed_secret_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("ingot.toml");
    let key = dir.path().join("secret-key");
    let ship = dir.path().join("ship-credentials.toml");
    let ship_config = dir.path().join("ship.toml");
    for mode in [0o640, 0o604] {
        write(&config, "access_key = \"AK\"\nsecret_key = \"SK\"\n", mode);
        refused(&["--config", config.to_str().unwrap()], &config, &data);

        write(&key, "SK\n", mode);
        let key_arg = key.to_str().unwrap();
        refused(
            &["--access-key", "AK", "--secret-key-file", key_arg],
            &key,
            &data,
        );

        write(&ship, "access_key = \"AK\"\nsecret_key = \"SK\"\n", mode);
        let toml = format!(
            "[data_plane]\nship = true\ntarget = \"s3://cold/node\"\n\n[s3_target]\n\
             endpoint = \"http://127.0.0.1:9\"\ncredentials_file = \"{}\"\n",
            ship.display()
        );
        write(&ship_config, &toml, 0o644);
        refused(
            &[
                "--config",
                ship_config.to_str().unwrap(),
                "--access-key",
                "AK",
                "--secret-key",
                "SK",
            ],
            &ship,
            &data,
        );
    }
}
