//! Making a new segment: the lifecycle's create steps (record `Creating` → create the
//! file, fallocate, pre-write zeros, fdatasync, fsync dir → `Open`), the free-space
//! check before them and the undoing of a creation that ran out of space. A plane log
//! makes its segments here, at a roll, for a batch's reservation
//! ([`super::PlaneLog::reserve`]) and as spares made in the background ([`SpareJob`]).

use super::PlaneError;
use super::segment::{OpenSegment, car_name};
use crate::api::now_ms;
use crate::catalog::{Catalog, SegmentRecord, SegmentState, SegmentUpdate};
use crate::io::Disk;
use crate::segment::SegmentId;
use std::rc::Rc;
use std::sync::Arc;

/// Creating a spare segment, run without holding the plane log.
pub struct SpareJob<D: Disk, C> {
    disk: Rc<D>,
    catalog: Arc<C>,
    id: SegmentId,
    seal_bytes: u64,
}

impl<D: Disk, C> std::fmt::Debug for SpareJob<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpareJob").field("id", &self.id).finish()
    }
}

impl<D: Disk, C> SpareJob<D, C> {
    /// A job making segment `id` of `seal_bytes`.
    pub(super) fn new(disk: Rc<D>, catalog: Arc<C>, id: SegmentId, seal_bytes: u64) -> Self {
        Self {
            disk,
            catalog,
            id,
            seal_bytes,
        }
    }
}

impl<D: Disk, C: Catalog> SpareJob<D, C> {
    /// Records, creates and pre-writes the segment (the lifecycle's create steps).
    pub async fn run(self) -> Result<OpenSegment<D::File>, PlaneError> {
        create_recorded(
            self.disk.as_ref(),
            self.catalog.as_ref(),
            self.id,
            self.seal_bytes,
        )
        .await
    }
}

/// Record `Creating` → create and pre-write the file, fsync it and the directory →
/// record `Open`.
///
/// A disk without room for the segment plus a reserve of as much again is refused
/// before anything is recorded: the reserve is what index files (written at seal) and
/// the catalog database draw on, and redb, once a write of its own failed, refuses
/// every later transaction until it is reopened. ENOSPC from the creation, the
/// fallocate or the pre-write (another writer took the space meanwhile, or the
/// filesystem does not tell its free space) removes the partial file and the record.
/// Either way the answer is [`PlaneError::NoSpace`] and nothing is left behind.
pub(super) async fn create_recorded<D: Disk, C: Catalog>(
    disk: &D,
    catalog: &C,
    id: SegmentId,
    seal_bytes: u64,
) -> Result<OpenSegment<D::File>, PlaneError> {
    check_space(disk, seal_bytes).await?;
    let now = now_ms();
    let rec = SegmentRecord {
        id,
        state: SegmentState::Creating,
        size_bytes: 0,
        sha256: None,
        location: None,
        created_ms: now,
        updated_ms: now,
    };
    catalog
        .create_segment(rec)
        .await
        .map_err(PlaneError::Catalog)?;
    let seg = match OpenSegment::create(disk, id, seal_bytes).await {
        Ok(seg) => seg,
        Err(PlaneError::NoSpace(e)) => {
            undo_creation(disk, catalog, id).await?;
            return Err(PlaneError::NoSpace(e));
        }
        Err(e) => return Err(e),
    };
    let up = SegmentUpdate {
        now_ms: now_ms(),
        ..SegmentUpdate::default()
    };
    catalog
        .transition_segment(id, SegmentState::Creating, SegmentState::Open, up)
        .await
        .map_err(PlaneError::Catalog)?;
    Ok(seg)
}

/// Refuses a new segment of `seal_bytes` unless the disk has room for it and a reserve
/// of `seal_bytes` more (see [`create_recorded`]). A disk that does not tell its free
/// space is let through: the allocation finds out.
async fn check_space<D: Disk>(disk: &D, seal_bytes: u64) -> Result<(), PlaneError> {
    let Some(free_bytes) = disk.available_bytes().await? else {
        return Ok(());
    };
    let segment_bytes = crate::io::round_up_to_page(seal_bytes);
    let needed_bytes = segment_bytes.saturating_mul(2);
    if free_bytes < needed_bytes {
        return Err(PlaneError::NoSpace(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "{free_bytes} bytes free; a {segment_bytes}-byte segment is made only with \
                 as much again left free"
            ),
        )));
    }
    Ok(())
}

/// Removes a segment whose creation ran out of space: unlink the file (if it was made),
/// fsync the directory, drop the `Creating` record — the steps recovery takes for it.
async fn undo_creation<D: Disk, C: Catalog>(
    disk: &D,
    catalog: &C,
    id: SegmentId,
) -> Result<(), PlaneError> {
    match disk.remove(&car_name(id)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    disk.sync_dir().await?;
    catalog
        .remove_segment(id)
        .await
        .map_err(PlaneError::Catalog)
}
