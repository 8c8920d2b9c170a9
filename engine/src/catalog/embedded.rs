//! The embedded catalog: one redb database file in the data directory. Every write is
//! one redb transaction committed with immediate durability (fsync) before the call
//! returns, which the lifecycle's mark-then-write ordering relies on.

use super::{
    AccessKey, BucketRecord, Catalog, CatalogError, CatalogResult, HeadCheckpoint, PartRecord,
    SegmentRecord, SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::segment::{Plane, SegmentId};
use cid::Cid;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::future::{Future, ready};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// name → (shard, created_ms)
const BUCKETS: TableDefinition<&str, (u32, u64)> = TableDefinition::new("buckets");
/// bucket → (commit CID bytes, seq, segment seq, offset)
const HEADS: TableDefinition<&str, (&[u8], u64, u64, u64)> = TableDefinition::new("heads");
/// (plane, shard, seq) → (state, size, sha256, location, created_ms, updated_ms)
type SegmentValue<'a> = (u8, u64, Option<&'a [u8]>, Option<&'a str>, u64, u64);
const SEGMENTS: TableDefinition<(u8, u32, u64), SegmentValue> = TableDefinition::new("segments");
/// upload id → (bucket, key, created_ms, template)
const UPLOADS: TableDefinition<&str, (&str, &str, u64, &[u8])> = TableDefinition::new("uploads");
/// (bucket, key, created_ms, upload id) → (): uploads in listing order
const UPLOADS_BY_BUCKET: TableDefinition<(&str, &str, u64, &str), ()> =
    TableDefinition::new("uploads_by_bucket");
/// (upload id, part number) → (size, md5, chunks, created_ms)
type PartValue<'a> = (u64, &'a [u8], &'a [u8], u64);
const PARTS: TableDefinition<(&str, u32), PartValue> = TableDefinition::new("parts");
/// access key id → (secret, created_ms)
const KEYS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("keys");

fn storage(e: impl Into<redb::Error>) -> CatalogError {
    CatalogError::Storage(e.into().to_string())
}

/// The redb-backed catalog.
#[derive(Debug)]
pub struct EmbeddedCatalog {
    db: Database,
}

impl EmbeddedCatalog {
    /// Opens (or creates) the catalog database at `path`, creating every table.
    pub fn open(path: &Path) -> CatalogResult<Self> {
        // Created here rather than by redb, so its mode is owner-only from the start
        // (the catalog holds access keys and their secrets).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::data_dir::FILE_MODE)
            .open(path)
            .map_err(|e| CatalogError::Storage(format!("{}: {e}", path.display())))?;
        let db = Database::builder().create_file(file).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(BUCKETS).map_err(storage)?;
        txn.open_table(HEADS).map_err(storage)?;
        txn.open_table(SEGMENTS).map_err(storage)?;
        txn.open_table(UPLOADS).map_err(storage)?;
        txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
        txn.open_table(PARTS).map_err(storage)?;
        txn.open_table(KEYS).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(Self { db })
    }

    /// Runs `f` in a write transaction and commits it durably; nothing is committed if
    /// `f` fails.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> CatalogResult<T>,
    ) -> CatalogResult<T> {
        let txn = self.db.begin_write().map_err(storage)?;
        let out = f(&txn)?;
        txn.commit().map_err(storage)?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> CatalogResult<T>,
    ) -> CatalogResult<T> {
        let txn = self.db.begin_read().map_err(storage)?;
        f(&txn)
    }
}

fn seg_key(id: SegmentId) -> (u8, u32, u64) {
    (id.plane.code(), id.shard, id.seq)
}

