//! An in-memory catalog: every call is atomic and immediately "durable" for as long as
//! the value lives. For tests and simulations (crash tests keep it across a simulated
//! power loss, as a real catalog keeps its committed transactions); it passes the same
//! conformance suite as the embedded catalog.

use super::{
    AccessKey, BucketRecord, Catalog, CatalogError, CatalogResult, HeadCheckpoint, PartRecord,
    SegmentRecord, SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::segment::SegmentId;
use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, BucketRecord>,
    heads: BTreeMap<String, HeadCheckpoint>,
    segments: BTreeMap<SegmentId, SegmentRecord>,
    uploads: BTreeMap<String, UploadRecord>,
    parts: BTreeMap<(String, u32), PartRecord>,
    keys: BTreeMap<String, AccessKey>,
}

/// The in-memory catalog.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    state: Mutex<State>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-done change (every change is
        // one map operation), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn transition(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> CatalogResult<SegmentRecord> {
        let mut s = self.lock();
        let rec = s
            .segments
            .get_mut(&id)
            .ok_or_else(|| CatalogError::NotFound(format!("segment {id:?}")))?;
        rec.apply(from, to, update)?;
        Ok(rec.clone())
    }

    fn checkpoint(&self, heads: &[HeadCheckpoint]) -> CatalogResult<()> {
        let mut s = self.lock();
        if let Some(h) = heads.iter().find(|h| !s.buckets.contains_key(&h.bucket)) {
            return Err(CatalogError::NotFound(format!("bucket {}", h.bucket)));
        }
        for h in heads {
            if s.heads.get(&h.bucket).is_none_or(|old| old.seq < h.seq) {
                s.heads.insert(h.bucket.clone(), h.clone());
            }
        }
        Ok(())
    }

    fn uploads_of(&self, bucket: &str) -> Vec<UploadRecord> {
        let mut v: Vec<UploadRecord> = self
            .lock()
            .uploads
            .values()
            .filter(|u| u.bucket == bucket)
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            (&a.key, a.created_ms, &a.upload_id).cmp(&(&b.key, b.created_ms, &b.upload_id))
        });
        v
    }
}

fn not_found<T>(what: String) -> CatalogResult<T> {
    Err(CatalogError::NotFound(what))
}

impl Catalog for MemoryCatalog {
    fn create_bucket(&self, rec: BucketRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = if s.buckets.contains_key(&rec.name) {
            Err(CatalogError::AlreadyExists(format!("bucket {}", rec.name)))
        } else {
            s.buckets.insert(rec.name.clone(), rec);
            Ok(())
        };
        ready(r)
    }
    fn bucket(
        &self,
        name: &str,
    ) -> impl Future<Output = CatalogResult<Option<BucketRecord>>> + Send {
        ready(Ok(self.lock().buckets.get(name).cloned()))
    }
    fn buckets(&self) -> impl Future<Output = CatalogResult<Vec<BucketRecord>>> + Send {
        ready(Ok(self.lock().buckets.values().cloned().collect()))
    }
    fn delete_bucket(&self, name: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = match s.buckets.remove(name) {
            Some(_) => {
                s.heads.remove(name);
                Ok(())
            }
            None => not_found(format!("bucket {name}")),
        };
        ready(r)
    }
    fn checkpoint_heads(
        &self,
        heads: &[HeadCheckpoint],
    ) -> impl Future<Output = CatalogResult<()>> + Send {
        ready(self.checkpoint(heads))
    }
    fn heads(&self) -> impl Future<Output = CatalogResult<Vec<HeadCheckpoint>>> + Send {
        ready(Ok(self.lock().heads.values().cloned().collect()))
    }
    fn create_segment(&self, rec: SegmentRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = match s.segments.entry(rec.id) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(CatalogError::AlreadyExists(format!("segment {:?}", rec.id)))
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(rec);
                Ok(())
            }
        };
        ready(r)
    }
    fn transition_segment(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> impl Future<Output = CatalogResult<SegmentRecord>> + Send {
        ready(self.transition(id, from, to, update))
    }
    fn segment(
        &self,
        id: SegmentId,
    ) -> impl Future<Output = CatalogResult<Option<SegmentRecord>>> + Send {
        ready(Ok(self.lock().segments.get(&id).cloned()))
    }
    fn segments(&self) -> impl Future<Output = CatalogResult<Vec<SegmentRecord>>> + Send {
        ready(Ok(self.lock().segments.values().cloned().collect()))
    }
    fn remove_segment(&self, id: SegmentId) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = match s.segments.get(&id).map(|r| r.state) {
            None => not_found(format!("segment {id:?}")),
            Some(state) if !state.can_be_removed() => Err(CatalogError::InvalidTransition {
                id,
                from: state,
                to: SegmentState::Retired,
            }),
            Some(_) => {
                s.segments.remove(&id);
                Ok(())
            }
        };
        ready(r)
    }
    fn create_upload(&self, rec: UploadRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = if s.uploads.contains_key(&rec.upload_id) {
            Err(CatalogError::AlreadyExists(format!(
                "upload {}",
                rec.upload_id
            )))
        } else {
            s.uploads.insert(rec.upload_id.clone(), rec);
            Ok(())
        };
        ready(r)
    }
    fn upload(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<UploadRecord>>> + Send {
        ready(Ok(self.lock().uploads.get(upload_id).cloned()))
    }
    fn uploads(
        &self,
        bucket: &str,
    ) -> impl Future<Output = CatalogResult<Vec<UploadRecord>>> + Send {
        ready(Ok(self.uploads_of(bucket)))
    }
    fn upload_places(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<UploadCursor>>> + Send {
        // Sorts every upload of the bucket per call: a test catalog, not an index.
        let uploads = self.uploads_of(bucket);
        let places = uploads.iter().map(UploadCursor::of);
        ready(Ok(places.filter(|p| p >= from).take(limit).collect()))
    }
    fn put_part(&self, part: PartRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = if s.uploads.contains_key(&part.upload_id) {
            s.parts
                .insert((part.upload_id.clone(), part.part_number), part);
            Ok(())
        } else {
            not_found(format!("upload {}", part.upload_id))
        };
        ready(r)
    }
    fn parts(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Vec<PartRecord>>> + Send {
        let s = self.lock();
        let range = (upload_id.to_owned(), 0)..=(upload_id.to_owned(), u32::MAX);
        ready(Ok(s.parts.range(range).map(|(_, p)| p.clone()).collect()))
    }
    fn remove_upload(&self, upload_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let mut s = self.lock();
        let r = match s.uploads.remove(upload_id) {
            Some(_) => {
                s.parts.retain(|(id, _), _| id != upload_id);
                Ok(())
            }
            None => not_found(format!("upload {upload_id}")),
        };
        ready(r)
    }
    fn put_key(&self, key: AccessKey) -> impl Future<Output = CatalogResult<()>> + Send {
        self.lock().keys.insert(key.access_key_id.clone(), key);
        ready(Ok(()))
    }
    fn key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<AccessKey>>> + Send {
        ready(Ok(self.lock().keys.get(access_key_id).cloned()))
    }
    fn keys(&self) -> impl Future<Output = CatalogResult<Vec<AccessKey>>> + Send {
        ready(Ok(self.lock().keys.values().cloned().collect()))
    }
    fn remove_key(&self, access_key_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let r = match self.lock().keys.remove(access_key_id) {
            Some(_) => Ok(()),
            None => not_found(format!("access key {access_key_id}")),
        };
        ready(r)
    }
}
