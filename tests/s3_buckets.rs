//! Bucket operations through aws-sdk-s3 against a real node: create (name rules,
//! re-create), head, list, location, versioning, delete (only when empty).

mod common;

use aws_sdk_s3::types::BucketVersioningStatus;
use common::{client, code, start, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle_matches_s3() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta.two").send().await.unwrap();
    // us-east-1 answers a re-create of your own bucket with 200, as AWS does there.
    s3.create_bucket().bucket("alpha").send().await.unwrap();

    let listed = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alpha", "beta.two"]);
    assert!(listed.buckets()[0].creation_date().is_some());
    assert!(listed.owner().and_then(|o| o.id()).is_some());

    let head = s3.head_bucket().bucket("alpha").send().await.unwrap();
    assert_eq!(head.bucket_region(), Some("us-east-1"));
    let e = s3.head_bucket().bucket("missing").send().await.unwrap_err();
    assert_eq!(status(&e), 404);

    let loc = s3
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|c| c.as_str().is_empty())
    );
    let v = s3
        .get_bucket_versioning()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), None::<&BucketVersioningStatus>);

    s3.put_object()
        .bucket("alpha")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let e = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("BucketNotEmpty", 409));
    s3.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let e = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let names: Vec<_> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["beta.two"]);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bucket_names_are_refused_and_create_nothing() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    for bad in [
        "ab",
        "UPPER",
        "has_underscore",
        "-dash",
        "a..b",
        "192.168.1.1",
        "xn--abc",
        &"a".repeat(64),
    ] {
        let e = s3.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidBucketName", "{bad}");
    }
    assert!(s3.list_buckets().send().await.unwrap().buckets().is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_regions_answer_bucket_already_owned_by_you() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.region = "eu-west-3".into();
    let node = common::start_with(s).await;
    let http = aws_smithy_http_client::Builder::new().build_http();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("eu-west-3"))
        .endpoint_url(format!("http://{}", node.addr()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            common::ACCESS_KEY,
            common::SECRET_KEY,
            None,
            None,
            "t",
        ))
        .force_path_style(true)
        .http_client(http)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let cfg = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest3)
        .build();
    s3.create_bucket()
        .bucket("gamma")
        .create_bucket_configuration(cfg.clone())
        .send()
        .await
        .unwrap();
    let e = s3
        .create_bucket()
        .bucket("gamma")
        .create_bucket_configuration(cfg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("BucketAlreadyOwnedByYou", 409)
    );
    let loc = s3
        .get_bucket_location()
        .bucket("gamma")
        .send()
        .await
        .unwrap();
    assert_eq!(
        loc.location_constraint().map(|c| c.as_str()),
        Some("eu-west-3")
    );
    let wrong = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApSouth1)
        .build();
    let e = s3
        .create_bucket()
        .bucket("delta")
        .create_bucket_configuration(wrong)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidLocationConstraint");
    node.stop().await.unwrap();
}
