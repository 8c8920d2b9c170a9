//! Multipart uploads through the engine handle. Upload and part records live in the
//! catalog, so an upload survives a restart; part bodies go to the bucket's shard like
//! a PUT's, and a part is recorded only after its chunks are durable.

use super::upload_pages::upload_info;
use super::{Engine, hashing_forward, join};
use crate::api::{
    BodyReceiver, ByteRange, ObjectInfo, PartInfo, PutOptions, UploadInfo, UploadListing,
    UploadPage, body_channel, now_ms,
};
use crate::catalog::{Catalog, CatalogError, PartRecord, UploadRecord};
use crate::error::{EngineError, EngineResult};
use crate::format::{ChecksumAlgorithm, ChecksumType, PartBody, UploadTemplate};
use crate::mst::validate_key;
use crate::shard::{CompleteOptions, CompletePart, MAX_PARTS, StoredPart};
use std::sync::Arc;

/// A new upload id: 128 random bits, hex.
fn new_upload_id() -> EngineResult<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| EngineError::Io {
        kind: std::io::ErrorKind::Other,
        message: format!("no randomness for an upload id: {e}"),
    })?;
    Ok(crate::hex::encode(&raw))
}

fn part_info(rec: &PartRecord) -> EngineResult<PartInfo> {
    let body = PartBody::decode(&rec.chunks)
        .map_err(|e| EngineError::Corrupt(format!("part {}: {e}", rec.part_number)))?;
    Ok(PartInfo {
        part_number: rec.part_number,
        size: rec.size_bytes,
        etag: crate::hex::encode(&rec.md5),
        checksum: body.checksum,
        mtime_ms: rec.created_ms,
    })
}

fn check_part_number(n: u32) -> EngineResult<()> {
    if (1..=MAX_PARTS).contains(&n) {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "Part number must be an integer between 1 and {MAX_PARTS}, inclusive."
        )))
    }
}

