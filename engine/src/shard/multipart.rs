//! Multipart uploads on the shard that owns the bucket.
//!
//! - A part's body is chunked and appended to the data plane like a PUT's, then made
//!   durable by a group commit that changes nothing ([`OpKind::Sync`]); only then does
//!   the caller record the part in the catalog and acknowledge it.
//! - UploadPartCopy builds the part from the source's chunks: chunks wholly inside the
//!   range are reused, only the partial chunks at its ends are written again.
//! - Complete builds the object's chunk index from the parts' runs (no body byte is
//!   read or copied) and commits manifest and index in one group commit; the upload's
//!   record is removed after that commit is durable. Complete and Abort of one upload
//!   are serialized on this thread: an Abort racing a Complete loses, a second Complete
//!   waits for the first and is then answered with its object.

use super::Shard;
use super::objects::{check_key, corrupt};
use super::op::OpKind;
use crate::api::{BodyDigests, BodyReceiver, ObjectInfo, PutCondition, PutOptions, now_ms};
use crate::block::cid_raw;
use crate::catalog::{Catalog, CatalogError, PartRecord, UploadRecord};
use crate::checksum::{ChecksumHasher, combine_parts};
use crate::error::{EngineError, EngineResult};
use crate::format::{
    Checksum, ChecksumAlgorithm, ChecksumType, ChunkRef, PartBody, Run, UploadTemplate,
    build_chunk_index,
};
use crate::io::Disk;
use cid::Cid;
use md5::Digest as _;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::{Notify, oneshot};

/// Every part but the last must be at least this large.
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// Part numbers run from 1 to this.
pub const MAX_PARTS: u32 = 10_000;

/// A part whose chunks are durable, ready for its catalog record.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub size: u64,
    pub md5: [u8; 16],
    pub body: PartBody,
}

/// What a Complete request asks besides its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompleteOptions {
    /// The object checksum the client computed (`x-amz-checksum-*` on Complete).
    pub checksum: Option<Checksum>,
    /// A conditional write (`If-None-Match: *`, `If-Match`), checked in the group
    /// commit like a PUT's.
    pub condition: Option<PutCondition>,
    /// The object size the client expects (`x-amz-mp-object-size`).
    pub object_size: Option<u64>,
}

/// Multipart uploads whose Complete or Abort is running: an Abort of one loses, a
/// Complete of it waits for the one before it.
///
/// Both claim the upload before they look it up: a catalog call is a suspension point
/// (the catalog answers from its own thread), and an Abort or Complete that runs
/// meanwhile must see the claim. A claim ends when its [`Claim`] drops, so a request
/// whose future is dropped half-way does not leave the upload claimed.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    running: RefCell<HashSet<String>>,
    /// Raised when a claim ends.
    ended: Notify,
}

impl Completions {
    /// Claims `upload_id`, waiting while another Complete or Abort holds it.
    async fn claim(&self, upload_id: &str) -> Claim<'_> {
        loop {
            if let Some(claim) = self.try_claim(upload_id) {
                return claim;
            }
            self.ended.notified().await;
        }
    }

    /// Claims `upload_id` unless a Complete or Abort holds it.
    fn try_claim(&self, upload_id: &str) -> Option<Claim<'_>> {
        let added = self.running.borrow_mut().insert(upload_id.to_owned());
        added.then(|| Claim {
            owner: self,
            upload_id: upload_id.to_owned(),
        })
    }
}

/// A running Complete's or Abort's hold on its upload.
#[derive(Debug)]
struct Claim<'a> {
    owner: &'a Completions,
    upload_id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let removed = self.owner.running.borrow_mut().remove(&self.upload_id);
        assert!(removed, "a claim ended that was not held");
        self.owner.ended.notify_waiters();
    }
}

/// A part as a Complete request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    pub part_number: u32,
    /// The part's ETag (quotes allowed).
    pub etag: String,
    /// The part's checksum, when the client sent one (of the upload's algorithm).
    pub checksum: Option<Vec<u8>>,
}

/// Builds chunk runs from chunks in body order: a run's chunks all have its chunk size
/// except the last, so a chunk that does not fit the current run starts a new one.
#[derive(Debug, Default)]
struct RunBuilder {
    runs: Vec<Run>,
    offset: u64,
}

