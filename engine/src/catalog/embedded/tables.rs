//! The embedded catalog's tables and the operations on them, each run inside a
//! transaction the catalog thread (`server.rs`) opens: the functions never begin
//! or commit one themselves, so the thread can run several writes in one commit.

use super::super::{
    AccessKey, BucketRecord, CatalogError, CatalogResult, HeadCheckpoint, PartRecord,
    SegmentRecord, SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::segment::{Plane, SegmentId};
use cid::Cid;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
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

pub(super) fn storage(e: impl Into<redb::Error>) -> CatalogError {
    CatalogError::Storage(e.into().to_string())
}

/// Opens (or creates) the catalog database at `path`, creating every table.
pub(super) fn open(path: &Path) -> CatalogResult<Database> {
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
    Ok(db)
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

pub(super) fn create_bucket(txn: &WriteTransaction, rec: &BucketRecord) -> CatalogResult<()> {
    let mut t = txn.open_table(BUCKETS).map_err(storage)?;
    if t.get(rec.name.as_str()).map_err(storage)?.is_some() {
        return Err(CatalogError::AlreadyExists(format!("bucket {}", rec.name)));
    }
    t.insert(rec.name.as_str(), (rec.shard, rec.created_ms))
        .map_err(storage)?;
    Ok(())
}

pub(super) fn bucket(txn: &ReadTransaction, name: &str) -> CatalogResult<Option<BucketRecord>> {
    let t = txn.open_table(BUCKETS).map_err(storage)?;
    Ok(t.get(name).map_err(storage)?.map(|v| {
        let (shard, created_ms) = v.value();
        BucketRecord {
            name: name.to_owned(),
            shard,
            created_ms,
        }
    }))
}

pub(super) fn buckets(txn: &ReadTransaction) -> CatalogResult<Vec<BucketRecord>> {
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
}

pub(super) fn delete_bucket(txn: &WriteTransaction, name: &str) -> CatalogResult<()> {
    let mut t = txn.open_table(BUCKETS).map_err(storage)?;
    if t.remove(name).map_err(storage)?.is_none() {
        return Err(CatalogError::NotFound(format!("bucket {name}")));
    }
    txn.open_table(HEADS)
        .map_err(storage)?
        .remove(name)
        .map_err(storage)?;
    Ok(())
}

pub(super) fn checkpoint_heads(
    txn: &WriteTransaction,
    heads: &[HeadCheckpoint],
) -> CatalogResult<()> {
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
}

pub(super) fn heads(txn: &ReadTransaction) -> CatalogResult<Vec<HeadCheckpoint>> {
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
}

pub(super) fn create_segment(txn: &WriteTransaction, rec: &SegmentRecord) -> CatalogResult<()> {
    let t = txn.open_table(SEGMENTS).map_err(storage)?;
    if get_segment(&t, rec.id)?.is_some() {
        return Err(CatalogError::AlreadyExists(format!("segment {:?}", rec.id)));
    }
    drop(t);
    put_segment(txn, rec)
}

/// Moves a segment from `from` to `to` and returns the updated record.
pub(super) fn transition_segment(
    txn: &WriteTransaction,
    id: SegmentId,
    from: SegmentState,
    to: SegmentState,
    update: SegmentUpdate,
) -> CatalogResult<SegmentRecord> {
    let t = txn.open_table(SEGMENTS).map_err(storage)?;
    let mut rec =
        get_segment(&t, id)?.ok_or_else(|| CatalogError::NotFound(format!("segment {id:?}")))?;
    drop(t);
    rec.apply(from, to, update)?;
    put_segment(txn, &rec)?;
    Ok(rec)
}

pub(super) fn segment(
    txn: &ReadTransaction,
    id: SegmentId,
) -> CatalogResult<Option<SegmentRecord>> {
    get_segment(&txn.open_table(SEGMENTS).map_err(storage)?, id)
}

pub(super) fn segments(txn: &ReadTransaction) -> CatalogResult<Vec<SegmentRecord>> {
    let t = txn.open_table(SEGMENTS).map_err(storage)?;
    let mut out = Vec::new();
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        out.push(seg_record(k.value(), v.value())?);
    }
    Ok(out)
}

pub(super) fn remove_segment(txn: &WriteTransaction, id: SegmentId) -> CatalogResult<()> {
    let mut t = txn.open_table(SEGMENTS).map_err(storage)?;
    let rec =
        get_segment(&t, id)?.ok_or_else(|| CatalogError::NotFound(format!("segment {id:?}")))?;
    if !rec.state.can_be_removed() {
        return Err(CatalogError::InvalidTransition {
            id,
            from: rec.state,
            to: SegmentState::Retired,
        });
    }
    t.remove(seg_key(id)).map_err(storage)?;
    Ok(())
}

pub(super) fn create_upload(txn: &WriteTransaction, rec: &UploadRecord) -> CatalogResult<()> {
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
}

pub(super) fn upload(
    txn: &ReadTransaction,
    upload_id: &str,
) -> CatalogResult<Option<UploadRecord>> {
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
}

/// A bucket's uploads, in listing order, read in one transaction.
pub(super) fn uploads(txn: &ReadTransaction, bucket: &str) -> CatalogResult<Vec<UploadRecord>> {
    let idx = txn.open_table(UPLOADS_BY_BUCKET).map_err(storage)?;
    let mut out = Vec::new();
    let range = (bucket, "", 0u64, "")..;
    for row in idx.range(range).map_err(storage)? {
        let (k, _) = row.map_err(storage)?;
        let (b, _, _, id) = k.value();
        if b != bucket {
            break;
        }
        if let Some(u) = upload(txn, id)? {
            out.push(u);
        }
    }
    Ok(out)
}

pub(super) fn upload_places(
    txn: &ReadTransaction,
    bucket: &str,
    from: &UploadCursor,
    limit: usize,
) -> CatalogResult<Vec<UploadCursor>> {
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
}

pub(super) fn put_part(txn: &WriteTransaction, p: &PartRecord) -> CatalogResult<()> {
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
}

pub(super) fn parts(txn: &ReadTransaction, upload_id: &str) -> CatalogResult<Vec<PartRecord>> {
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
}

pub(super) fn remove_upload(txn: &WriteTransaction, upload_id: &str) -> CatalogResult<()> {
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
}

pub(super) fn put_key(txn: &WriteTransaction, k: &AccessKey) -> CatalogResult<()> {
    let mut t = txn.open_table(KEYS).map_err(storage)?;
    t.insert(
        k.access_key_id.as_str(),
        (k.secret_key.as_str(), k.created_ms),
    )
    .map_err(storage)?;
    Ok(())
}

pub(super) fn key(txn: &ReadTransaction, id: &str) -> CatalogResult<Option<AccessKey>> {
    let t = txn.open_table(KEYS).map_err(storage)?;
    Ok(t.get(id).map_err(storage)?.map(|v| {
        let (secret, created_ms) = v.value();
        AccessKey {
            access_key_id: id.to_owned(),
            secret_key: secret.to_owned(),
            created_ms,
        }
    }))
}

pub(super) fn keys(txn: &ReadTransaction) -> CatalogResult<Vec<AccessKey>> {
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
}

pub(super) fn remove_key(txn: &WriteTransaction, id: &str) -> CatalogResult<()> {
    let mut t = txn.open_table(KEYS).map_err(storage)?;
    match t.remove(id).map_err(storage)? {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound(format!("access key {id}"))),
    }
}
