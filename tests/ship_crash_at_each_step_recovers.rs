//! The real binary aborts (like `kill -9`: no cleanup, no seal) right after each step of
//! shipping and retiring (`INGOT_SHIP_CRASH_AFTER`); a node started again on the same
//! data dir finishes the work: no local file without a record, no record without its
//! file or location, every acknowledged object reads back byte-identical, and every
//! shipped segment at the target equals what was sealed.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::binary::{Running, free_port, serve};
use common::ship::{
    check_all, check_local_files, objects, sha256, shipping_settings, wait_until_retired,
};
use common::start_with;
use engine::{car_name, index_name};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path, target: &str) -> std::path::PathBuf {
    let path = dir.join("ingot.toml");
    let plane = format!("ship = true\ntarget = \"{target}\"\nretain = 0\n");
    let text = format!(
        "[engine]\nseal_bytes = 1048576\nchunk_bytes = 65536\nseal_age_ms = 100\n\
         pin_cores = false\n\n[data_plane]\n{plane}\n[catalog_plane]\n{plane}\n\
         [shipper]\nrescan_ms = 200\nbackoff_base_ms = 50\nbackoff_cap_ms = 400\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn crash_after(step: &str) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let cold = work.path().join("cold");
    // Until the first round of writes is acknowledged, the target cannot take uploads (a
    // file stands where its directory goes), so the crash cannot come before any ack.
    std::fs::write(&cold, b"not a directory").unwrap();
    let target = format!("file://{}", cold.display());
    let port = free_port();
    // Failed uploads log warnings; the helper drains stderr so the child never blocks.
    let mut node = Running::spawn(
        serve(&data, port, 2)
            .arg("--config")
            .arg(config(work.path(), &target))
            .env("INGOT_ACCESS_KEY", common::ACCESS_KEY)
            .env("INGOT_SECRET_KEY", common::SECRET_KEY)
            .env("INGOT_SHIP_CRASH_AFTER", step)
            .env("INGOT_LOG", "warn"),
    );
    node.wait_ready(port, &format!("{step}: node"));
    let c = common::client(format!("127.0.0.1:{port}").parse().unwrap());
    c.create_bucket().bucket("shipped").send().await.unwrap();
    let mut acked = BTreeMap::new();
    for (k, v) in objects() {
        let put = c.put_object().bucket("shipped").key(&k);
        put.body(ByteStream::from(v.clone())).send().await.unwrap();
        acked.insert(k, v);
    }
    // Let uploads through, and write on until the crash; keep what was acknowledged.
    std::fs::remove_file(&cold).unwrap();
    let mut unknown = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    let status = 'writing: loop {
        round += 1;
        for (k, v) in objects() {
            if let Some(s) = node.try_wait() {
                break 'writing s;
            }
            assert!(
                Instant::now() < deadline,
                "{step}: the crash point was never reached"
            );
            let k = format!("round{round}/{k}");
            let put = c.put_object().bucket("shipped").key(&k);
            match put.body(ByteStream::from(v.clone())).send().await {
                Ok(_) => acked.insert(k, v),
                Err(_) => unknown.insert(k, v),
            };
        }
    };
    let log = node.log();
    assert_eq!(status.signal(), Some(6), "{step}: {status:?}\n{log}");
    assert!(log.contains("crash test"), "{step}: {log}");

    // Start again (in process, same data dir and target): recovery finishes the step.
    let node = start_with(shipping_settings(&data, &target, None)).await;
    let segs = wait_until_retired(&node).await;
    check_local_files(&data, &segs);
    // A PUT cut off by the crash may or may not have committed; if it did, its bytes
    // are whole.
    let c = common::client(node.addr());
    for (k, v) in unknown {
        if let Ok(got) = c.get_object().bucket("shipped").key(&k).send().await {
            assert!(common::read_all(got).await == v, "{step}: {k} is not whole");
            acked.insert(k, v);
        }
    }
    check_all(&node, "shipped", &acked).await;
    for r in segs.iter().filter(|r| r.location.is_some()) {
        let bytes = std::fs::read(cold.join(car_name(r.id))).unwrap();
        assert_eq!(Some(sha256(&bytes)), r.sha256, "{step}: {:?}", r.id);
        assert!(cold.join(index_name(r.id)).exists(), "{step}: {:?}", r.id);
    }
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_car_upload() {
    crash_after("car-uploaded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_index_upload() {
    crash_after("index-uploaded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_marking_shipped() {
    crash_after("marked-shipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_retiring() {
    crash_after("retired").await;
}
