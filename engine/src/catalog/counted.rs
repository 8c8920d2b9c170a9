//! A catalog that keeps its segments' counts by plane and lifecycle state in memory.
//!
//! The engine hands every user of its catalog (its shards' plane logs, the shipper,
//! the frontend) this wrapper, so every segment record created, moved or dropped
//! through the engine updates the counts after the change is committed. `/metrics`
//! reads the counts instead of the whole segment table: one table scan per scrape grew
//! with the data on the node (a record per 64 MiB segment) and took the catalog's read
//! path on every scrape.
//!
//! The counts start from the one scan the engine makes when it starts. A record changed
//! behind the engine's back (another process, a test holding the inner catalog) is not
//! seen until the next start.

use super::{
    AccessKey, BucketRecord, Catalog, CatalogResult, HeadCheckpoint, PartRecord, SegmentRecord,
    SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::segment::{Plane, SegmentId};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const PLANES: usize = 2;
const STATES: usize = 6;

/// Segment records by plane and state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentCounts {
    by: [[u64; STATES]; PLANES],
}

impl SegmentCounts {
    /// The counts of `records`.
    pub fn of(records: &[SegmentRecord]) -> Self {
        let mut c = Self::default();
        for r in records {
            c.add(r.id.plane, r.state);
        }
        c
    }

    pub fn get(&self, plane: Plane, state: SegmentState) -> u64 {
        self.by[usize::from(plane.code())][usize::from(state.code())]
    }

    /// Every (plane, state, count), zeros included, in plane then lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (Plane, SegmentState, u64)> + '_ {
        let planes = (0u8..).map_while(Plane::from_code);
        planes.flat_map(move |p| {
            (0u8..)
                .map_while(SegmentState::from_code)
                .map(move |s| (p, s, self.get(p, s)))
        })
    }

    fn add(&mut self, plane: Plane, state: SegmentState) {
        self.by[usize::from(plane.code())][usize::from(state.code())] += 1;
    }

    fn remove(&mut self, plane: Plane, state: SegmentState) {
        let n = &mut self.by[usize::from(plane.code())][usize::from(state.code())];
        debug_assert!(*n > 0, "{plane:?} {state:?} counted below zero");
        *n = n.saturating_sub(1);
    }
}

/// `C` with its segment counts kept in memory.
#[derive(Debug)]
pub struct CountedCatalog<C> {
    inner: Arc<C>,
    counts: Mutex<SegmentCounts>,
    /// Reads of the whole segment table through this catalog.
    scans: AtomicU64,
}

impl<C: Catalog> CountedCatalog<C> {
    /// Wraps `inner`, whose segment records are `records` (read by the caller).
    pub fn new(inner: Arc<C>, records: &[SegmentRecord]) -> Self {
        Self {
            inner,
            counts: Mutex::new(SegmentCounts::of(records)),
            scans: AtomicU64::new(0),
        }
    }

    /// The current counts (no catalog read).
    pub fn segment_counts(&self) -> SegmentCounts {
        self.with_counts(|c| c.clone())
    }

    /// How many times the whole segment table was read through this catalog: the
    /// shipper reads it at each pass; rendering metrics must not.
    #[cfg(any(test, feature = "testing"))]
    pub fn segment_scans(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }

    fn with_counts<T>(&self, f: impl FnOnce(&mut SegmentCounts) -> T) -> T {
        // Every change is one counter step, so a poisoned lock is still consistent.
        let mut c = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut c)
    }
}

impl<C: Catalog> Catalog for CountedCatalog<C> {
    fn create_bucket(&self, rec: BucketRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.create_bucket(rec)
    }

    fn bucket(
        &self,
        name: &str,
    ) -> impl Future<Output = CatalogResult<Option<BucketRecord>>> + Send {
        self.inner.bucket(name)
    }

    fn buckets(&self) -> impl Future<Output = CatalogResult<Vec<BucketRecord>>> + Send {
        self.inner.buckets()
    }

    fn delete_bucket(&self, name: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.delete_bucket(name)
    }

