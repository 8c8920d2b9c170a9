//! With `retain = 0` every sealed segment is shipped and its local copy retired; every
//! object still reads back byte-identical (GET, ranged GET, HEAD, LIST), also after a
//! restart with empty caches, when the blocks come from the target. Targets: a directory
//! and a second ingot-engine node over S3.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::ship::{
    check_all, check_local_files, check_s3_copies, cold_reads, objects, put_all, s3_section,
    sha256, shipping_settings, wait_until_retired,
};
use common::{body, client, read_all, settings, start_with};
use engine::catalog::SegmentRecord;
use engine::{car_name, index_name};
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
        assert_eq!(Some(sha256(&bytes)), r.sha256, "{:?}", r.id);
        assert!(cold.path().join("node-a").join(index_name(r.id)).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_segments_read_back_from_another_node_over_s3() {
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = start_with(settings(cold_dir.path(), "127.0.0.1:0".parse().unwrap())).await;
    let cc = client(cold.addr());
    cc.create_bucket().bucket("cold-tier").send().await.unwrap();
    let s3 = s3_section(format!("http://{}", cold.addr()));
    let dir = tempfile::tempdir().unwrap();
    let s = shipping_settings(dir.path(), "s3://cold-tier/node-a", Some(s3));
    let segs = round_trip(dir.path(), s).await;
    check_s3_copies(&cc, "cold-tier", "node-a", &segs).await;
    cold.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_repeat_safely_and_never_replace_other_bytes() {
    use client::{ClientError, S3Client, S3Settings};
    use shipper::{Target, TargetError, TargetSettings};
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = start_with(settings(cold_dir.path(), "127.0.0.1:0".parse().unwrap())).await;
    let cc = client(cold.addr());
    cc.create_bucket().bucket("cold-tier").send().await.unwrap();
    let s3 = S3Client::new(S3Settings {
        endpoint: format!("http://{}", cold.addr()),
        ca_file: None,
        region: "us-east-1".into(),
        access_key: common::ACCESS_KEY.into(),
        secret_key: common::SECRET_KEY.into(),
        timeout: Some(std::time::Duration::from_secs(10)),
    })
    .unwrap();
    let ts = TargetSettings {
        s3: Some(std::sync::Arc::new(s3)),
    };
    let target = Target::from_url("s3://cold-tier/p", &ts).unwrap();
    let local = tempfile::tempdir().unwrap();
    let (a, b) = (body(300_000, 1), body(300_000, 2));
    let (pa, pb) = (local.path().join("a"), local.path().join("b"));
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, &b).unwrap();
    let sha = sha256;

    let loc = target.put_file("x.car", &pa, sha(&a)).await.unwrap();
    assert_eq!(loc, "s3://cold-tier/p/x.car");
    // A repeated upload (as after a crash) succeeds; other bytes under the name do not.
    assert_eq!(target.put_file("x.car", &pa, sha(&a)).await.unwrap(), loc);
    let clash = target.put_file("x.car", &pb, sha(&b)).await;
    assert!(
        matches!(clash, Err(TargetError::DigestMismatch { .. })),
        "{clash:?}"
    );
    let stored = read_all(
        cc.get_object()
            .bucket("cold-tier")
            .key("p/x.car")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(stored == a, "the object was replaced");
    // Bytes that differ from the sealed digest are refused by the server; nothing stored.
    let bad = target.put_file("y.car", &pa, sha(&b)).await;
    assert!(
        matches!(&bad, Err(TargetError::S3(ClientError::Status { status: 400, code, .. })) if code == "XAmzContentSHA256Mismatch"),
        "{bad:?}"
    );
    assert!(
        cc.head_object()
            .bucket("cold-tier")
            .key("p/y.car")
            .send()
            .await
            .is_err()
    );
    // Ranged reads: exact bytes, and a range past the end is an error.
    let got = target.read_range(&loc, 12_345, 1000).await.unwrap();
    assert_eq!(&got[..], &a[12_345..13_345]);
    assert!(target.read_range(&loc, 299_999, 2).await.is_err());
    assert!(target.read_range("s3://other/p/x.car", 0, 1).await.is_err());
    cold.stop().await.unwrap();
}

/// A TLS-terminating proxy (the test certificate in `tests/fixtures/`) in front of
/// `upstream`.
async fn tls_proxy(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let certs: Vec<_> = CertificateDer::pem_file_iter(fixtures.join("tls-cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixtures.join("tls-key.pem")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_segments_read_back_over_https() {
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = start_with(settings(cold_dir.path(), "127.0.0.1:0".parse().unwrap())).await;
    client(cold.addr())
        .create_bucket()
        .bucket("cold-tier")
        .send()
        .await
        .unwrap();
    let via = tls_proxy(cold.addr()).await;
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls-cert.pem");
    let s3 = S3Section {
        ca_file: Some(ca),
        ..s3_section(format!("https://{via}"))
    };
    // Without the CA the endpoint's certificate is not trusted: nothing ships.
    {
        use client::{S3Client, S3Settings};
        let untrusted = S3Client::new(S3Settings {
            endpoint: format!("https://{via}"),
            ca_file: None,
            region: "us-east-1".into(),
            access_key: common::ACCESS_KEY.into(),
            secret_key: common::SECRET_KEY.into(),
            timeout: Some(std::time::Duration::from_secs(10)),
        })
        .unwrap();
        let ts = shipper::TargetSettings {
            s3: Some(std::sync::Arc::new(untrusted)),
        };
        let t = shipper::Target::from_url("s3://cold-tier/x", &ts).unwrap();
        let f = cold_dir.path().join("probe");
        std::fs::write(&f, b"probe").unwrap();
        let sha: [u8; 32] = sha256(b"probe");
        let e = t.put_file("probe.car", &f, sha).await.unwrap_err();
        assert!(e.to_string().contains("certificate"), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let s = shipping_settings(dir.path(), "s3://cold-tier/node-a", Some(s3));
    let segs = round_trip(dir.path(), s).await;
    assert!(segs.iter().any(|r| r.location.is_some()));
    cold.stop().await.unwrap();
}