impl RunBuilder {
    fn push(&mut self, cid: Cid, len: u64) {
        if let Some(r) = self.runs.last_mut() {
            let last_len = r.len - (r.chunks.len() as u64 - 1) * r.chunk_size;
            if last_len == r.chunk_size && len <= r.chunk_size {
                r.chunks.push(cid);
                r.len += len;
                self.offset += len;
                return;
            }
        }
        self.runs.push(Run {
            offset: self.offset,
            len,
            chunk_size: len,
            chunks: vec![cid],
        });
        self.offset += len;
    }
}

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Stores an uploaded part's body and makes it durable.
    pub async fn store_part(
        &self,
        bucket: &str,
        opts: PutOptions,
        body: BodyReceiver,
        digests: Option<oneshot::Receiver<BodyDigests>>,
    ) -> EngineResult<StoredPart> {
        self.published(bucket)?;
        let mut opts = opts;
        // A part's chunks must be durable before its record: the data plane's sync.
        let body = self
            .ingest(
                &mut opts,
                body,
                digests,
                super::objects::ChunkSink::DataPlane,
            )
            .await?;
        self.submit(bucket, OpKind::Sync).await?;
        self.metrics.parts.fetch_add(1, Relaxed);
        let runs = if body.run.len > 0 {
            vec![body.run]
        } else {
            Vec::new()
        };
        Ok(StoredPart {
            size: body.size,
            md5: body.md5,
            body: PartBody {
                runs,
                checksum: opts.checksum,
            },
        })
    }

    /// Makes a part of the bytes `[start, end)` of `src` (an object on this shard,
    /// looked up by the caller), reusing its chunks; computes `algorithm`'s checksum of
    /// the part when asked.
    pub async fn copy_part(
        &self,
        bucket: &str,
        src: &ObjectInfo,
        start: u64,
        end: u64,
        algorithm: Option<ChecksumAlgorithm>,
    ) -> EngineResult<StoredPart> {
        self.published(bucket)?;
        self.check_writable()?;
        let m = &src.manifest;
        let refs = match m.body {
            Some(root) if end > start => self.chunk_refs(root, start, end).await?,
            _ => Vec::new(),
        };
        let mut runs = RunBuilder::default();
        // The whole of a single-part object: its digests are known, nothing is read.
        let known_checksum = m
            .checksum
            .clone()
            .filter(|c| c.kind == ChecksumType::FullObject && Some(c.algorithm) == algorithm);
        if start == 0
            && end == m.size
            && m.parts.is_none()
            && (algorithm.is_none() || known_checksum.is_some())
        {
            for r in &refs {
                runs.push(r.cid, r.len);
            }
            self.metrics.parts.fetch_add(1, Relaxed);
            return Ok(StoredPart {
                size: end - start,
                md5: m.md5,
                body: PartBody {
                    runs: runs.runs,
                    checksum: known_checksum,
                },
            });
        }
        let mut md5 = md5::Md5::new();
        let mut hasher = algorithm.map(ChecksumHasher::new);
        let mut wrote = false;
        for r in refs {
            let data = self.read_block(&r.cid).await?;
            if data.len() as u64 != r.len {
                return Err(corrupt(format!("chunk {} has the wrong length", r.cid)));
            }
            let from = (start.max(r.offset) - r.offset) as usize;
            let to = (end.min(r.offset + r.len) - r.offset) as usize;
            let piece = &data[from..to];
            md5.update(piece);
            if let Some(h) = &mut hasher {
                h.update(piece);
            }
            if from == 0 && to == data.len() {
                runs.push(r.cid, r.len);
            } else {
                let cid = cid_raw(piece);
                self.store_chunk(&cid, piece).await?;
                runs.push(cid, piece.len() as u64);
                wrote = true;
            }
        }
        if wrote {
            self.submit(bucket, OpKind::Sync).await?;
        }
        self.metrics.parts.fetch_add(1, Relaxed);
        Ok(StoredPart {
            size: end - start,
            md5: md5.finalize().into(),
            body: PartBody {
                runs: runs.runs,
                checksum: hasher.map(|h| Checksum {
                    algorithm: h.algorithm(),
                    kind: ChecksumType::FullObject,
                    value: h.finalize(),
                }),
            },
        })
    }

    /// The chunks holding the body bytes `[start, end)`, in order (reads index blocks
    /// only).
    async fn chunk_refs(&self, root: Cid, start: u64, end: u64) -> EngineResult<Vec<ChunkRef>> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(refs) = self.next_chunks(&mut stack, start, end).await? {
            out.extend(refs);
        }
        Ok(out)
    }

    /// Completes an upload: the object becomes visible in one group commit.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        opts: CompleteOptions,
    ) -> EngineResult<ObjectInfo> {
        check_key(key)?;
        self.published(bucket)?;
        // Claimed before the upload is looked up (see [`Completions`]).
        let _claim = self.completions.claim(upload_id).await;
        let upload = self
            .catalog
            .upload(upload_id)
            .await?
            .filter(|u| u.bucket == bucket && u.key == key);
        let Some(upload) = upload else {
            return self.completed_before(bucket, key, upload_id).await;
        };
        self.complete_with(bucket, upload, parts, opts).await
    }

    /// A Complete of an upload that is gone: answered with the object it made, if the
    /// key still holds it.
    async fn completed_before(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> EngineResult<ObjectInfo> {
        match self.head_object(bucket, key).await {
            Ok(info) if info.manifest.upload_id.as_deref() == Some(upload_id) => Ok(info),
            Ok(_) | Err(EngineError::NoSuchKey) => Err(EngineError::NoSuchUpload),
            Err(e) => Err(e),
        }
    }

    async fn complete_with(
        &self,
        bucket: &str,
        upload: UploadRecord,
        request: Vec<CompletePart>,
        opts: CompleteOptions,
    ) -> EngineResult<ObjectInfo> {
        let template = UploadTemplate::decode(&upload.template)
            .map_err(|e| corrupt(format!("upload {}: {e}", upload.upload_id)))?;
        let stored: HashMap<u32, PartRecord> = self
            .catalog
            .parts(&upload.upload_id)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let parts = select_parts(&stored, &request)?;
        let checksum = object_checksum(template.checksum, &parts, opts.checksum)?;
        let total: u64 = parts.iter().map(|(rec, _)| rec.size_bytes).sum();
        if opts.object_size.is_some_and(|n| n != total) {
            return Err(EngineError::InvalidRequest(format!(
                "The object size is {total} bytes, not the {} bytes x-amz-mp-object-size names.",
                opts.object_size.unwrap_or_default()
            )));
        }
        let mut runs = Vec::new();
        let mut sizes = Vec::with_capacity(parts.len());
        let mut md5s = Vec::with_capacity(16 * parts.len());
        let mut offset = 0u64;
        for (rec, body) in &parts {
            for r in &body.runs {
                runs.push(Run {
                    offset: offset + r.offset,
                    ..r.clone()
                });
            }
            offset += rec.size_bytes;
            sizes.push(rec.size_bytes);
            md5s.extend_from_slice(&rec.md5);
        }
        let mut blocks = Vec::new();
        let root = build_chunk_index(runs, &mut blocks);
        let md5: [u8; 16] = md5::Md5::digest(&md5s).into();
        let mut m = template.manifest;
        m.key = upload.key.clone();
        m.size = offset;
        m.md5 = md5;
        m.etag = format!("{}-{}", crate::hex::encode(&md5), parts.len());
        m.sha256 = None;
        m.mtime_ms = now_ms();
        m.body = root;
        m.parts = Some(sizes);
        m.upload_id = Some(upload.upload_id.clone());
        m.checksum = checksum;
        let info = self
            .commit_manifest(bucket, m, blocks, opts.condition)
            .await?;
        self.metrics.uploads_completed.fetch_add(1, Relaxed);
        match self.catalog.remove_upload(&upload.upload_id).await {
            Ok(()) | Err(CatalogError::NotFound(_)) => {}
            // The object is committed; the record is left to expire.
            Err(e) => tracing::warn!(
                shard = self.id,
                bucket,
                upload = %upload.upload_id,
                error = %e,
                "completed upload's record was not removed"
            ),
        }
        Ok(info)
    }

    /// Aborts an upload; its parts' chunks become unreferenced.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> EngineResult<()> {
        // Claimed like a Complete, for the same reason: an Abort loses to a running
        // Complete, and a Complete that comes while the Abort runs waits for it.
        let Some(_claim) = self.completions.try_claim(upload_id) else {
            return Err(EngineError::NoSuchUpload);
        };
        let upload = self.catalog.upload(upload_id).await?;
        if !upload.is_some_and(|u| u.bucket == bucket && u.key == key) {
            return Err(EngineError::NoSuchUpload);
        }
        match self.catalog.remove_upload(upload_id).await {
            Ok(()) => Ok(()),
            Err(CatalogError::NotFound(_)) => Err(EngineError::NoSuchUpload),
            Err(e) => Err(e.into()),
        }
    }
}

