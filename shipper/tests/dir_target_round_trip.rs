//! The directory target: an upload is stored only when it hashes to the sealed digest,
//! lands atomically (no temporary file left, re-upload idempotent), and ranges read back
//! exactly; bad names, foreign locations and ranges past the end are refused.

use sha2::{Digest, Sha256};
use shipper::{Target, TargetError, TargetSettings};
use std::path::Path;

fn body(n: usize) -> Vec<u8> {
    engine::testing::pseudo_random_bytes(n, 0x9e37_79b9)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn uploads_are_checked_atomic_and_read_back_by_range() {
    let local = tempfile::tempdir().unwrap();
    let cold = tempfile::tempdir().unwrap();
    let root = cold.path().join("segments");
    let target = Target::from_url(
        &format!("file://{}", root.display()),
        &TargetSettings::default(),
    )
    .unwrap();

    let data = body(3 << 20 | 123);
    let src = local.path().join("data-0001-00000000000000000007.car");
    std::fs::write(&src, &data).unwrap();
    let sha: [u8; 32] = Sha256::digest(&data).into();

    let name = "data-0001-00000000000000000007.car";
    let loc = target.put_file(name, &src, sha).await.unwrap();
    assert_eq!(loc, format!("file://{}/{name}", root.display()));
    assert_eq!(std::fs::read(root.join(name)).unwrap(), data);
    assert_eq!(entries(&root), [name]);

    for (off, len) in [
        (0u64, 1u64),
        (0, 4096),
        (1 << 20, 77),
        (data.len() as u64 - 9, 9),
    ] {
        let got = target.read_range(&loc, off, len).await.unwrap();
        assert_eq!(
            &got[..],
            &data[off as usize..(off + len) as usize],
            "{off}+{len}"
        );
    }
    let past = target.read_range(&loc, data.len() as u64 - 2, 3).await;
    assert!(
        matches!(past, Err(TargetError::ShortRange { .. })),
        "{past:?}"
    );

    // Shipping again (a retry after a crash) replaces it with the same bytes.
    let again = target.put_file(name, &src, sha).await.unwrap();
    assert_eq!(again, loc);
    assert_eq!(entries(&root), [name]);
    assert_eq!(std::fs::read(root.join(name)).unwrap(), data);
}

#[tokio::test]
async fn a_digest_mismatch_stores_nothing() {
    let local = tempfile::tempdir().unwrap();
    let cold = tempfile::tempdir().unwrap();
    let target = Target::from_url(
        &format!("file://{}", cold.path().display()),
        &TargetSettings::default(),
    )
    .unwrap();
    let data = body(100_000);
    let src = local.path().join("seg.car");
    std::fs::write(&src, &data).unwrap();
    let mut wrong: [u8; 32] = Sha256::digest(&data).into();
    wrong[0] ^= 1;
    let r = target.put_file("seg.car", &src, wrong).await;
    assert!(
        matches!(r, Err(TargetError::DigestMismatch { .. })),
        "{r:?}"
    );
    assert!(
        entries(cold.path()).is_empty(),
        "{:?}",
        entries(cold.path())
    );
}

#[tokio::test]
async fn bad_urls_names_and_locations_are_refused() {
    for url in [
        "file://relative/dir",
        "ftp://x/y",
        "",
        "/plain/path",
        "s3://bucket/p",
        "s3://",
    ] {
        assert!(
            matches!(
                Target::from_url(url, &TargetSettings::default()),
                Err(TargetError::BadUrl { .. })
            ),
            "{url}"
        );
    }
    let local = tempfile::tempdir().unwrap();
    let cold = tempfile::tempdir().unwrap();
    let target = Target::from_url(
        &format!("file://{}", cold.path().display()),
        &TargetSettings::default(),
    )
    .unwrap();
    let src = local.path().join("x");
    std::fs::write(&src, b"x").unwrap();
    let sha: [u8; 32] = Sha256::digest(b"x").into();
    for name in ["", "../escape.car", "a/b.car", ".hidden", "sp ace"] {
        let r = target.put_file(name, &src, sha).await;
        assert!(matches!(r, Err(TargetError::BadName(_))), "{name}: {r:?}");
    }
    assert!(entries(cold.path()).is_empty());
    let elsewhere = format!("file://{}/x", local.path().display());
    let r = target.read_range(&elsewhere, 0, 1).await;
    assert!(matches!(r, Err(TargetError::ForeignLocation(_))), "{r:?}");
    let dotdot = format!("file://{}/../x", cold.path().display());
    let r = target.read_range(&dotdot, 0, 1).await;
    assert!(matches!(r, Err(TargetError::ForeignLocation(_))), "{r:?}");
}

#[tokio::test]
async fn a_repeated_upload_succeeds_and_other_bytes_never_replace_an_object() {
    let local = tempfile::tempdir().unwrap();
    let cold = tempfile::tempdir().unwrap();
    let target = Target::from_url(
        &format!("file://{}", cold.path().display()),
        &TargetSettings::default(),
    )
    .unwrap();
    let (a, b) = (local.path().join("a"), local.path().join("b"));
    std::fs::write(&a, b"first bytes").unwrap();
    std::fs::write(&b, b"other bytes").unwrap();
    let sha = |v: &[u8]| -> [u8; 32] { Sha256::digest(v).into() };
    let loc = target
        .put_file("s.car", &a, sha(b"first bytes"))
        .await
        .unwrap();
    assert_eq!(
        target
            .put_file("s.car", &a, sha(b"first bytes"))
            .await
            .unwrap(),
        loc
    );
    let clash = target.put_file("s.car", &b, sha(b"other bytes")).await;
    assert!(
        matches!(clash, Err(TargetError::DigestMismatch { .. })),
        "{clash:?}"
    );
    assert_eq!(
        std::fs::read(cold.path().join("s.car")).unwrap(),
        b"first bytes"
    );
    assert_eq!(entries(cold.path()), vec!["s.car".to_owned()]);
}
