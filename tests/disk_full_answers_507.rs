//! A real full filesystem: a node whose data directory is a small tmpfs answers PUTs
//! with `507 InsufficientStorage` once the disk is full, stays ready (it is not a failed
//! shard), and takes the same PUT once space returns, with no restart.
//!
//! Needs `mount -t tmpfs` (root, or a container that allows it): where the mount is
//! refused the test says why and passes without running.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TMPFS_BYTES: u64 = 48 << 20;
const SEAL_BYTES: u64 = 1 << 20;
/// Left free by the filler: less than a new segment and its reserve (2 × SEAL_BYTES),
/// more than an index file or a catalog transaction needs.
const LEFT_FREE_BYTES: u64 = 3 * SEAL_BYTES / 2;

/// A tmpfs mounted on a temp dir, unmounted (lazily, even if busy) when dropped, on
/// every path out of the test.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_bytes: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Bytes free for unprivileged writers under `path` (`df`).
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("df prints a line");
    last.trim().parse().expect("df prints a number")
}

/// Takes all but `leave_bytes` of the free space with a file of zeros (tmpfs counts
/// written pages only, so the file is written, not extended).
fn fill(dir: &Path, leave_bytes: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let mut left = free_bytes(dir).saturating_sub(leave_bytes);
    let piece = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        f.write_all(&piece[..n]).expect("filler write");
        left -= n as u64;
    }
    f.sync_all().expect("filler sync");
    path
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_recovers_when_space_returns() {
    let fs = match Tmpfs::mount(TMPFS_BYTES) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let data_dir = fs.path().join("data");
    let mut s = common::settings(&data_dir, "127.0.0.1:0".parse().unwrap());
    s.cores = 1;
    s.engine.seal_bytes = SEAL_BYTES;
    s.engine.chunk_bytes = 256 << 10;
    let node = common::start_with(s).await;
    let s3 = common::client(node.addr());
    s3.create_bucket().bucket("full").send().await.unwrap();
    let put = |key: String, data: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("full")
                .key(key)
                .body(data.into())
                .send()
                .await
        }
    };

    let filler = fill(fs.path(), LEFT_FREE_BYTES);
    // Bodies above 16 KiB go to the data plane: its open and spare segments fill, and
    // the next segment finds no room.
    let mut stored = Vec::new();
    let mut refused = None;
    for n in 0..40u64 {
        let key = format!("obj-{n:02}");
        let data = common::body(200 << 10, n);
        match put(key.clone(), data.clone()).await {
            Ok(_) => stored.push((key, data)),
            Err(e) => {
                assert_eq!(common::status(&e), 507, "{key}: {e:?}");
                assert_eq!(common::code(&e), "InsufficientStorage");
                refused = Some((key, data));
                break;
            }
        }
    }
    let (key, data) = refused.expect("a full disk refused a PUT");
    let ready = get_text(node.addr(), "/health/ready").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = get_text(node.addr(), "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ingot_shard_no_space_refusals_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let missing = s3.head_object().bucket("full").key(&key).send().await;
    assert_eq!(missing.map_err(|e| common::status(&e)).err(), Some(404));

    // Space returns: the same PUT is taken, and everything reads back.
    std::fs::remove_file(&filler).unwrap();
    put(key.clone(), data.clone())
        .await
        .expect("the refused PUT once space returned");
    stored.push((key, data));
    for (key, want) in &stored {
        let got = s3
            .get_object()
            .bucket("full")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(&common::read_all(got).await, want, "{key}");
    }
    node.stop().await.unwrap();
    drop(fs);
}
