//! `ingot-engine bench` against a real node: every workload runs its operation budget
//! without errors, moves the bytes it claims, and leaves nothing behind; failures are
//! counted by kind.

mod common;

use client::S3Settings;
use client::load::stats::Op;
use client::load::{Plan, Report, run};
use common::{ACCESS_KEY, SECRET_KEY, client, code, start};
use std::time::Duration;

fn plan(addr: std::net::SocketAddr, bucket: &str, mix: Vec<(Op, u32)>, size: u64) -> Plan {
    Plan {
        target: S3Settings {
            endpoint: format!("http://{addr}"),
            ca_file: None,
            region: "us-east-1".into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            timeout: None,
        },
        bucket: bucket.into(),
        prefix: "bench/".into(),
        mix,
        size_min: size,
        size_max: size,
        part_bytes: 5 << 20,
        concurrency: 8,
        duration: None,
        max_ops: Some(120),
        prefill: 0,
        reuse_prefill: false,
        warmup: Duration::ZERO,
        keep: false,
        progress: false,
    }
}

fn count(r: &Report, op: Op) -> u64 {
    r.lines.iter().find(|l| l.op == op).map_or(0, |l| l.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_workload_runs_its_budget_and_cleans_up() {
    let (node, _dir) = start().await;
    let addr = node.addr();
    let s3 = client(addr);

    let r = run(plan(addr, "bench-put", vec![(Op::Put, 1)], 4096))
        .await
        .unwrap();
    assert_eq!((r.ops, r.error_count()), (120, 0), "{}", r.to_text());
    assert!((r.mb_per_s * r.seconds * 1e6 - 120.0 * 4096.0).abs() < 1.0);
    assert!(r.lines[0].p50_ms > 0.0 && r.lines[0].p50_ms <= r.lines[0].p99_ms);
    // The run created the bucket, so it removed it with everything it wrote.
    let e = s3
        .head_bucket()
        .bucket("bench-put")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotFound");

    // Reads need objects: they are written first, then read, then deleted.
    s3.create_bucket()
        .bucket("bench-read")
        .send()
        .await
        .unwrap();
    let mut p = plan(
        addr,
        "bench-read",
        vec![(Op::Get, 3), (Op::Stat, 1), (Op::List, 1)],
        10_000,
    );
    p.prefill = 40;
    let r = run(p).await.unwrap();
    assert_eq!((r.ops, r.error_count()), (120, 0), "{}", r.to_text());
    let gets = count(&r, Op::Get);
    assert!(gets > 0 && count(&r, Op::Stat) > 0 && count(&r, Op::List) > 0);
    let get_line = r.lines.iter().find(|l| l.op == Op::Get).unwrap();
    assert!((get_line.mb_per_s * r.seconds * 1e6 - gets as f64 * 10_000.0).abs() < 1.0);
    // The bucket was there before: it stays, emptied.
    let listed = s3
        .list_objects_v2()
        .bucket("bench-read")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));

    let mut p = plan(addr, "bench-mp", vec![(Op::Multipart, 1)], (11 << 20) + 7);
    p.max_ops = Some(4);
    let r = run(p).await.unwrap();
    assert_eq!((r.ops, r.error_count()), (4, 0), "{}", r.to_text());

    // Deleting more objects than exist: the surplus is counted as errors, by kind.
    let mut p = plan(addr, "bench-read", vec![(Op::Delete, 1)], 100);
    p.prefill = 10;
    p.max_ops = Some(15);
    let r = run(p).await.unwrap();
    assert_eq!(count(&r, Op::Delete), 10);
    assert_eq!(r.error_count(), 5, "{}", r.to_text());
    assert!(
        r.to_json()["errors"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("delete"))
    );
    node.stop().await.unwrap();
}