    fn checkpoint_heads(
        &self,
        heads: &[HeadCheckpoint],
    ) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.checkpoint_heads(heads)
    }

    fn heads(&self) -> impl Future<Output = CatalogResult<Vec<HeadCheckpoint>>> + Send {
        self.inner.heads()
    }

    fn create_segment(&self, rec: SegmentRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        let (plane, state) = (rec.id.plane, rec.state);
        async move {
            self.inner.create_segment(rec).await?;
            self.with_counts(|c| c.add(plane, state));
            Ok(())
        }
    }

    async fn transition_segment(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> CatalogResult<SegmentRecord> {
        let rec = self.inner.transition_segment(id, from, to, update).await?;
        self.with_counts(|c| {
            c.remove(id.plane, from);
            c.add(id.plane, to);
        });
        Ok(rec)
    }

    fn segment(
        &self,
        id: SegmentId,
    ) -> impl Future<Output = CatalogResult<Option<SegmentRecord>>> + Send {
        self.inner.segment(id)
    }

    fn segments(&self) -> impl Future<Output = CatalogResult<Vec<SegmentRecord>>> + Send {
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.inner.segments()
    }

    async fn remove_segment(&self, id: SegmentId) -> CatalogResult<()> {
        // Only removable states are dropped, and only the segment's own shard (the
        // caller) moves a record in those states: the state read is the one removed.
        let state = self.inner.segment(id).await?.map(|r| r.state);
        self.inner.remove_segment(id).await?;
        if let Some(state) = state {
            self.with_counts(|c| c.remove(id.plane, state));
        }
        Ok(())
    }

    fn create_upload(&self, rec: UploadRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.create_upload(rec)
    }

    fn upload(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<UploadRecord>>> + Send {
        self.inner.upload(upload_id)
    }

    fn uploads(
        &self,
        bucket: &str,
    ) -> impl Future<Output = CatalogResult<Vec<UploadRecord>>> + Send {
        self.inner.uploads(bucket)
    }

    fn upload_places(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<UploadCursor>>> + Send {
        self.inner.upload_places(bucket, from, limit)
    }

    fn put_part(&self, part: PartRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.put_part(part)
    }

    fn parts(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Vec<PartRecord>>> + Send {
        self.inner.parts(upload_id)
    }

    fn remove_upload(&self, upload_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.remove_upload(upload_id)
    }

    fn put_key(&self, key: AccessKey) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.put_key(key)
    }

    fn key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<AccessKey>>> + Send {
        self.inner.key(access_key_id)
    }

    fn keys(&self) -> impl Future<Output = CatalogResult<Vec<AccessKey>>> + Send {
        self.inner.keys()
    }

    fn remove_key(&self, access_key_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        self.inner.remove_key(access_key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryCatalog;
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(f)
    }

    fn record(plane: Plane, seq: u64, state: SegmentState) -> SegmentRecord {
        SegmentRecord {
            id: SegmentId {
                plane,
                shard: 0,
                seq,
            },
            state,
            size_bytes: 0,
            sha256: None,
            location: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn counts_follow_every_committed_change_and_only_those() {
        use SegmentState::*;
        block_on(async {
            let old = record(Plane::Data, 1, Sealed);
            let inner = MemoryCatalog::new();
            inner.create_segment(old.clone()).await.unwrap();
            let c = CountedCatalog::new(Arc::new(inner), &[old]);
            let seg = |p, seq| SegmentId {
                plane: p,
                shard: 0,
                seq,
            };
            let up = SegmentUpdate::default;
            c.create_segment(record(Plane::Meta, 1, Creating))
                .await
                .unwrap();
            c.transition_segment(seg(Plane::Meta, 1), Creating, Open, up())
                .await
                .unwrap();
            c.transition_segment(seg(Plane::Data, 1), Sealed, Shipped, up())
                .await
                .unwrap();
            // Refused changes count nothing.
            assert!(
                c.transition_segment(seg(Plane::Data, 1), Sealed, Shipped, up())
                    .await
                    .is_err()
            );
            assert!(
                c.create_segment(record(Plane::Data, 1, Open))
                    .await
                    .is_err()
            );
            assert!(c.remove_segment(seg(Plane::Meta, 1)).await.is_err());
            c.transition_segment(seg(Plane::Data, 1), Shipped, Retiring, up())
                .await
                .unwrap();
            c.remove_segment(seg(Plane::Data, 1)).await.unwrap();
            let scans = c.segment_scans();
            let truth = SegmentCounts::of(&c.segments().await.unwrap());
            assert_eq!(c.segment_scans(), scans + 1);
            assert_eq!(c.segment_counts(), truth);
            assert_eq!(truth.get(Plane::Meta, Open), 1);
            assert_eq!(truth.iter().map(|(_, _, n)| n).sum::<u64>(), 1);
            assert_eq!(truth.iter().count(), PLANES * STATES);
        });
    }
}
