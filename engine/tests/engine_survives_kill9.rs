//! Crash tests on real files: a child process (this test binary, re-run in child mode)
//! writes and deletes objects from several concurrent writers and prints each
//! acknowledgement; the parent kills it with SIGKILL at a random moment, reopens the
//! data directory, and checks that every acknowledged object reads back byte-identical,
//! every acknowledged delete stuck, and nothing unacknowledged is partly visible.
//! Twenty cycles on one directory, so later cycles also recover earlier crashes.

use bytes::Bytes;
use engine::{Engine, EngineConfig, ListRequest, PutOptions, ShardConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIR_ENV: &str = "INGOT_KILL9_CHILD_DIR";
const CYCLE_ENV: &str = "INGOT_KILL9_CYCLE";
const BUCKET: &str = "kill9";

fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        cores: 2,
        pin_cores: false,
        shard: ShardConfig {
            seal_bytes: 2 << 20,
            chunk_bytes: 64 << 10,
            ..ShardConfig::default()
        },
        ..EngineConfig::new(dir)
    }
}

/// The body a key must hold: its length and bytes follow from the key alone.
fn body_for(key: &str) -> Bytes {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let len = match h % 16 {
        0 => 0,
        1..=13 => (h >> 8) % 8192,
        _ => (h >> 8) % 300_000,
    } as usize;
    (0..len)
        .map(|i| (h >> (i % 7 * 8)) as u8 ^ (i / 251) as u8)
        .collect()
}

/// Child mode: write until killed.
fn child(dir: &Path, cycle: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = std::rc::Rc::new(Engine::open(config(dir)).expect("child start"));
        if cycle == 0 {
            e.create_bucket(BUCKET).await.expect("create");
        }
        println!("READY");
        let out = std::rc::Rc::new(std::sync::Mutex::new(std::io::stdout()));
        let local = tokio::task::LocalSet::new();
        for w in 0..8 {
            let (e, out) = (e.clone(), out.clone());
            local.spawn_local(async move {
                let mut acked: Vec<String> = Vec::new();
                for n in 0u64.. {
                    if n % 5 == 4 && !acked.is_empty() {
                        let key = acked.swap_remove((n as usize * 7) % acked.len());
                        {
                            // Announced first: a delete in flight at the kill may land.
                            let mut o = out.lock().expect("stdout");
                            writeln!(o, "TRY-DEL {key}")
                                .and_then(|_| o.flush())
                                .expect("write");
                        }
                        e.delete_object(BUCKET, &key).await.expect("delete");
                        let mut o = out.lock().expect("stdout");
                        writeln!(o, "DEL {key}")
                            .and_then(|_| o.flush())
                            .expect("write");
                        continue;
                    }
                    let key = format!("c{cycle}/w{w}/{n}");
                    e.put_bytes(BUCKET, &key, PutOptions::default(), body_for(&key))
                        .await
                        .expect("put");
                    let mut o = out.lock().expect("stdout");
                    writeln!(o, "PUT {key}")
                        .and_then(|_| o.flush())
                        .expect("write");
                    acked.push(key);
                }
            });
        }
        local.await;
    });
}

#[test]
fn kill9_child_mode() {
    // Runs only when the parent test starts this binary as its child.
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        let cycle = std::env::var(CYCLE_ENV)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        child(Path::new(&dir), cycle);
    }
}

/// Runs one child until it has acknowledged a few writes, kills it after `run`, and
/// returns the acknowledged puts and deletes.
fn run_child(dir: &Path, cycle: u64, run: Duration) -> (Vec<String>, Vec<String>, Vec<String>) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill9_child_mode",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CYCLE_ENV, cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    // Wait until the child has opened the engine (recovering the last crash), then let
    // it write for `run`.
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => {
                let ready = l.ends_with("READY");
                lines.push(l);
                if ready {
                    break;
                }
            }
            Err(e) => panic!("cycle {cycle}: child never got ready ({e}): {lines:?}"),
        }
    }
    std::thread::sleep(run);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader");
    lines.extend(rx.try_iter());
    let mut puts = Vec::new();
    let mut dels = Vec::new();
    let mut tries = Vec::new();
    for l in lines {
        if let Some(k) = l.strip_prefix("PUT ") {
            puts.push(k.to_owned());
        } else if let Some(k) = l.strip_prefix("DEL ") {
            dels.push(k.to_owned());
        } else if let Some(k) = l.strip_prefix("TRY-DEL ") {
            tries.push(k.to_owned());
        }
    }
    (puts, dels, tries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let cycles: u64 = std::env::var("INGOT_KILL9_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut total_acks = 0;
    for cycle in 0..cycles {
        let run = Duration::from_millis(100 + (cycle * 137) % 300);
        let (puts, dels, tries) = run_child(dir.path(), cycle, run);
        total_acks += puts.len() + dels.len();
        for k in puts {
            present.insert(k);
        }
        for k in &dels {
            present.remove(k);
            deleted.insert(k.clone());
        }
        // A delete in flight at the kill may or may not have landed.
        let mut in_flight: BTreeSet<String> = tries.into_iter().collect();
        for k in &dels {
            in_flight.remove(k);
        }
        let e = std::sync::Arc::new(
            Engine::open(config(dir.path()))
                .unwrap_or_else(|e| panic!("cycle {cycle}: restart: {e}")),
        );
        let mut listed = BTreeMap::new();
        let mut after = None;
        loop {
            let req = ListRequest {
                start_after: after.clone(),
                max_keys: 1000,
                ..ListRequest::default()
            };
            let page = e.list_objects(BUCKET, req).await.expect("list");
            for o in &page.objects {
                listed.insert(o.key.clone(), o.size);
            }
            if !page.truncated {
                break;
            }
            after = page.next_marker;
        }
        for key in present.iter().filter(|k| !in_flight.contains(*k)) {
            assert!(
                listed.contains_key(key),
                "cycle {cycle}: acknowledged {key} is missing"
            );
        }
        for key in &deleted {
            assert!(
                !listed.contains_key(key),
                "cycle {cycle}: deleted {key} is back"
            );
        }
        // Every listed object — acknowledged, or in flight at the kill — reads back
        // whole and byte-identical (each block verified on the way).
        let keys: Vec<(String, u64)> = listed.iter().map(|(k, n)| (k.clone(), *n)).collect();
        let mut readers = Vec::new();
        for part in keys.chunks(keys.len().div_ceil(16).max(1)) {
            let (e, part) = (e.clone(), part.to_vec());
            readers.push(tokio::spawn(async move {
                for (key, size) in part {
                    let want = body_for(&key);
                    assert_eq!(size, want.len() as u64, "cycle {cycle}: {key}");
                    let mut got = e
                        .get_object(BUCKET, &key, None)
                        .await
                        .unwrap_or_else(|e| panic!("cycle {cycle}: {key}: {e}"));
                    let mut data = Vec::with_capacity(want.len());
                    while let Some(p) = got.body.recv().await {
                        data.extend_from_slice(
                            &p.unwrap_or_else(|e| panic!("cycle {cycle}: {key}: {e}")),
                        );
                    }
                    assert!(data == want, "cycle {cycle}: {key} differs");
                }
            }));
        }
        for r in readers {
            r.await.expect("reader task");
        }
        present.extend(listed.keys().cloned());
        for key in &in_flight {
            if !listed.contains_key(key) {
                present.remove(key);
                deleted.insert(key.clone());
            }
        }
        e.shutdown().await.expect("shutdown");
    }
    assert!(
        total_acks > 20 * cycles as usize / 2,
        "children acknowledged only {total_acks} writes"
    );
}
