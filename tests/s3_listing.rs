//! ListObjects v1, ListObjectsV2 and ListObjectVersions through aws-sdk-s3: prefixes,
//! delimiters, every pagination marker, encoding-type=url, fetch-owner.

mod common;

use aws_sdk_s3::types::EncodingType;
use common::{client, code, start};

async fn fill(s3: &aws_sdk_s3::Client, keys: &[String]) {
    s3.create_bucket().bucket("lst").send().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for k in keys {
        let (s3, k) = (s3.clone(), k.clone());
        tasks.spawn(async move {
            s3.put_object()
                .bucket("lst")
                .key(k)
                .body(b"x".to_vec().into())
                .send()
                .await
                .unwrap()
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn keys() -> Vec<String> {
    let mut k: Vec<String> = (0..25).map(|i| format!("a/{i:03}")).collect();
    k.extend((0..5).map(|i| format!("b/c/{i}")));
    k.extend([
        "b/d".to_owned(),
        "top1".to_owned(),
        "top2".to_owned(),
        "space key".to_owned(),
    ]);
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_pages_through_every_key_once() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    let all = keys();
    fill(&s3, &all).await;
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("lst")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.key_count().unwrap() <= 7);
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !page.is_truncated().unwrap() {
            assert!(page.next_continuation_token().is_none());
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(seen, all);
    let after = s3
        .list_objects_v2()
        .bucket("lst")
        .start_after("b/d")
        .send()
        .await
        .unwrap();
    let got: Vec<_> = after.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(got, ["space key", "top1", "top2"]);
    let e = s3
        .list_objects_v2()
        .bucket("lst")
        .continuation_token("%%%")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let none = s3
        .list_objects_v2()
        .bucket("lst")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (none.key_count(), none.is_truncated()),
        (Some(0), Some(false))
    );
    let e = s3
        .list_objects_v2()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiters_group_common_prefixes_and_pages_resume_after_them() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    fill(&s3, &keys()).await;
    let top = s3
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = top
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    let objs: Vec<_> = top.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(objs, ["space key", "top1", "top2"]);
    // One entry per page: a prefix counts once and the next page starts after it.
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let p = s3
            .list_objects_v2()
            .bucket("lst")
            .delimiter("/")
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        entries.extend(
            p.common_prefixes()
                .iter()
                .map(|c| c.prefix().unwrap().to_owned()),
        );
        entries.extend(p.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !p.is_truncated().unwrap() {
            break;
        }
        token = p.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(entries, ["a/", "b/", "space key", "top1", "top2"]);
    let b = s3
        .list_objects_v2()
        .bucket("lst")
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        b.common_prefixes()
            .iter()
            .map(|p| p.prefix().unwrap())
            .collect::<Vec<_>>(),
        ["b/c/"]
    );
    assert_eq!(
        b.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        ["b/d"]
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_markers_owner_url_encoding_and_versions() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    let all = keys();
    fill(&s3, &all).await;
    // v1 without a delimiter: continue from the last key.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let p = s3
            .list_objects()
            .bucket("lst")
            .max_keys(10)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(
            p.contents().iter().all(|o| o.owner().is_some()),
            "v1 always names the owner"
        );
        seen.extend(p.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !p.is_truncated().unwrap() {
            break;
        }
        assert!(p.next_marker().is_none());
        marker = seen.last().cloned();
    }
    assert_eq!(seen, all);
    let d = s3
        .list_objects()
        .bucket("lst")
        .delimiter("/")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(d.next_marker(), Some("a/"));

    let v2 = s3
        .list_objects_v2()
        .bucket("lst")
        .prefix("top")
        .send()
        .await
        .unwrap();
    assert!(v2.contents().iter().all(|o| o.owner().is_none()));
    let v2 = s3
        .list_objects_v2()
        .bucket("lst")
        .prefix("top")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert!(v2.contents().iter().all(|o| o.owner().is_some()));

    let enc = s3
        .list_objects_v2()
        .bucket("lst")
        .prefix("space")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(enc.contents()[0].key(), Some("space%20key"));

    let versions = s3
        .list_object_versions()
        .bucket("lst")
        .prefix("b/")
        .send()
        .await
        .unwrap();
    let v: Vec<_> = versions
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap(),
                v.version_id().unwrap(),
                v.is_latest().unwrap(),
            )
        })
        .collect();
    assert_eq!(v.len(), 6);
    assert!(v.iter().all(|(_, id, latest)| *id == "null" && *latest));
    let page = s3
        .list_object_versions()
        .bucket("lst")
        .max_keys(20)
        .send()
        .await
        .unwrap();
    assert!(page.is_truncated().unwrap());
    assert_eq!(page.next_version_id_marker(), Some("null"));
    let rest = s3
        .list_object_versions()
        .bucket("lst")
        .key_marker(page.next_key_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.versions().len() + rest.versions().len(), all.len());
    node.stop().await.unwrap();
}