fn seg_record(k: (u8, u32, u64), v: SegmentValue<'_>) -> CatalogResult<SegmentRecord> {
    let corrupt = |what: &str| CatalogError::Corrupt(format!("segment {k:?}: {what}"));
    let plane = Plane::from_code(k.0).ok_or_else(|| corrupt("unknown plane"))?;
    let state = SegmentState::from_code(v.0).ok_or_else(|| corrupt("unknown state"))?;
    let sha256 = match v.2 {
        Some(b) => Some(
            b.try_into()
                .map_err(|_| corrupt("sha256 is not 32 bytes"))?,
        ),
        None => None,
    };
    Ok(SegmentRecord {
        id: SegmentId {
            plane,
            shard: k.1,
            seq: k.2,
        },
        state,
        size_bytes: v.1,
        sha256,
        location: v.3.map(str::to_owned),
        created_ms: v.4,
        updated_ms: v.5,
    })
}

fn put_segment(txn: &redb::WriteTransaction, r: &SegmentRecord) -> CatalogResult<()> {
    let mut t = txn.open_table(SEGMENTS).map_err(storage)?;
    let v: SegmentValue<'_> = (
        r.state.code(),
        r.size_bytes,
        r.sha256.as_ref().map(|s| s.as_slice()),
        r.location.as_deref(),
        r.created_ms,
        r.updated_ms,
    );
    t.insert(seg_key(r.id), v).map_err(storage)?;
    Ok(())
}

fn get_segment(
    t: &impl ReadableTable<(u8, u32, u64), SegmentValue<'static>>,
    id: SegmentId,
) -> CatalogResult<Option<SegmentRecord>> {
    match t.get(seg_key(id)).map_err(storage)? {
        Some(v) => seg_record(seg_key(id), v.value()).map(Some),
        None => Ok(None),
    }
}

