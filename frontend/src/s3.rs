//! The S3 operations on top of the engine: bucket operations here, object operations
//! in `objects.rs`, listings in `list.rs`. Operations not implemented by ingot-engine
//! fall to s3s's defaults, which answer `NotImplemented`.

use crate::error::s3_error;
use crate::request_metrics::Metrics;
use crate::settings::{self, AclHeaders, not_configured};
use engine::{Engine, EngineError};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The engine, once recovery has finished (requests before that get 503).
pub type EngineSlot = Arc<OnceLock<Arc<Engine>>>;

/// ingot-engine's implementation of the S3 trait.
#[derive(Debug, Clone)]
pub struct IngotS3 {
    pub(crate) engine: EngineSlot,
    pub(crate) region: String,
    pub(crate) metrics: Arc<Metrics>,
    /// The owner every bucket and object reports (one account per node).
    pub(crate) owner_id: String,
}

impl IngotS3 {
    pub fn new(
        engine: EngineSlot,
        region: String,
        metrics: Arc<Metrics>,
        access_key: &str,
    ) -> Self {
        // A stable owner id derived from the root key, not the key itself.
        let digest = md5::Md5::digest(access_key.as_bytes());
        let owner_id = engine::hex::encode(&digest);
        Self {
            engine,
            region,
            metrics,
            owner_id,
        }
    }

    pub(crate) fn engine(&self) -> S3Result<&Arc<Engine>> {
        self.engine.get().ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "The node is recovering its storage; retry shortly.",
            )
        })
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner {
            display_name: Some("ingot".to_owned()),
            id: Some(self.owner_id.clone()),
        }
    }

    fn is_us_east_1(&self) -> bool {
        self.region == "us-east-1"
    }
}

use md5::Digest as _;

/// Milliseconds since the epoch as an S3 timestamp.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn engine_err(e: EngineError) -> S3Error {
    s3_error(e)
}

pub(crate) fn invalid_argument(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg.into())
}

#[async_trait::async_trait]
impl s3s::S3 for IngotS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let all = self.engine()?.list_buckets().await.map_err(engine_err)?;
        let input = req.input;
        let max = match input.max_buckets {
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(invalid_argument("max-buckets must be between 1 and 10000"));
            }
            Some(n) => n as usize,
            None => usize::MAX,
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.continuation_token.clone().unwrap_or_default();
        let mut names: Vec<_> = all
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix) && b.name.as_str() > after.as_str())
            .collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        let truncated = names.len() > max;
        names.truncate(max);
        let next = truncated
            .then(|| names.last().map(|b| b.name.clone()))
            .flatten();
        let buckets = names
            .into_iter()
            .map(|b| Bucket {
                bucket_region: Some(self.region.clone()),
                creation_date: Some(timestamp(b.created_ms)),
                name: Some(b.name),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token: next,
            owner: Some(self.owner()),
            prefix: input.prefix,
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        if let Some(c) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && c.as_str() != self.region
            && !(c.as_str().is_empty() && self.is_us_east_1())
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidLocationConstraint,
                format!(
                    "The specified location-constraint {} is not valid for this endpoint, whose region is {}.",
                    c.as_str(),
                    self.region
                ),
            ));
        }
        self.check_bucket_acl(&AclHeaders {
            canned: input.acl.as_ref().map(BucketCannedACL::as_str),
            full_control: input.grant_full_control.as_deref(),
            others: [
                input.grant_read.as_deref(),
                input.grant_read_acp.as_deref(),
                input.grant_write.as_deref(),
                input.grant_write_acp.as_deref(),
            ],
        })?;
        if input
            .object_ownership
            .as_ref()
            .is_some_and(|o| o.as_str() != ObjectOwnership::BUCKET_OWNER_ENFORCED)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Only the BucketOwnerEnforced object ownership is supported: ACLs are disabled.",
            ));
        }
        if input.object_lock_enabled_for_bucket == Some(true) {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Object Lock is not supported.",
            ));
        }
        let output = CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        };
        match self.engine()?.create_bucket(&input.bucket).await {
            Ok(()) => Ok(S3Response::new(output)),
            // us-east-1 answers a re-create of your own bucket with 200 (legacy
            // behaviour kept by AWS); every other region with BucketAlreadyOwnedByYou.
            Err(EngineError::BucketAlreadyExists(_)) if self.is_us_east_1() => {
                Ok(S3Response::new(output))
            }
            Err(e) => Err(engine_err(e)),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.engine()?
            .head_bucket(&req.input.bucket)
            .await
            .map_err(engine_err)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.engine()?
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(engine_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.engine()?
            .head_bucket(&req.input.bucket)
            .await
            .map_err(engine_err)?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint =
            (!self.is_us_east_1()).then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.engine()?
            .head_bucket(&req.input.bucket)
            .await
            .map_err(engine_err)?;
        // Versioning was never enabled: the answer has no Status element.
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.put(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.get(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head(req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.attributes(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_many(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_v1(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_v2(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.list_versions(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.upload_part_copy(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_upload(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_uploads(req).await
    }

    // Settings ingot-engine does not keep (settings.rs): ACLs read as the owner's full
    // control and cannot be set; configurations read as never set.

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        let (owner, grants) = self.owner_acl();
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(grants),
            owner: Some(owner),
        }))
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        self.refuse_acl()
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let i = &req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let (owner, grants) = self.owner_acl();
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(grants),
            owner: Some(owner),
            request_charged: None,
        }))
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let i = &req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        self.refuse_acl()
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(settings::ownership_controls()),
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = &req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(S3Response::new(GetObjectTaggingOutput::default()))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = &req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(S3ErrorCode::NoSuchTagSet, "tag set"))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::NoSuchCORSConfiguration,
            "CORS configuration",
        ))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::NoSuchLifecycleConfiguration,
            "lifecycle configuration",
        ))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(S3ErrorCode::NoSuchBucketPolicy, "policy"))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
            "server-side encryption configuration",
        ))
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(settings::no_public_access_block())
    }

    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::NoSuchWebsiteConfiguration,
            "website configuration",
        ))
    }

    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::ReplicationConfigurationNotFoundError,
            "replication configuration",
        ))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Err(not_configured(
            S3ErrorCode::ObjectLockConfigurationNotFoundError,
            "object lock configuration",
        ))
    }

    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLoggingOutput::default()))
    }

    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(
            GetBucketNotificationConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketRequestPaymentOutput {
            payer: Some(Payer::from_static(Payer::BUCKET_OWNER)),
        }))
    }

    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(
            GetBucketAccelerateConfigurationOutput::default(),
        ))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    }

    async fn delete_bucket_website(
        &self,
        req: S3Request<DeleteBucketWebsiteInput>,
    ) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketWebsiteOutput {}))
    }

    async fn delete_bucket_replication(
        &self,
        req: S3Request<DeleteBucketReplicationInput>,
    ) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketReplicationOutput {}))
    }
}
