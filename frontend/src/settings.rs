//! Bucket and object settings ingot-engine does not keep, answered the way AWS answers
//! for a bucket that never had them.
//!
//! - ACLs are disabled, as on an AWS bucket whose Object Ownership is "bucket owner
//!   enforced" (the default for new buckets since April 2023): reading an ACL shows
//!   full control for the owner; setting one fails with `AccessControlListNotSupported`;
//!   a write may carry only an ACL that gives the owner full control (`private` and
//!   `bucket-owner-full-control` both do, since every writer here is the owner).
//! - A bucket has no tags, CORS, lifecycle, policy, encryption, public-access-block,
//!   website, replication or object-lock configuration: reading one answers the
//!   "not found" error AWS gives, deleting one succeeds (there is nothing to delete).
//!   Logging, notifications, request payment and transfer acceleration read back as
//!   their defaults.
//! - Objects carry no tags: reading them gives an empty set, deleting them succeeds,
//!   and a write that asks for tags is refused.
//!
//! - Objects are stored unencrypted, in one storage class: a write asking for
//!   server-side encryption, or for a class other than STANDARD, is refused rather
//!   than acknowledged as if it had been honoured.
//!
//! Setting any of these stays `NotImplemented`: a setting that was accepted and then
//! not enforced would mislead the client that set it.

use crate::handler::IngotS3;
use crate::handler::check_version;
use crate::handler::engine_err;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

/// What AWS says when a request sets an ACL on a bucket with ACLs disabled.
const ACLS_DISABLED: &str = "The bucket does not allow ACLs.";

/// The "not found" answer for a bucket configuration that was never set.
pub(crate) fn not_configured(code: S3ErrorCode, what: &str) -> S3Error {
    let mut e = S3Error::with_message(code, format!("The bucket has no {what}."));
    e.set_status_code(hyper::StatusCode::NOT_FOUND);
    e
}

/// The S3 error code AWS uses for a bucket without a public access block (s3s has no
/// variant of its own for it).
pub(crate) fn no_public_access_block() -> S3Error {
    not_configured(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "public access block configuration",
    )
}

/// The ACL headers of an object write (PutObject, CopyObject, CreateMultipartUpload).
macro_rules! object_acl {
    ($input:expr) => {
        $crate::settings::AclHeaders {
            canned: $input.acl.as_ref().map(|a| a.as_str()),
            full_control: $input.grant_full_control.as_deref(),
            others: [
                $input.grant_read.as_deref(),
                $input.grant_read_acp.as_deref(),
                $input.grant_write_acp.as_deref(),
                None,
            ],
        }
    };
}
pub(crate) use object_acl;

/// The encryption and storage-class headers of an object write (PutObject, CopyObject,
/// CreateMultipartUpload).
macro_rules! object_storage {
    ($input:expr) => {
        $crate::settings::StorageHeaders {
            encryption: $input.server_side_encryption.as_ref().map(|s| s.as_str()),
            kms_key: $input.ssekms_key_id.is_some(),
            customer_key: $input.sse_customer_algorithm.is_some()
                || $input.sse_customer_key.is_some(),
            storage_class: $input.storage_class.as_ref().map(|s| s.as_str()),
        }
    };
}
pub(crate) use object_storage;

/// What an object write asks of encryption and storage class.
pub(crate) struct StorageHeaders<'a> {
    pub encryption: Option<&'a str>,
    pub kms_key: bool,
    pub customer_key: bool,
    pub storage_class: Option<&'a str>,
}

/// Refuses a write asking for encryption at rest or a storage class other than
/// STANDARD.
pub(crate) fn check_storage(h: &StorageHeaders<'_>) -> S3Result<()> {
    if h.customer_key {
        // What AWS answers for customer-provided keys over plain HTTP, which is all
        // this endpoint speaks.
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
        ));
    }
    if h.encryption.is_some() || h.kms_key {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Server-side encryption is not supported: objects are stored unencrypted, and the object was not written.",
        ));
    }
    match h.storage_class {
        None | Some(StorageClass::STANDARD) => Ok(()),
        Some(other) => Err(S3Error::with_message(
            S3ErrorCode::InvalidStorageClass,
            format!("The storage class {other} is not offered: every object is STANDARD."),
        )),
    }
}

