//! `ingot-engine export | import | verify` as a user runs them: objects written with
//! aws-sdk-s3 (metadata, a multipart upload), exported from the running node through
//! the signed admin endpoint and again from its stopped data directory (the same bytes),
//! imported into a fresh data directory (every object, header and listing identical,
//! same root), imported online; a damaged file is refused with the object named and
//! exit code 1; `verify` on a damaged data directory names the object and exits 1.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::{ACCESS_KEY, SECRET_KEY, body, client, start_in};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary off the runtime (the node under test shares it).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
            .args(&args)
            .env_remove("INGOT_ACCESS_KEY")
            .env_remove("INGOT_SECRET_KEY")
            .env("INGOT_LOG", "warn")
            .output()
            .expect("binary runs")
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn online(endpoint: &str) -> Vec<String> {
    args(&[
        "--endpoint",
        endpoint,
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        SECRET_KEY,
    ])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Key → (ETag, size, content type, metadata, body) as an S3 client sees it.
type Seen = BTreeMap<String, (String, i64, Option<String>, Vec<(String, String)>, Vec<u8>)>;

async fn seen(c: &aws_sdk_s3::Client, bucket: &str) -> Seen {
    let mut out = Seen::new();
    let list = c.list_objects_v2().bucket(bucket).send().await.unwrap();
    for o in list.contents() {
        let key = o.key().unwrap().to_owned();
        let got = c
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let etag = got.e_tag().unwrap().to_owned();
        let ctype = got.content_type().map(str::to_owned);
        let mut meta: Vec<(String, String)> = got
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        meta.sort();
        let size = o.size().unwrap();
        let data = common::read_all(got).await;
        assert_eq!(o.e_tag().unwrap(), etag);
        out.insert(key, (etag, size, ctype, meta, data));
    }
    out
}

async fn fill(c: &aws_sdk_s3::Client, bucket: &str) {
    c.create_bucket().bucket(bucket).send().await.unwrap();
    for i in 0..40u64 {
        c.put_object()
            .bucket(bucket)
            .key(format!("logs/{i:03}.txt"))
            .body(ByteStream::from(body((i * 911 % 70_000) as usize, i)))
            .send()
            .await
            .unwrap();
    }
    c.put_object()
        .bucket(bucket)
        .key("photos/cat.png")
        .content_type("image/png")
        .metadata("camera", "pinhole")
        .body(ByteStream::from(body(3_000_000, 7)))
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key("big/multi")
        .metadata("parts", "two")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 << 20), (2, 1234)] {
        let p = c
            .upload_part()
            .bucket(bucket)
            .key("big/multi")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body(len, n as u64)))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(bucket)
        .key("big/multi")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn flip_in_segments(dir: &Path, block: &[u8]) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(dir).unwrap().flatten() {
        if !shard.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            if f.path().extension().is_none_or(|e| e != "car") {
                continue;
            }
            let mut bytes = std::fs::read(f.path()).unwrap();
            if let Some(at) = bytes.windows(block.len()).position(|w| w == block) {
                bytes[at + block.len() / 2] ^= 0x04;
                std::fs::write(f.path(), bytes).unwrap();
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_verify_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let (src_dir, dst_dir) = (work.path().join("src"), work.path().join("dst"));
    let any = "127.0.0.1:0".parse().unwrap();
    let node = start_in(&src_dir, any).await;
    let endpoint = format!("http://{}", node.addr());
    let c = client(node.addr());
    fill(&c, "media").await;
    let before = seen(&c, "media").await;
    let head = node.engine().unwrap().bucket_head("media").await.unwrap();

    // Online export through the admin endpoint; unsigned admin requests are refused.
    let online_car = work.path().join("online.car");
    let mut a = args(&["export", "--bucket", "media", "--out"]);
    a.push(online_car.display().to_string());
    a.extend(online(&endpoint));
    let o = run(a).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&head.commit.to_string()));
    let unsigned = reqwest_free_get(&node.addr().to_string(), "/media?ingot-export").await;
    assert!(unsigned.starts_with("HTTP/1.1 403"), "{unsigned}");
    node.stop().await.unwrap();

    // Offline export of the stopped node: the same bytes.
    let offline_car = work.path().join("offline.car");
    let o = run(args(&[
        "export",
        "--bucket",
        "media",
        "--out",
        &offline_car.display().to_string(),
        "--data-dir",
        &src_dir.display().to_string(),
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let car = std::fs::read(&online_car).unwrap();
    assert_eq!(car, std::fs::read(&offline_car).unwrap());

    // Offline import into a fresh data directory, then a node on it serves the same.
    let o = run(args(&[
        "import",
        "--bucket",
        "media",
        "--data-dir",
        &dst_dir.display().to_string(),
        &online_car.display().to_string(),
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let node = start_in(&dst_dir, any).await;
    let endpoint = format!("http://{}", node.addr());
    let c = client(node.addr());
    assert_eq!(seen(&c, "media").await, before);
    let imported = node.engine().unwrap().bucket_head("media").await.unwrap();
    assert_eq!(imported.root, head.root);

    // Online import under another name, and an online verify of it.
    let mut a = args(&["import", "--bucket", "media-copy"]);
    a.extend(online(&endpoint));
    a.push(online_car.display().to_string());
    let o = run(a).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(seen(&c, "media-copy").await, before);
    let mut a = args(&["verify", "--bucket", "media-copy"]);
    a.extend(online(&endpoint));
    let o = run(a).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("media-copy: ok"),
        "{}",
        text(&o)
    );

    // A damaged file is refused, naming the object, and creates nothing.
    let (_, header_len) = engine::segment::frame::read_header(&car).unwrap();
    let frames: Vec<_> = {
        let mut at = header_len;
        let mut v = Vec::new();
        while at < car.len() {
            let f = engine::segment::frame::read_frame(&car[at..]).unwrap();
            v.push((at, f.len, f.cid));
            at += f.len;
        }
        v
    };
    let cat = frames
        .iter()
        .position(|f| {
            let b = &car[f.0..f.0 + f.1];
            b.windows(17).any(|w| w == b"/objectmanifest/1")
                && b.windows(14).any(|w| w == b"photos/cat.png")
        })
        .unwrap();
    let chunk = frames[cat + 1..]
        .iter()
        .find(|f| f.2.codec() == 0x55)
        .unwrap();
    let mut damaged = car[..chunk.0].to_vec();
    damaged.extend_from_slice(&car[chunk.0 + chunk.1..]);
    let bad = work.path().join("bad.car");
    std::fs::write(&bad, &damaged).unwrap();
    let mut a = args(&["import", "--bucket", "broken"]);
    a.extend(online(&endpoint));
    a.push(bad.display().to_string());
    let o = run(a).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "missing chunk at bytes 0..1048576 {} of object \"photos/cat.png\"",
            chunk.2
        )),
        "{err}"
    );
    assert!(c.head_bucket().bucket("broken").send().await.is_err());
    node.stop().await.unwrap();

    // Damage on disk: verify names the object and exits 1.
    let block = {
        let (at, len, cid) = *chunk;
        let f = engine::segment::frame::read_frame(&car[at..at + len]).unwrap();
        assert_eq!(f.cid, cid);
        f.block.to_vec()
    };
    assert!(flip_in_segments(&dst_dir, &block) > 0);
    let o = run(args(&[
        "verify",
        "--data-dir",
        &dst_dir.display().to_string(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for bucket in ["media", "media-copy"] {
        assert!(
            out.contains(&format!(
                "{bucket}: corrupt chunk at bytes 0..1048576 {} of object \"photos/cat.png\"",
                chunk.2
            )),
            "{out}"
        );
        assert!(out.contains(&format!("{bucket}: DAMAGED")), "{out}");
    }
}

/// A raw unsigned HTTP GET: the first line and headers of the answer.
async fn reqwest_free_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
