//! Everything a node writes is its own: the data directory and its shard directories are
//! 0700 and every file in them (segments, indexes, the catalog, the lock) 0600, set when
//! they are created, whatever the umask; so is every object shipped to a `file://`
//! target, and a target directory the node creates. A data directory left by an earlier
//! version with wider modes is tightened at start.

mod common;

use common::ship::{objects, put_all, shipping_settings, wait_until_retired};
use common::start_with;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Every directory and file under `root` (itself included) with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.is_dir(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

fn assert_private(root: &Path) {
    let all = modes(root);
    assert!(
        all.iter().any(|(_, dir, _)| !dir),
        "no files under {root:?}"
    );
    for (path, dir, mode) in all {
        let want = if dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:04o}", path.display());
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_shipped_objects_are_owner_only_and_older_modes_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let (data, cold) = (root.path().join("data"), root.path().join("cold"));
    let s = shipping_settings(&data, &format!("file://{}", cold.display()), None);

    let node = start_with(s.clone()).await;
    put_all(&node, "private", &objects()).await;
    wait_until_retired(&node).await;
    node.stop().await.unwrap();
    assert_private(&data);
    assert_private(&cold);

    // As an earlier version (or a umask of 022) left them.
    chmod(&data, 0o755);
    for (path, dir, _) in modes(&data) {
        chmod(&path, if dir { 0o755 } else { 0o644 });
    }
    let node = start_with(s).await;
    assert_private(&data);
    node.stop().await.unwrap();
}
