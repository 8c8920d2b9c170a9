//! Settings a node does not keep, through aws-sdk-s3 against a real node, answered as
//! AWS answers a bucket that never had them: ACLs disabled (bucket owner enforced),
//! bucket configurations "not found", object tags empty. Writes that ask for an ACL
//! giving others access, or for tags, are refused and write nothing.

mod common;

use aws_sdk_s3::types::{
    BucketCannedAcl, ObjectCannedAcl, ObjectOwnership, Payer, Permission, Type,
};
use common::{client, code, start, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_read_as_owner_full_control_and_cannot_be_set() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("acl").send().await.unwrap();
    s3.put_object()
        .bucket("acl")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let owner = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .owner()
        .cloned()
        .unwrap();

    let acl = s3.get_bucket_acl().bucket("acl").send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), owner.id());
    let [grant] = acl.grants() else {
        panic!("one grant expected: {:?}", acl.grants())
    };
    assert_eq!(grant.permission(), Some(&Permission::FullControl));
    let grantee = grant.grantee().unwrap();
    assert_eq!(
        (grantee.r#type(), grantee.id()),
        (&Type::CanonicalUser, owner.id())
    );

    let acl = s3
        .get_object_acl()
        .bucket("acl")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    let e = s3
        .get_object_acl()
        .bucket("acl")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    let e = s3.get_bucket_acl().bucket("nope").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchBucket", 404));

    let e = s3
        .put_bucket_acl()
        .bucket("acl")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("AccessControlListNotSupported", 400)
    );
    let e = s3
        .put_object_acl()
        .bucket("acl")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("AccessControlListNotSupported", 400)
    );

    let own = s3
        .get_bucket_ownership_controls()
        .bucket("acl")
        .send()
        .await
        .unwrap();
    let rules = own.ownership_controls().unwrap().rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_take_only_acls_that_leave_the_owner_in_full_control() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    // Clients such as rclone may send `x-amz-acl: private` when they make a bucket
    // and write objects.
    s3.create_bucket()
        .bucket("acl-writes")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let owner_id = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .owner()
        .and_then(|o| o.id().map(str::to_owned))
        .unwrap();
    for (key, acl) in [
        ("private", ObjectCannedAcl::Private),
        ("bofc", ObjectCannedAcl::BucketOwnerFullControl),
    ] {
        s3.put_object()
            .bucket("acl-writes")
            .key(key)
            .acl(acl)
            .body(b"ok".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.put_object()
        .bucket("acl-writes")
        .key("grant")
        .grant_full_control(format!("id=\"{owner_id}\""))
        .body(b"ok".to_vec().into())
        .send()
        .await
        .unwrap();

    let e = s3
        .put_object()
        .bucket("acl-writes")
        .key("public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(b"no".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("AccessControlListNotSupported", 400)
    );
    let e = s3
        .put_object()
        .bucket("acl-writes")
        .key("granted")
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .body(b"no".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    let e = s3
        .copy_object()
        .bucket("acl-writes")
        .key("copied")
        .copy_source("acl-writes/private")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    let e = s3
        .create_multipart_upload()
        .bucket("acl-writes")
        .key("mp")
        .acl(ObjectCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    let e = s3
        .create_bucket()
        .bucket("public")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("InvalidBucketAclWithObjectOwnership", 400)
    );

    // Tags are not kept, so a write asking for them is refused.
    let e = s3
        .put_object()
        .bucket("acl-writes")
        .key("tagged")
        .tagging("a=b")
        .body(b"no".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NotImplemented", 501));

    // Nothing refused was written.
    assert_written_only(&s3, "acl-writes", &["bofc", "grant", "private"]).await;
    let e = s3.head_bucket().bucket("public").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_configurations_read_as_never_set() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("cfg").send().await.unwrap();

    macro_rules! not_found {
        ($call:expr, $code:expr) => {{
            let e = $call.bucket("cfg").send().await.unwrap_err();
            assert_eq!(
                (code(&e).as_str(), status(&e)),
                ($code, 404),
                "{}",
                stringify!($call)
            );
            let e = $call.bucket("nope").send().await.unwrap_err();
            assert_eq!(code(&e), "NoSuchBucket", "{}", stringify!($call));
        }};
    }
    not_found!(s3.get_bucket_tagging(), "NoSuchTagSet");
    not_found!(s3.get_bucket_cors(), "NoSuchCORSConfiguration");
    not_found!(
        s3.get_bucket_lifecycle_configuration(),
        "NoSuchLifecycleConfiguration"
    );
    not_found!(s3.get_bucket_policy(), "NoSuchBucketPolicy");
    not_found!(
        s3.get_bucket_encryption(),
        "ServerSideEncryptionConfigurationNotFoundError"
    );
    not_found!(
        s3.get_public_access_block(),
        "NoSuchPublicAccessBlockConfiguration"
    );
    not_found!(s3.get_bucket_website(), "NoSuchWebsiteConfiguration");
    not_found!(
        s3.get_bucket_replication(),
        "ReplicationConfigurationNotFoundError"
    );
    not_found!(
        s3.get_object_lock_configuration(),
        "ObjectLockConfigurationNotFoundError"
    );

    let logging = s3.get_bucket_logging().bucket("cfg").send().await.unwrap();
    assert!(logging.logging_enabled().is_none());
    let n = s3
        .get_bucket_notification_configuration()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    assert!(n.queue_configurations().is_empty() && n.topic_configurations().is_empty());
    let pay = s3
        .get_bucket_request_payment()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    assert_eq!(pay.payer(), Some(&Payer::BucketOwner));
    let acc = s3
        .get_bucket_accelerate_configuration()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    assert!(acc.status().is_none());

    // Deleting a configuration that was never set succeeds, as on AWS; the bucket is
    // untouched.
    s3.delete_bucket_tagging()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_cors().bucket("cfg").send().await.unwrap();
    s3.delete_bucket_lifecycle()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_policy()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_encryption()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_public_access_block()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_website()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_replication()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    let e = s3
        .delete_bucket_cors()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    s3.head_bucket().bucket("cfg").send().await.unwrap();
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_read_as_empty() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("tags").send().await.unwrap();
    s3.put_object()
        .bucket("tags")
        .key("k")
        .body(b"tagless".to_vec().into())
        .send()
        .await
        .unwrap();
    let t = s3
        .get_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(t.tag_set().is_empty());
    s3.delete_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(common::read_all(got).await, b"tagless");
    let e = s3
        .get_object_tagging()
        .bucket("tags")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    let e = s3
        .delete_object_tagging()
        .bucket("tags")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_and_other_storage_classes_are_refused_and_write_nothing() {
    use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("store").send().await.unwrap();
    s3.put_object()
        .bucket("store")
        .key("standard")
        .storage_class(StorageClass::Standard)
        .body(b"kept".to_vec().into())
        .send()
        .await
        .unwrap();

    for sse in [ServerSideEncryption::Aes256, ServerSideEncryption::AwsKms] {
        let e = s3
            .put_object()
            .bucket("store")
            .key("sse")
            .server_side_encryption(sse)
            .body(b"secret".to_vec().into())
            .send()
            .await
            .unwrap_err();
        assert_eq!((code(&e).as_str(), status(&e)), ("NotImplemented", 501));
    }
    let e = s3
        .put_object()
        .bucket("store")
        .key("ssec")
        .sse_customer_algorithm("AES256")
        .sse_customer_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        .sse_customer_key_md5("EKSiWTLnMDz2RkSMuf9ZBg==")
        .body(b"secret".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidRequest", 400));
    let e = s3
        .put_object()
        .bucket("store")
        .key("cold")
        .storage_class(StorageClass::Glacier)
        .body(b"cold".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("InvalidStorageClass", 400)
    );
    let e = s3
        .copy_object()
        .bucket("store")
        .key("copy")
        .copy_source("store/standard")
        .storage_class(StorageClass::StandardIa)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidStorageClass");
    let e = s3
        .create_multipart_upload()
        .bucket("store")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");

    assert_written_only(&s3, "store", &["standard"]).await;
    node.stop().await.unwrap();
}

/// The bucket holds exactly `keys` and no multipart upload: the refused writes wrote
/// nothing.
async fn assert_written_only(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[&str]) {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let got: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, keys);
    let uploads = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
}
