//! What the rest of the node does to segments through the engine: the shipper lists
//! them, reads a sealed segment's files, records the shipment and retires local copies;
//! `/metrics` reads the counts. Callers never reach the catalog themselves, so every
//! lifecycle change goes through the counting wrapper and the engine's rules.

use super::Engine;
use crate::catalog::{Catalog, SegmentCounts, SegmentRecord, SegmentState, SegmentUpdate};
use crate::data_dir;
use crate::error::EngineResult;
use crate::plane::{car_name, index_name};
use crate::segment::SegmentId;
use std::path::PathBuf;

impl<C: Catalog + 'static> Engine<C> {
    /// Every segment record, as the catalog holds it now (one catalog read).
    pub async fn segment_records(&self) -> EngineResult<Vec<SegmentRecord>> {
        Ok(self.catalog.segments().await?)
    }

    /// Records that sealed segment `id` is durable at `location` in the cold tier:
    /// `Sealed → Shipped`. Call it only once the CAR and its index are both stored
    /// there (mark-then-write: a crash before this leaves the segment `Sealed`, and
    /// shipping it again is harmless).
    pub async fn mark_shipped(&self, id: SegmentId, location: String) -> EngineResult<()> {
        debug_assert!(!location.is_empty(), "a shipped segment has a location");
        let update = SegmentUpdate {
            location: Some(location),
            now_ms: crate::api::now_ms(),
            ..SegmentUpdate::default()
        };
        self.catalog
            .transition_segment(id, SegmentState::Sealed, SegmentState::Shipped, update)
            .await?;
        Ok(())
    }

    /// A sealed segment's local CAR file and index file.
    pub fn segment_paths(&self, id: SegmentId) -> (PathBuf, PathBuf) {
        let dir = data_dir::shard_dir(&self.data_dir, id.shard);
        (dir.join(car_name(id)), dir.join(index_name(id)))
    }

    /// Retires a shipped segment (see `Shard::retire_segment`): `Ok(false)` when it
    /// must stay local for now.
    pub async fn retire_segment(&self, id: SegmentId) -> EngineResult<bool> {
        self.call(id.shard, move |s| async move {
            s.retire_segment(id.plane, id.seq).await
        })
        .await
    }

    /// Segments sealed by every shard since the start: a cheap way to notice that the
    /// catalog holds new sealed segments.
    pub fn segments_sealed(&self) -> u64 {
        self.metrics
            .iter()
            .map(|m| m.segments_sealed.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Segment records by plane and lifecycle state, kept in memory (no catalog read).
    pub fn segment_counts(&self) -> SegmentCounts {
        self.catalog.segment_counts()
    }

    /// Appends the engine's lines of `/metrics` (shards, then segment counts; see
    /// [`crate::metrics::render`]). Reads no catalog.
    pub fn render_metrics(&self, out: &mut String) {
        crate::metrics::render(out, &self.metrics, &self.segment_counts());
    }

    /// The catalog, through the wrapper that keeps the segment counts (tests look
    /// behind the engine with it).
    #[cfg(feature = "testing")]
    pub fn catalog(&self) -> &std::sync::Arc<crate::catalog::CountedCatalog<C>> {
        &self.catalog
    }
}