/// The ACL-carrying headers of a write (`x-amz-acl` and the `x-amz-grant-*` family).
pub(crate) struct AclHeaders<'a> {
    pub canned: Option<&'a str>,
    pub full_control: Option<&'a str>,
    pub others: [Option<&'a str>; 4],
}

impl IngotS3 {
    /// Refuses a write whose ACL gives anyone but the owner any access (with ACLs
    /// disabled, only an ACL that changes nothing is accepted).
    pub(crate) fn check_write_acl(&self, h: &AclHeaders<'_>) -> S3Result<()> {
        let canned_ok = h.canned.is_none_or(|a| {
            a == ObjectCannedACL::PRIVATE || a == ObjectCannedACL::BUCKET_OWNER_FULL_CONTROL
        });
        let grants_ok = h.others.iter().all(Option::is_none)
            && h.full_control.is_none_or(|g| self.grants_only_owner(g));
        if canned_ok && grants_ok {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::AccessControlListNotSupported,
                ACLS_DISABLED,
            ))
        }
    }

    /// Whether an `x-amz-grant-*` value names only the owner (`id="…"`, comma-separated).
    fn grants_only_owner(&self, value: &str) -> bool {
        value.split(',').all(|g| {
            let g = g.trim();
            g.strip_prefix("id=")
                .map(|id| id.trim_matches('"'))
                .is_some_and(|id| id == self.owner_id)
        })
    }

    /// Refuses a bucket created with an ACL that gives anyone but the owner access.
    pub(crate) fn check_bucket_acl(&self, h: &AclHeaders<'_>) -> S3Result<()> {
        let canned_ok = h.canned.is_none_or(|a| a == BucketCannedACL::PRIVATE);
        if canned_ok
            && self
                .check_write_acl(&AclHeaders { canned: None, ..*h })
                .is_ok()
        {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting.",
            ))
        }
    }

    /// The only ACL there is: the owner has full control.
    pub(crate) fn owner_acl(&self) -> (Owner, Grants) {
        let owner = self.owner();
        let grant = Grant {
            grantee: Some(Grantee {
                display_name: owner.display_name.clone(),
                email_address: None,
                id: owner.id.clone(),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        };
        (owner, vec![grant])
    }

    /// Fails with `NoSuchBucket` unless the bucket exists.
    pub(crate) async fn bucket_exists(&self, bucket: &str) -> S3Result<()> {
        self.engine()?
            .head_bucket(bucket)
            .await
            .map(drop)
            .map_err(engine_err)
    }

    /// Fails with `NoSuchBucket` or `NoSuchKey` unless the object exists.
    pub(crate) async fn object_exists(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<()> {
        check_version(version_id)?;
        self.engine()?
            .head_object(bucket, key)
            .await
            .map(drop)
            .map_err(engine_err)
    }

    /// Setting an ACL on an existing bucket or object: refused, ACLs are disabled.
    pub(crate) fn refuse_acl<T>(&self) -> S3Result<T> {
        Err(S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            ACLS_DISABLED,
        ))
    }
}

/// Object tags are not kept, so a write that asks for them is refused rather than
/// acknowledged without them.
pub(crate) fn refuse_tags(tagging: Option<&str>) -> S3Result<()> {
    match tagging {
        Some(t) if !t.is_empty() => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Object tags are not supported: the object was not written.",
        )),
        _ => Ok(()),
    }
}

/// The default ownership setting every bucket has.
pub(crate) fn ownership_controls() -> OwnershipControls {
    OwnershipControls {
        rules: vec![OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
        }],
    }
}