impl EmbeddedCatalog {
    fn create_bucket_now(&self, rec: BucketRecord) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(BUCKETS).map_err(storage)?;
            if t.get(rec.name.as_str()).map_err(storage)?.is_some() {
                return Err(CatalogError::AlreadyExists(format!("bucket {}", rec.name)));
            }
            t.insert(rec.name.as_str(), (rec.shard, rec.created_ms))
                .map_err(storage)?;
            Ok(())
        })
    }

    fn bucket_now(&self, name: &str) -> CatalogResult<Option<BucketRecord>> {
        self.read(|txn| {
            let t = txn.open_table(BUCKETS).map_err(storage)?;
            Ok(t.get(name).map_err(storage)?.map(|v| {
                let (shard, created_ms) = v.value();
                BucketRecord {
                    name: name.to_owned(),
                    shard,
                    created_ms,
                }
            }))
        })
    }

    fn buckets_now(&self) -> CatalogResult<Vec<BucketRecord>> {
        self.read(|txn| {
            let t = txn.open_table(BUCKETS).map_err(storage)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                let (shard, created_ms) = v.value();
                out.push(BucketRecord {
                    name: k.value().to_owned(),
                    shard,
                    created_ms,
                });
            }
            Ok(out)
        })
    }

    fn delete_bucket_now(&self, name: &str) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(BUCKETS).map_err(storage)?;
            if t.remove(name).map_err(storage)?.is_none() {
                return Err(CatalogError::NotFound(format!("bucket {name}")));
            }
            txn.open_table(HEADS)
                .map_err(storage)?
                .remove(name)
                .map_err(storage)?;
            Ok(())
        })
    }

    fn checkpoint_heads_now(&self, heads: &[HeadCheckpoint]) -> CatalogResult<()> {
        self.write(|txn| {
            let buckets = txn.open_table(BUCKETS).map_err(storage)?;
            let mut t = txn.open_table(HEADS).map_err(storage)?;
            for h in heads {
                if buckets.get(h.bucket.as_str()).map_err(storage)?.is_none() {
                    return Err(CatalogError::NotFound(format!("bucket {}", h.bucket)));
                }
                let newer = match t.get(h.bucket.as_str()).map_err(storage)? {
                    Some(old) => old.value().1 < h.seq,
                    None => true,
                };
                if newer {
                    let cid = h.commit.to_bytes();
                    let v = (cid.as_slice(), h.seq, h.segment_seq, h.offset);
                    t.insert(h.bucket.as_str(), v).map_err(storage)?;
                }
            }
            Ok(())
        })
    }

    fn heads_now(&self) -> CatalogResult<Vec<HeadCheckpoint>> {
        self.read(|txn| {
            let t = txn.open_table(HEADS).map_err(storage)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                let (cid, seq, segment_seq, offset) = v.value();
                let commit = Cid::try_from(cid)
                    .map_err(|e| CatalogError::Corrupt(format!("head of {}: {e}", k.value())))?;
                out.push(HeadCheckpoint {
                    bucket: k.value().to_owned(),
                    commit,
                    seq,
                    segment_seq,
                    offset,
                });
            }
            Ok(out)
        })
    }

    fn create_segment_now(&self, rec: SegmentRecord) -> CatalogResult<()> {
        self.write(|txn| {
            let t = txn.open_table(SEGMENTS).map_err(storage)?;
            if get_segment(&t, rec.id)?.is_some() {
                return Err(CatalogError::AlreadyExists(format!("segment {:?}", rec.id)));
            }
            drop(t);
            put_segment(txn, &rec)
        })
    }

    fn transition_segment_now(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> CatalogResult<SegmentRecord> {
        self.write(|txn| {
            let t = txn.open_table(SEGMENTS).map_err(storage)?;
            let mut rec = get_segment(&t, id)?
                .ok_or_else(|| CatalogError::NotFound(format!("segment {id:?}")))?;
            drop(t);
            rec.apply(from, to, update)?;
            put_segment(txn, &rec)?;
            Ok(rec)
        })
    }

    fn segment_now(&self, id: SegmentId) -> CatalogResult<Option<SegmentRecord>> {
        self.read(|txn| get_segment(&txn.open_table(SEGMENTS).map_err(storage)?, id))
    }

    fn segments_now(&self) -> CatalogResult<Vec<SegmentRecord>> {
        self.read(|txn| {
            let t = txn.open_table(SEGMENTS).map_err(storage)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                out.push(seg_record(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    fn remove_segment_now(&self, id: SegmentId) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(SEGMENTS).map_err(storage)?;
            let rec = get_segment(&t, id)?
                .ok_or_else(|| CatalogError::NotFound(format!("segment {id:?}")))?;
            if !rec.state.can_be_removed() {
                return Err(CatalogError::InvalidTransition {
                    id,
                    from: rec.state,
                    to: SegmentState::Retired,
                });
            }
            t.remove(seg_key(id)).map_err(storage)?;
            Ok(())
        })
    }

    fn create_upload_now(&self, rec: UploadRecord) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(UPLOADS).map_err(storage)?;
            if t.get(rec.upload_id.as_str()).map_err(storage)?.is_some() {
                return Err(CatalogError::AlreadyExists(format!(
                    "upload {}",
                    rec.upload_id
                )));
            }
            let v = (
                rec.bucket.as_str(),
                rec.key.as_str(),
                rec.created_ms,
                rec.template.as_slice(),
            );
            t.insert(rec.upload_id.as_str(), v).map_err(storage)?;
            let mut idx = txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
            let k = (
                rec.bucket.as_str(),
                rec.key.as_str(),
                rec.created_ms,
                rec.upload_id.as_str(),
            );
            idx.insert(k, ()).map_err(storage)?;
            Ok(())
        })
    }

    fn upload_now(&self, upload_id: &str) -> CatalogResult<Option<UploadRecord>> {
        self.read(|txn| {
            let t = txn.open_table(UPLOADS).map_err(storage)?;
            Ok(t.get(upload_id).map_err(storage)?.map(|v| {
                let (bucket, key, created_ms, template) = v.value();
                UploadRecord {
                    upload_id: upload_id.to_owned(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    created_ms,
                    template: template.to_vec(),
                }
            }))
        })
    }

    fn uploads_now(&self, bucket: &str) -> CatalogResult<Vec<UploadRecord>> {
        let ids: Vec<String> = self.read(|txn| {
            let idx = txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
            let mut ids = Vec::new();
            let range = (bucket, "", 0u64, "")..;
            for row in idx.range(range).map_err(storage)? {
                let (k, _) = row.map_err(storage)?;
                let (b, _, _, id) = k.value();
                if b != bucket {
                    break;
                }
                ids.push(id.to_owned());
            }
            Ok(ids)
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.upload_now(&id)? {
                out.push(u);
            }
        }
        Ok(out)
    }

    fn upload_places_now(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> CatalogResult<Vec<UploadCursor>> {
        self.read(|txn| {
            let idx = txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
            let start = (
                bucket,
                from.key.as_str(),
                from.created_ms,
                from.upload_id.as_str(),
            );
            let mut out = Vec::new();
            for row in idx.range(start..).map_err(storage)?.take(limit) {
                let (k, _) = row.map_err(storage)?;
                let (b, key, created_ms, id) = k.value();
                if b != bucket {
                    break;
                }
                out.push(UploadCursor {
                    key: key.to_owned(),
                    created_ms,
                    upload_id: id.to_owned(),
                });
            }
            Ok(out)
        })
    }

    fn put_part_now(&self, p: PartRecord) -> CatalogResult<()> {
        self.write(|txn| {
            if txn
                .open_table(UPLOADS)
                .map_err(storage)?
                .get(p.upload_id.as_str())
                .map_err(storage)?
                .is_none()
            {
                return Err(CatalogError::NotFound(format!("upload {}", p.upload_id)));
            }
            let mut t = txn.open_table(PARTS).map_err(storage)?;
            let v = (
                p.size_bytes,
                p.md5.as_slice(),
                p.chunks.as_slice(),
                p.created_ms,
            );
            t.insert((p.upload_id.as_str(), p.part_number), v)
                .map_err(storage)?;
            Ok(())
        })
    }

    fn parts_now(&self, upload_id: &str) -> CatalogResult<Vec<PartRecord>> {
        self.read(|txn| {
            let t = txn.open_table(PARTS).map_err(storage)?;
            let mut out = Vec::new();
            for row in t
                .range((upload_id, 0u32)..=(upload_id, u32::MAX))
                .map_err(storage)?
            {
                let (k, v) = row.map_err(storage)?;
                let (_, part_number) = k.value();
                let (size_bytes, md5, chunks, created_ms) = v.value();
                let md5 = md5
                    .try_into()
                    .map_err(|_| CatalogError::Corrupt(format!("part {part_number}: md5")))?;
                out.push(PartRecord {
                    upload_id: upload_id.to_owned(),
                    part_number,
                    size_bytes,
                    md5,
                    chunks: chunks.to_vec(),
                    created_ms,
                });
            }
            Ok(out)
        })
    }

    fn remove_upload_now(&self, upload_id: &str) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(UPLOADS).map_err(storage)?;
            let Some(v) = t.remove(upload_id).map_err(storage)? else {
                return Err(CatalogError::NotFound(format!("upload {upload_id}")));
            };
            let (bucket, key, created_ms, _) = v.value();
            let mut idx = txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
            idx.remove((bucket, key, created_ms, upload_id))
                .map_err(storage)?;
            let mut parts = txn.open_table(PARTS).map_err(storage)?;
            parts
                .retain_in((upload_id, 0u32)..=(upload_id, u32::MAX), |_, _| false)
                .map_err(storage)?;
            Ok(())
        })
    }

    fn put_key_now(&self, k: AccessKey) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(KEYS).map_err(storage)?;
            t.insert(
                k.access_key_id.as_str(),
                (k.secret_key.as_str(), k.created_ms),
            )
            .map_err(storage)?;
            Ok(())
        })
    }

    fn key_now(&self, id: &str) -> CatalogResult<Option<AccessKey>> {
        self.read(|txn| {
            let t = txn.open_table(KEYS).map_err(storage)?;
            Ok(t.get(id).map_err(storage)?.map(|v| {
                let (secret, created_ms) = v.value();
                AccessKey {
                    access_key_id: id.to_owned(),
                    secret_key: secret.to_owned(),
                    created_ms,
                }
            }))
        })
    }

    fn keys_now(&self) -> CatalogResult<Vec<AccessKey>> {
        self.read(|txn| {
            let t = txn.open_table(KEYS).map_err(storage)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                let (secret, created_ms) = v.value();
                out.push(AccessKey {
                    access_key_id: k.value().to_owned(),
                    secret_key: secret.to_owned(),
                    created_ms,
                });
            }
            Ok(out)
        })
    }

    fn remove_key_now(&self, id: &str) -> CatalogResult<()> {
        self.write(|txn| {
            let mut t = txn.open_table(KEYS).map_err(storage)?;
            match t.remove(id).map_err(storage)? {
                Some(_) => Ok(()),
                None => Err(CatalogError::NotFound(format!("access key {id}"))),
            }
        })
    }
}