/// The stored parts a Complete names, in its order, after checking order, ETags,
/// checksums and sizes.
fn select_parts<'a>(
    stored: &'a HashMap<u32, PartRecord>,
    request: &[CompletePart],
) -> EngineResult<Vec<(&'a PartRecord, PartBody)>> {
    let mut out = Vec::with_capacity(request.len());
    let mut prev = 0u32;
    for want in request {
        if want.part_number <= prev {
            return Err(EngineError::InvalidPartOrder);
        }
        prev = want.part_number;
        let invalid = || {
            EngineError::InvalidPart(format!(
                "One or more of the specified parts could not be found. The part may not have \
                 been uploaded, or the specified entity tag may not match the part's entity \
                 tag (part {}).",
                want.part_number
            ))
        };
        let rec = stored.get(&want.part_number).ok_or_else(invalid)?;
        if crate::hex::encode(&rec.md5) != want.etag.trim().trim_matches('"') {
            return Err(invalid());
        }
        let body = PartBody::decode(&rec.chunks)
            .map_err(|e| corrupt(format!("part {}: {e}", want.part_number)))?;
        if let Some(c) = &want.checksum
            && body.checksum.as_ref().map(|s| &s.value) != Some(c)
        {
            return Err(invalid());
        }
        out.push((rec, body));
    }
    let last = out.len().saturating_sub(1);
    for (i, (rec, _)) in out.iter().enumerate() {
        if i < last && rec.size_bytes < MIN_PART_BYTES {
            return Err(EngineError::EntityTooSmall {
                part: rec.part_number,
                size: rec.size_bytes,
            });
        }
    }
    Ok(out)
}

