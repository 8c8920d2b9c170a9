//! Helpers for shipping tests: a node shipping both planes with `retain = 0`, a set of
//! objects, and checks that they read back and that local files agree with the records.

use super::{body, client, md5_hex, read_all, settings};
use aws_sdk_s3::primitives::ByteStream;
use engine::catalog::{SegmentRecord, SegmentState};
use engine::{Plane, car_name, index_name};
use ingot_engine::config::Settings;
use ingot_engine::node::Node;
use ingot_engine::shipping::{PlaneSection, S3Section, ShipSettings, ShipperSection};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Settings of a node whose planes both ship to `target` with `retain = 0`.
pub fn shipping_settings(dir: &Path, target: &str, s3: Option<S3Section>) -> Settings {
    let mut s = settings(dir, "127.0.0.1:0".parse().unwrap());
    s.engine.seal_bytes = 1 << 20;
    s.engine.chunk_bytes = 64 << 10;
    s.engine.seal_age = Duration::from_millis(100);
    let plane = PlaneSection {
        ship: Some(true),
        target: Some(target.to_owned()),
        retain: Some(0),
    };
    let pipeline = ShipperSection {
        rescan_ms: Some(200),
        backoff_base_ms: Some(50),
        backoff_cap_ms: Some(400),
    };
    s.ship = ShipSettings::resolve(&plane, &plane, s3.as_ref(), &pipeline).unwrap();
    s
}

/// Objects of many sizes, some spanning segments.
pub fn objects() -> BTreeMap<String, Vec<u8>> {
    let sizes = [0, 1, 100, 4096, 70_000, 300_000, 1_500_000, 3_000_000];
    let mut m = BTreeMap::new();
    for (i, n) in sizes.iter().enumerate() {
        m.insert(format!("dir{}/obj-{i:02}", i % 3), body(*n, i as u64 + 7));
    }
    m
}

pub async fn put_all(node: &Node, bucket: &str, objs: &BTreeMap<String, Vec<u8>>) {
    let c = client(node.addr());
    c.create_bucket().bucket(bucket).send().await.unwrap();
    for (k, v) in objs {
        c.put_object()
            .bucket(bucket)
            .key(k)
            .body(ByteStream::from(v.clone()))
            .send()
            .await
            .unwrap();
    }
}

/// Every object, whole and in ranges, with HEAD and LIST, equals `objs`.
pub async fn check_all(node: &Node, bucket: &str, objs: &BTreeMap<String, Vec<u8>>) {
    let c = client(node.addr());
    for (k, v) in objs {
        let got = read_all(c.get_object().bucket(bucket).key(k).send().await.unwrap()).await;
        assert!(
            got == *v,
            "{k}: {} bytes back, {} stored",
            got.len(),
            v.len()
        );
        let head = c.head_object().bucket(bucket).key(k).send().await.unwrap();
        assert_eq!(head.content_length(), Some(v.len() as i64), "{k}");
        assert_eq!(head.e_tag(), Some(format!("\"{}\"", md5_hex(v)).as_str()));
        if v.len() > 10 {
            let (a, b) = (v.len() / 3, v.len() - 2);
            let part = c
                .get_object()
                .bucket(bucket)
                .key(k)
                .range(format!("bytes={a}-{b}"))
                .send()
                .await
                .unwrap();
            assert!(read_all(part).await == v[a..=b], "{k} range {a}-{b}");
        }
    }
    let listed = c
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
        .collect::<Vec<_>>();
    let want: Vec<_> = objs
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as i64))
        .collect();
    assert_eq!(listed, want);
}

pub async fn segments(node: &Node) -> Vec<SegmentRecord> {
    node.engine().unwrap().segment_records().await.unwrap()
}

/// Waits (bounded) until no data segment is sealed or shipped-but-local and the
/// meta plane keeps at most its newest shipped segment per shard locally (a catalog
/// segment retires once a head checkpoint covers it).
pub async fn wait_until_retired(node: &Node) -> Vec<SegmentRecord> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let segs = segments(node).await;
        let waiting = segs.iter().filter(|r| match (r.id.plane, r.state) {
            (_, SegmentState::Sealed) => true,
            (Plane::Data, SegmentState::Shipped) => true,
            (Plane::Meta, SegmentState::Shipped) => segs.iter().any(|o| {
                o.id.plane == Plane::Meta
                    && o.id.shard == r.id.shard
                    && o.id.seq > r.id.seq
                    && o.state == SegmentState::Shipped
            }),
            _ => false,
        });
        if waiting.count() == 0 && segs.iter().any(|r| r.state == SegmentState::Retired) {
            return segs;
        }
        assert!(
            Instant::now() < deadline,
            "segments not retired in time: {segs:#?}\nlast error: {:?}",
            node.ship_metrics().last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Local files agree with the records: a retired segment keeps only its index.
pub fn check_local_files(data_dir: &Path, segs: &[SegmentRecord]) {
    for r in segs {
        let dir = data_dir.join(format!("shard-{:04}", r.id.shard));
        let car = dir.join(car_name(r.id)).exists();
        let idx = dir.join(index_name(r.id)).exists();
        match r.state {
            SegmentState::Retired => {
                assert!(!car && idx, "{:?}: car {car} idx {idx}", r.id);
                assert!(r.location.is_some());
            }
            SegmentState::Sealed | SegmentState::Shipped => assert!(car && idx, "{:?}", r.id),
            _ => {}
        }
    }
}

pub fn cold_reads(node: &Node) -> u64 {
    let m = node.engine().unwrap().shard_metrics();
    m.iter().map(|s| s.cold_reads.load(Relaxed)).sum()
}

/// `[s3_target]` for `endpoint` (`http://…` or `https://…`) with the test credentials.
pub fn s3_section(endpoint: String) -> S3Section {
    S3Section {
        endpoint: Some(endpoint),
        access_key: Some(super::ACCESS_KEY.into()),
        secret_key: Some(super::SECRET_KEY.into()),
        ..S3Section::default()
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).into()
}

/// Every shipped segment of `segs` is in `bucket` under `prefix/` on the S3 node
/// `cold`: its location names it, its CAR hashes to the SHA-256 recorded at seal, and
/// its index is there too.
pub async fn check_s3_copies(
    cold: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    segs: &[SegmentRecord],
) {
    for r in segs.iter().filter(|r| r.location.is_some()) {
        let key = format!("{prefix}/{}", car_name(r.id));
        assert_eq!(
            r.location.as_deref(),
            Some(format!("s3://{bucket}/{key}").as_str())
        );
        let got = read_all(
            cold.get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            Some(sha256(&got)),
            r.sha256,
            "{key} differs from what was sealed"
        );
        let idx = format!("{prefix}/{}", index_name(r.id));
        cold.head_object()
            .bucket(bucket)
            .key(&idx)
            .send()
            .await
            .unwrap();
    }
}
