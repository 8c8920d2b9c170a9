//! With `retain = 0` every sealed segment is shipped and its local copy retired; every
//! object still reads back byte-identical (GET, ranged GET, HEAD, LIST), also after a
//! restart with empty caches, when the blocks come from the target. Targets: a directory
//! and a second ingot-engine node over S3.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::ship::{
    check_all, check_local_files, cold_reads, objects, put_all, shipping_settings,
    wait_until_retired,
};
use common::{body, client, read_all, settings, start_with};
use engine::catalog::SegmentRecord;
use engine::plane::{car_name, index_name};
use ingot_engine::config::Settings;
use ingot_engine::shipping::S3Section;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// Writes, waits for retirement, reads back; restarts and reads back again.
async fn round_trip(data_dir: &Path, s: Settings) -> Vec<SegmentRecord> {
    let objs = objects();
    let node = start_with(s.clone()).await;
    put_all(&node, "shipped", &objs).await;
    let segs = wait_until_retired(&node).await;
    check_local_files(data_dir, &segs);
    check_all(&node, "shipped", &objs).await;
    assert!(node.ship_metrics().shipped_segments.load(Relaxed) > 0);
    node.stop().await.unwrap();

    // Restart: empty caches, so every block of a retired segment comes from the target.
    let node = start_with(s).await;
    check_all(&node, "shipped", &objs).await;
    assert!(cold_reads(&node) > 0, "nothing was read from the cold tier");
    let m = node.engine().unwrap().shard_metrics();
    assert_eq!(
        m.iter()
            .map(|s| s.cold_read_errors.load(Relaxed))
            .sum::<u64>(),
        0
    );
    // New writes after the restart ship and retire too.
    let more: BTreeMap<_, _> = [("after/restart".to_owned(), body(2_000_000, 99))].into();
    let c = client(node.addr());
    c.put_object()
        .bucket("shipped")
        .key("after/restart")
        .body(ByteStream::from(more["after/restart"].clone()))
        .send()
        .await
        .unwrap();
    let segs = wait_until_retired(&node).await;
    check_local_files(data_dir, &segs);
    let mut all = objs;
    all.extend(more);
    check_all(&node, "shipped", &all).await;
    node.stop().await.unwrap();
    segs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_segments_read_back_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cold = tempfile::tempdir().unwrap();
    let target = format!("file://{}/node-a", cold.path().display());
    let s = shipping_settings(dir.path(), &target, None);
    let segs = round_trip(dir.path(), s).await;
    // Every shipped or retired segment is at the target, CAR and index.
    for r in segs.iter().filter(|r| r.location.is_some()) {
        let car = cold.path().join("node-a").join(car_name(r.id));
        assert_eq!(
            r.location.as_deref(),
            Some(format!("file://{}", car.display()).as_str())
        );
        let bytes = std::fs::read(&car).unwrap();
        assert_eq!(bytes.len() as u64, r.size_bytes);
        let sha: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            &bytes,
        ))
        .into();
        assert_eq!(Some(sha), r.sha256, "{:?}", r.id);
        assert!(cold.path().join("node-a").join(index_name(r.id)).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_segments_read_back_from_another_node_over_s3() {
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = start_with(settings(cold_dir.path(), "127.0.0.1:0".parse().unwrap())).await;
    let cc = client(cold.addr());
    cc.create_bucket().bucket("cold-tier").send().await.unwrap();
    let s3 = S3Section {
        endpoint: Some(format!("http://{}", cold.addr())),
        access_key: Some(common::ACCESS_KEY.into()),
        secret_key: Some(common::SECRET_KEY.into()),
        ..S3Section::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = shipping_settings(dir.path(), "s3://cold-tier/node-a", Some(s3));
    let segs = round_trip(dir.path(), s).await;
    for r in segs.iter().filter(|r| r.location.is_some()) {
        let key = format!("node-a/{}", car_name(r.id));
        assert_eq!(
            r.location.as_deref(),
            Some(format!("s3://cold-tier/{key}").as_str())
        );
        let got = read_all(
            cc.get_object()
                .bucket("cold-tier")
                .key(&key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&got).into();
        assert_eq!(Some(sha), r.sha256, "{key}");
        let idx = format!("node-a/{}", index_name(r.id));
        cc.head_object()
            .bucket("cold-tier")
            .key(&idx)
            .send()
            .await
            .unwrap();
    }
    cold.stop().await.unwrap();
}