/// The object's checksum: of the algorithm and type declared at creation (or, when none
/// was, of the one the Complete request expects), made from the parts' checksums, and
/// checked against the expected value.
fn object_checksum(
    declared: Option<(ChecksumAlgorithm, ChecksumType)>,
    parts: &[(&PartRecord, PartBody)],
    expected: Option<Checksum>,
) -> EngineResult<Option<Checksum>> {
    let (algorithm, kind) = match (declared, &expected) {
        (Some(d), _) => d,
        (None, Some(e)) => (e.algorithm, e.kind),
        (None, None) => return Ok(None),
    };
    let mut values = Vec::with_capacity(parts.len());
    for (rec, body) in parts {
        match &body.checksum {
            Some(c) if c.algorithm == algorithm => values.push((&c.value[..], rec.size_bytes)),
            _ => {
                return Err(EngineError::InvalidPart(format!(
                    "Part {} has no {} checksum.",
                    rec.part_number,
                    algorithm.as_str()
                )));
            }
        }
    }
    let combined = combine_parts(algorithm, kind, &values).ok_or_else(|| {
        EngineError::InvalidArgument(format!(
            "The {} checksum type is not supported with {}.",
            kind.as_str(),
            algorithm.as_str()
        ))
    })?;
    if let Some(e) = expected {
        if e.algorithm != algorithm || e.kind != kind {
            return Err(EngineError::InvalidArgument(format!(
                "The upload was created with {} {} checksums.",
                algorithm.as_str(),
                kind.as_str()
            )));
        }
        if e.value != combined.value {
            return Err(EngineError::BadDigest);
        }
    }
    Ok(Some(combined))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_restart_after_a_short_chunk() {
        let c = |i: u8| cid_raw(&[i]);
        let mut b = RunBuilder::default();
        // A partial head chunk, three full reused chunks, a partial tail.
        b.push(c(0), 3);
        b.push(c(1), 8);
        b.push(c(2), 8);
        b.push(c(3), 8);
        b.push(c(4), 5);
        b.push(c(5), 2);
        let shape: Vec<(u64, u64, u64, usize)> = b
            .runs
            .iter()
            .map(|r| (r.offset, r.len, r.chunk_size, r.chunks.len()))
            .collect();
        assert_eq!(shape, vec![(0, 3, 3, 1), (3, 29, 8, 4), (32, 2, 2, 1)]);
        for r in &b.runs {
            assert_eq!(r.len.div_ceil(r.chunk_size), r.chunks.len() as u64);
        }
    }
}