impl<C: Catalog + 'static> Engine<C> {
    /// Starts an upload of `key` whose object will carry `opts`' headers and metadata
    /// and, when asked, a checksum of `checksum`'s algorithm and type.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
        checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
    ) -> EngineResult<UploadInfo> {
        validate_key(key.as_bytes()).map_err(EngineError::InvalidKey)?;
        self.shard_of(bucket)?;
        let created_ms = now_ms();
        let template = UploadTemplate {
            manifest: opts.manifest(key.to_owned(), 0, [0; 16], None, created_ms, None),
            checksum,
        };
        let rec = UploadRecord {
            upload_id: new_upload_id()?,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            created_ms,
            template: template.encode(),
        };
        self.catalog.create_upload(rec.clone()).await?;
        upload_info(rec)
    }

    /// An upload of `bucket` (and of `key`, when given).
    pub async fn upload(
        &self,
        bucket: &str,
        key: Option<&str>,
        upload_id: &str,
    ) -> EngineResult<UploadInfo> {
        self.shard_of(bucket)?;
        let rec = self.catalog.upload(upload_id).await?;
        match rec {
            Some(r) if r.bucket == bucket && key.is_none_or(|k| k == r.key) => upload_info(r),
            _ => Err(EngineError::NoSuchUpload),
        }
    }

    /// Stores part `part_number` of an upload from a streamed body (a part uploaded
    /// again replaces the earlier one). The part's additional checksum is verified by
    /// the caller (`opts.late_checksum`) or, when the upload has an algorithm and the
    /// client sent none, computed here.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        opts: PutOptions,
        body: BodyReceiver,
    ) -> EngineResult<PartInfo> {
        check_part_number(part_number)?;
        let up = self.upload(bucket, Some(key), upload_id).await?;
        let id = self.shard_of(bucket)?;
        let mut opts = opts;
        let compute = match (&opts.late_checksum, up.template.checksum) {
            (None, Some((a, _))) => {
                let slot: crate::api::LateChecksum = Arc::default();
                opts.late_checksum = Some(slot.clone());
                Some((a, slot))
            }
            _ => None,
        };
        let want_sha = opts.content_sha256.is_some();
        let (forward, rx, drx) = hashing_forward(body, want_sha, compute);
        let b = bucket.to_owned();
        let store = self.call(id, move |s| async move {
            s.store_part(&b, opts, rx, Some(drx)).await
        });
        let stored = join(forward, store).await.1?;
        self.record_part(&up, part_number, stored).await
    }

    /// Stores part `part_number` of an upload from the bytes `[start, end)` of `src`
    /// (looked up by the caller in `src_bucket`). On the same shard the part reuses the
    /// source's chunks; across shards the bytes stream from one to the other.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        src_bucket: &str,
        src: &ObjectInfo,
        (start, end): (u64, u64),
    ) -> EngineResult<PartInfo> {
        check_part_number(part_number)?;
        if start > end || end > src.manifest.size {
            return Err(EngineError::InvalidArgument(format!(
                "Range specified is not valid for source object of size: {}",
                src.manifest.size
            )));
        }
        let up = self.upload(bucket, Some(key), upload_id).await?;
        let algorithm = up.template.checksum.map(|(a, _)| a);
        let id = self.shard_of(bucket)?;
        let stored = if self.shard_of(src_bucket)? == id {
            let (b, src) = (bucket.to_owned(), src.clone());
            self.call(id, move |s| async move {
                s.copy_part(&b, &src, start, end, algorithm).await
            })
            .await?
        } else {
            self.copy_part_across(bucket, id, src_bucket, src, (start, end), algorithm)
                .await?
        };
        self.record_part(&up, part_number, stored).await
    }

    /// A part copied from another shard: the range streams out of the source shard
    /// and into this one as an uploaded part's body.
    async fn copy_part_across(
        &self,
        bucket: &str,
        id: u32,
        src_bucket: &str,
        src: &ObjectInfo,
        (start, end): (u64, u64),
        algorithm: Option<ChecksumAlgorithm>,
    ) -> EngineResult<StoredPart> {
        let body = if end > start {
            let range = ByteRange::FromTo {
                first: start,
                last: end - 1,
            };
            self.get_object_at(src_bucket, src, Some(range)).await?.body
        } else {
            body_channel().1
        };
        let slot: crate::api::LateChecksum = Arc::default();
        let opts = PutOptions {
            content_length: Some(end - start),
            late_checksum: algorithm.map(|_| slot.clone()),
            ..PutOptions::default()
        };
        let (forward, rx, drx) = hashing_forward(body, false, algorithm.map(|a| (a, slot)));
        let b = bucket.to_owned();
        let store = self.call(id, move |s| async move {
            s.store_part(&b, opts, rx, Some(drx)).await
        });
        join(forward, store).await.1
    }

    /// Records a durable part in the catalog; fails with `NoSuchUpload` if the upload
    /// was completed or aborted meanwhile.
    async fn record_part(
        &self,
        up: &UploadInfo,
        part_number: u32,
        stored: StoredPart,
    ) -> EngineResult<PartInfo> {
        let rec = PartRecord {
            upload_id: up.upload_id.clone(),
            part_number,
            size_bytes: stored.size,
            md5: stored.md5,
            chunks: stored.body.encode(),
            created_ms: now_ms(),
        };
        match self.catalog.put_part(rec.clone()).await {
            Ok(()) => part_info(&rec),
            Err(CatalogError::NotFound(_)) => Err(EngineError::NoSuchUpload),
            Err(e) => Err(e.into()),
        }
    }

    /// Completes an upload from the parts named, in order; the object becomes visible
    /// in one group commit. A repeated Complete of the same upload is answered with the
    /// object it made while the key still holds it.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        opts: CompleteOptions,
    ) -> EngineResult<ObjectInfo> {
        let id = self.shard_of(bucket)?;
        let (b, k, u) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.call(id, move |s| async move {
            s.complete_upload(&b, &k, &u, parts, opts).await
        })
        .await
    }

    /// Aborts an upload: it and its parts are gone, their chunks unreferenced.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> EngineResult<()> {
        let id = self.shard_of(bucket)?;
        let (b, k, u) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.call(id, move |s| async move { s.abort_upload(&b, &k, &u).await })
            .await
    }

    /// An upload and its parts, by part number.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> EngineResult<(UploadInfo, Vec<PartInfo>)> {
        let up = self.upload(bucket, Some(key), upload_id).await?;
        let parts = self.catalog.parts(upload_id).await?;
        let parts = parts.iter().map(part_info).collect::<EngineResult<_>>()?;
        Ok((up, parts))
    }

    /// One ListMultipartUploads page of a bucket's uploads (see
    /// [`super::upload_pages`]): costs the page, not the bucket's uploads.
    pub async fn list_uploads_page(
        &self,
        bucket: &str,
        listing: &UploadListing,
    ) -> EngineResult<UploadPage> {
        self.shard_of(bucket)?;
        super::upload_pages::list_upload_page(self.catalog.as_ref(), bucket, listing).await
    }

    /// A bucket's uploads, by (key, creation time, upload id).
    pub async fn list_uploads(&self, bucket: &str) -> EngineResult<Vec<UploadInfo>> {
        self.shard_of(bucket)?;
        self.catalog
            .uploads(bucket)
            .await?
            .into_iter()
            .map(upload_info)
            .collect()
    }

    /// Aborts every upload started at or before `cutoff_ms` (an upload being completed
    /// is left to its Complete). Returns how many were aborted.
    pub async fn expire_uploads(&self, cutoff_ms: u64) -> EngineResult<usize> {
        let mut n = 0;
        for bucket in self.catalog.buckets().await? {
            for up in self.catalog.uploads(&bucket.name).await? {
                if up.created_ms > cutoff_ms {
                    continue;
                }
                match self.abort_upload(&up.bucket, &up.key, &up.upload_id).await {
                    Ok(()) => {
                        tracing::info!(bucket = %up.bucket, upload = %up.upload_id, "upload expired");
                        n += 1;
                    }
                    Err(EngineError::NoSuchUpload) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Drops every upload of a bucket (after the bucket itself was deleted).
    pub(super) async fn drop_uploads(&self, bucket: &str) -> EngineResult<()> {
        for up in self.catalog.uploads(bucket).await? {
            match self.catalog.remove_upload(&up.upload_id).await {
                Ok(()) | Err(CatalogError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