// redb calls are synchronous and short (one B-tree transaction, one fsync per write), and
// happen off the per-object path, so the futures are ready when returned.
impl Catalog for EmbeddedCatalog {
    fn create_bucket(&self, rec: BucketRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.create_bucket_now(rec))
    }
    fn bucket(
        &self,
        name: &str,
    ) -> impl Future<Output = CatalogResult<Option<BucketRecord>>> + Send {
        ready(self.bucket_now(name))
    }
    fn buckets(&self) -> impl Future<Output = CatalogResult<Vec<BucketRecord>>> + Send {
        ready(self.buckets_now())
    }
    fn delete_bucket(&self, name: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.delete_bucket_now(name))
    }
    fn checkpoint_heads(
        &self,
        heads: &[HeadCheckpoint],
    ) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.checkpoint_heads_now(heads))
    }
    fn heads(&self) -> impl Future<Output = CatalogResult<Vec<HeadCheckpoint>>> + Send {
        ready(self.heads_now())
    }
    fn create_segment(&self, rec: SegmentRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.create_segment_now(rec))
    }
    fn transition_segment(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> impl Future<Output = CatalogResult<SegmentRecord>> + Send {
        ready(self.transition_segment_now(id, from, to, update))
    }
    fn segment(
        &self,
        id: SegmentId,
    ) -> impl Future<Output = CatalogResult<Option<SegmentRecord>>> + Send {
        ready(self.segment_now(id))
    }
    fn segments(&self) -> impl Future<Output = CatalogResult<Vec<SegmentRecord>>> + Send {
        ready(self.segments_now())
    }
    fn remove_segment(&self, id: SegmentId) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.remove_segment_now(id))
    }
    fn create_upload(&self, rec: UploadRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.create_upload_now(rec))
    }
    fn upload(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<UploadRecord>>> + Send {
        ready(self.upload_now(upload_id))
    }
    fn uploads(
        &self,
        bucket: &str,
    ) -> impl Future<Output = CatalogResult<Vec<UploadRecord>>> + Send {
        ready(self.uploads_now(bucket))
    }
    fn upload_places(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<UploadCursor>>> + Send {
        ready(self.upload_places_now(bucket, from, limit))
    }
    fn put_part(&self, part: PartRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.put_part_now(part))
    }
    fn parts(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Vec<PartRecord>>> + Send {
        ready(self.parts_now(upload_id))
    }
    fn remove_upload(&self, upload_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.remove_upload_now(upload_id))
    }
    fn put_key(&self, key: AccessKey) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.put_key_now(key))
    }
    fn key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<AccessKey>>> + Send {
        ready(self.key_now(access_key_id))
    }
    fn keys(&self) -> impl Future<Output = CatalogResult<Vec<AccessKey>>> + Send {
        ready(self.keys_now())
    }
    fn remove_key(&self, access_key_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.remove_key_now(access_key_id))
    }
}
