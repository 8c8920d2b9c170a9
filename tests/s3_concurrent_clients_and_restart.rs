//! 32 concurrent clients against a real node, a restart in the middle with requests in
//! flight, and every acknowledged object byte-identical afterwards.

mod common;

use common::{body, client, md5_hex, read_all};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Each client writes `n` objects (1 B to ~300 KiB) and reads each one back.
async fn clients(addr: std::net::SocketAddr, round: u64, n: u64, acked: Acked) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..32u64 {
        let acked = acked.clone();
        tasks.spawn(async move {
            let s3 = client(addr);
            for i in 0..n {
                let seed = round * 1_000_000 + c * 1000 + i;
                let data = body((seed as usize * 7919) % 300_000 + 1, seed);
                let key = format!("r{round}/c{c:02}/o{i:03}");
                if s3
                    .put_object()
                    .bucket("many")
                    .key(&key)
                    .body(data.clone().into())
                    .send()
                    .await
                    .is_err()
                {
                    return; // the node went away mid-request: not acknowledged
                }
                acked.lock().unwrap().insert(key.clone(), md5_hex(&data));
                let Ok(got) = s3.get_object().bucket("many").key(&key).send().await else {
                    return;
                };
                assert!(
                    read_all(got).await == data,
                    "{key} read back different bytes"
                );
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("client task");
    }
}

async fn verify(addr: std::net::SocketAddr, acked: &Acked) {
    let s3 = client(addr);
    let expected = acked.lock().unwrap().clone();
    assert!(!expected.is_empty());
    for (key, md5) in &expected {
        let got = s3
            .get_object()
            .bucket("many")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(&md5_hex(&read_all(got).await), md5, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_objects_survive_a_restart_with_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let any_port = "127.0.0.1:0".parse().unwrap();
    let node = common::start_in(dir.path(), any_port).await;
    let addr = node.addr();
    client(addr)
        .create_bucket()
        .bucket("many")
        .send()
        .await
        .unwrap();
    let acked: Acked = Arc::default();

    clients(addr, 0, 10, acked.clone()).await;
    // Second round: stop the node while its clients are still writing.
    let writers = tokio::spawn(clients(addr, 1, 1000, acked.clone()));
    let before = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < before + 64 {
        tokio::task::yield_now().await;
    }
    node.stop().await.unwrap();
    writers.await.unwrap();

    let node = common::start_in(dir.path(), any_port).await;
    verify(node.addr(), &acked).await;
    // The restarted node takes writes as before.
    clients(node.addr(), 2, 3, acked.clone()).await;
    verify(node.addr(), &acked).await;
    let listed = client(node.addr())
        .list_objects_v2()
        .bucket("many")
        .prefix("r0/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(320));
    node.stop().await.unwrap();
}
