//! A plane log: the sequence of segments of one plane of one shard, with their lifecycle
//! recorded in the catalog (mark-then-write) and recovery that finishes whatever a crash
//! interrupted.
//!
//! Lifecycle steps (each catalog change is durable before the next file operation):
//! - create: check the free space → record `Creating` → create the file, fallocate,
//!   pre-write zeros, fdatasync, fsync dir → `Open`; ENOSPC on the way undoes it
//!   (unlink, fsync dir, drop the record) and changes nothing else;
//! - seal: commit → truncate to the logical length, fdatasync → write the index,
//!   fdatasync, fsync dir → `Sealed`;
//! - discard (a recovered open segment without a durable frame): `Retiring` → unlink the
//!   files, fsync dir → drop the record.
//!
//! Recovery, per record: `Creating` → unlink any file, fsync dir, drop the record (no
//! frame of it was ever acknowledged: appends start only after `Open`); `Open` → scan
//! the frames, drop a stale index, seal what is valid (or discard an empty segment);
//! `Sealed`/`Shipped` → load the index (rebuilt from the CAR if missing); `Retiring` →
//! finish the unlink; `Retired` → make sure no local file is left. A segment file with
//! no record cannot be produced by these steps and is reported as corruption.

use super::PlaneError;
use super::segment::{BlockSource, OpenSegment, car_name, index_name, scan};
pub use super::spare::SpareJob;
use super::spare::create_recorded;
use crate::catalog::{Catalog, SegmentRecord, SegmentState, SegmentUpdate};
use crate::io::{Disk, SegmentFile};
use crate::segment::{Plane, SegmentId, SegmentIndex};
use cid::Cid;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Where a block is in a plane log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub seq: u64,
    /// Offset of the block bytes in the segment file.
    pub offset: u64,
    pub len: u32,
}

/// A commit's fdatasync, run without holding the plane log.
pub struct CommitJob<F> {
    file: Rc<F>,
    seq: u64,
    end: u64,
}

impl<F: SegmentFile> CommitJob<F> {
    pub async fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data().await
    }
}

impl<F> std::fmt::Debug for CommitJob<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitJob")
            .field("seq", &self.seq)
            .field("end", &self.end)
            .finish()
    }
}

/// Plane-log settings.
#[derive(Debug, Clone, Copy)]
pub struct PlaneConfig {
    /// Size of each segment file (pre-written); a segment is sealed when the next frame
    /// does not fit.
    pub seal_bytes: u64,
}

/// What recovery did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlaneRecovery {
    /// Open segments whose valid frames were sealed.
    pub sealed: Vec<u64>,
    /// Segments dropped: unfinished creations, empty open segments, finished retirements.
    pub removed: Vec<u64>,
    /// Blocks found in the recovered open segments, in log order.
    pub recovered_blocks: Vec<(Cid, Location)>,
}

use crate::api::now_ms;

/// A sealed segment: its index, and its local file until it is retired (after which
/// its blocks live only at `location` on the cold tier; the index stays, as the local
/// `.idx` file and here, so the block index keeps every block's place).
struct SealedSegment<F> {
    file: Option<Rc<F>>,
    index: SegmentIndex,
    location: Option<String>,
}

/// A segment sealing in the background after a roll. Every frame was written and
/// synced before the roll returned; the truncate, its fsync, the digest, the index
/// file and the directory fsync run on a task of their own (20–66 ms per 64 MiB
/// catalog segment under 4 KiB PUTs, during which appends used to wait). Reads use its
/// file meanwhile. It is recorded `Sealed` (catalog, then `sealed`) once harvested.
struct Sealing<F> {
    seq: u64,
    file: Rc<F>,
    task: monoio::task::JoinHandle<Result<SegmentIndex, PlaneError>>,
    /// The task's outcome, once taken from `task` (which must not be polled again).
    done: Option<Result<SegmentIndex, PlaneError>>,
}

/// The segments of one plane of one shard.
pub struct PlaneLog<D: Disk, C> {
    disk: Rc<D>,
    catalog: Arc<C>,
    plane: Plane,
    shard: u32,
    config: PlaneConfig,
    open: Option<OpenSegment<D::File>>,
    sealed: BTreeMap<u64, SealedSegment<D::File>>,
    /// At most one segment sealing in the background.
    sealing: Option<Sealing<D::File>>,
    next_seq: u64,
    poisoned: bool,
    /// When the open segment was opened (for `seal_age`).
    opened_at: std::time::Instant,
    /// Pre-written segments (recorded `Open`, no frame) ready to take over at the next
    /// rolls, lowest number first, so a roll does not write `seal_bytes` of zeros while
    /// appends wait. Usually one; [`PlaneLog::reserve`] makes more for a large batch.
    spares: BTreeMap<u64, OpenSegment<D::File>>,
    spare_pending: bool,
    /// Segments this log has sealed (shared with whoever counts them).
    seals: Arc<std::sync::atomic::AtomicU64>,
}

impl<D: Disk, C> std::fmt::Debug for PlaneLog<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaneLog")
            .field("plane", &self.plane)
            .field("shard", &self.shard)
            .field("open", &self.open.as_ref().map(OpenSegment::id))
            .field("sealed", &self.sealed.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<D: Disk + 'static, C: Catalog> PlaneLog<D, C> {
    /// Recovers the plane from the catalog and the files, then opens a new segment.
    pub async fn open(
        disk: Rc<D>,
        catalog: Arc<C>,
        plane: Plane,
        shard: u32,
        config: PlaneConfig,
    ) -> Result<(Self, PlaneRecovery), PlaneError> {
        Self::open_with(disk, catalog, plane, shard, config, &mut |_, _, _| {}).await
    }

    /// [`PlaneLog::open`], showing every block recovered from an open segment (in log
    /// order, with its bytes) to `visit`: how a shard finds the bucket commits written
    /// since its last head checkpoint without reading the segments again.
    pub async fn open_with(
        disk: Rc<D>,
        catalog: Arc<C>,
        plane: Plane,
        shard: u32,
        config: PlaneConfig,
        visit: &mut dyn FnMut(&Cid, Location, &[u8]),
    ) -> Result<(Self, PlaneRecovery), PlaneError> {
        let mut log = Self {
            disk,
            catalog,
            plane,
            shard,
            config,
            open: None,
            sealed: BTreeMap::new(),
            sealing: None,
            next_seq: 1,
            poisoned: false,
            opened_at: std::time::Instant::now(),
            spares: BTreeMap::new(),
            spare_pending: false,
            seals: Arc::default(),
        };
        let report = log.recover(visit).await?;
        log.roll().await?;
        Ok((log, report))
    }

    fn id(&self, seq: u64) -> SegmentId {
        SegmentId {
            plane: self.plane,
            shard: self.shard,
            seq,
        }
    }

    async fn transition(
        &self,
        seq: u64,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> Result<(), PlaneError> {
        self.catalog
            .transition_segment(self.id(seq), from, to, update)
            .await
            .map(|_| ())
            .map_err(PlaneError::Catalog)
    }

    async fn unlink_if_present(&self, name: &str) -> Result<(), PlaneError> {
        match self.disk.remove(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn recover(
        &mut self,
        visit: &mut dyn FnMut(&Cid, Location, &[u8]),
    ) -> Result<PlaneRecovery, PlaneError> {
        let mut report = PlaneRecovery::default();
        let records: Vec<SegmentRecord> = self
            .catalog
            .segments()
            .await
            .map_err(PlaneError::Catalog)?
            .into_iter()
            .filter(|r| r.id.plane == self.plane && r.id.shard == self.shard)
            .collect();
        let files = self.disk.list().await?;
        self.check_files_recorded(&files, &records)?;
        for rec in records {
            self.next_seq = self.next_seq.max(rec.id.seq + 1);
            self.recover_segment(rec, &files, &mut report, visit)
                .await?;
        }
        Ok(report)
    }

    /// Every segment file of this plane and shard has a catalog record.
    fn check_files_recorded(
        &self,
        files: &[String],
        records: &[SegmentRecord],
    ) -> Result<(), PlaneError> {
        let prefix = format!("{}-{:04}-", self.plane.as_str(), self.shard);
        for f in files {
            let ours = records
                .iter()
                .any(|r| car_name(r.id) == *f || index_name(r.id) == *f);
            if f.starts_with(&prefix) && !ours {
                return Err(PlaneError::Corrupt(format!(
                    "segment file {f} has no catalog record"
                )));
            }
        }
        Ok(())
    }

    /// Recovers one recorded segment by its state.
    async fn recover_segment(
        &mut self,
        rec: SegmentRecord,
        files: &[String],
        report: &mut PlaneRecovery,
        visit: &mut dyn FnMut(&Cid, Location, &[u8]),
    ) -> Result<(), PlaneError> {
        let seq = rec.id.seq;
        let (car, idx) = (car_name(rec.id), index_name(rec.id));
        let has = |n: &str| files.iter().any(|f| f == n);
        match rec.state {
            SegmentState::Creating => {
                self.unlink_if_present(&car).await?;
                self.disk.sync_dir().await?;
                self.catalog
                    .remove_segment(rec.id)
                    .await
                    .map_err(PlaneError::Catalog)?;
                report.removed.push(seq);
            }
            SegmentState::Open => {
                if !has(&car) {
                    return Err(PlaneError::Corrupt(format!(
                        "open segment {car} is missing"
                    )));
                }
                self.recover_open(seq, has(&idx), report, visit).await?;
            }
            SegmentState::Sealed | SegmentState::Shipped => {
                if !has(&car) {
                    return Err(PlaneError::Corrupt(format!(
                        "sealed segment {car} is missing"
                    )));
                }
                let file = self.disk.open(&car).await?;
                let index = self.load_index(&file, &idx, has(&idx)).await?;
                self.sealed.insert(
                    seq,
                    SealedSegment {
                        file: Some(Rc::new(file)),
                        index,
                        location: rec.location.clone(),
                    },
                );
            }
            SegmentState::Retiring | SegmentState::Retired if rec.location.is_some() => {
                self.recover_shipped_retired(&rec, has(&idx)).await?;
            }
            SegmentState::Retiring | SegmentState::Retired => {
                // Never shipped (its blocks were copied elsewhere): both files go.
                self.unlink_if_present(&car).await?;
                self.unlink_if_present(&idx).await?;
                self.disk.sync_dir().await?;
                if rec.state == SegmentState::Retiring {
                    self.finish_retirement(&rec).await?;
                }
                report.removed.push(seq);
            }
        }
        Ok(())
    }

    /// A segment shipped, then retired: the local CAR goes, the index stays.
    async fn recover_shipped_retired(
        &mut self,
        rec: &SegmentRecord,
        has_index: bool,
    ) -> Result<(), PlaneError> {
        let (car, idx) = (car_name(rec.id), index_name(rec.id));
        self.unlink_if_present(&car).await?;
        self.disk.sync_dir().await?;
        if rec.state == SegmentState::Retiring {
            self.finish_retirement(rec).await?;
        }
        if !has_index {
            return Err(PlaneError::Corrupt(format!(
                "retired segment {car} has no local index {idx}"
            )));
        }
        let f = self.disk.open(&idx).await?;
        let len = f.file_len().await?;
        let index = SegmentIndex::decode(&f.read_at(0, len as usize).await?)
            .map_err(|e| PlaneError::Corrupt(format!("{idx}: {e}")))?;
        self.sealed.insert(
            rec.id.seq,
            SealedSegment {
                file: None,
                index,
                location: rec.location.clone(),
            },
        );
        Ok(())
    }

    async fn recover_open(
        &mut self,
        seq: u64,
        stale_index: bool,
        report: &mut PlaneRecovery,
        visit: &mut dyn FnMut(&Cid, Location, &[u8]),
    ) -> Result<(), PlaneError> {
        let car = car_name(self.id(seq));
        let file = self.disk.open(&car).await?;
        let found = scan(&file, &mut |cid, offset, block| {
            let len = block.len() as u32;
            visit(cid, Location { seq, offset, len }, block);
        })
        .await?;
        if stale_index {
            // A seal was interrupted after writing its index: it is rebuilt below.
            self.disk.remove(&index_name(self.id(seq))).await?;
        }
        match found {
            Some((rec, bytes)) if !rec.blocks.is_empty() => {
                if rec.id != self.id(seq) {
                    return Err(PlaneError::Corrupt(format!(
                        "{car} names segment {:?}",
                        rec.id
                    )));
                }
                for (cid, offset, len) in &rec.blocks {
                    report.recovered_blocks.push((
                        *cid,
                        Location {
                            seq,
                            offset: *offset,
                            len: *len,
                        },
                    ));
                }
                let seg = OpenSegment::reopen_from(file, &rec, bytes).await?;
                self.seal_segment(seg).await?;
                report.sealed.push(seq);
            }
            _ => {
                // No durable frame: nothing of it was ever acknowledged.
                drop(file);
                self.discard_open(seq).await?;
                report.removed.push(seq);
            }
        }
        Ok(())
    }

    /// Deletes an open segment that holds no frame: mark, unlink, fsync the directory,
    /// drop the record.
    async fn discard_open(&self, seq: u64) -> Result<(), PlaneError> {
        let up = SegmentUpdate {
            now_ms: now_ms(),
            ..SegmentUpdate::default()
        };
        self.transition(seq, SegmentState::Open, SegmentState::Retiring, up)
            .await?;
        self.disk.remove(&car_name(self.id(seq))).await?;
        self.disk.sync_dir().await?;
        self.catalog
            .remove_segment(self.id(seq))
            .await
            .map_err(PlaneError::Catalog)
    }

    /// Clean shutdown: seals the open segment (or deletes it when it holds no frame).
    /// The log takes no more appends.
    pub async fn close(&mut self) -> Result<(), PlaneError> {
        self.check()?;
        self.finish_sealing().await?;
        while let Some((seq, spare)) = self.spares.pop_first() {
            drop(spare);
            self.discard_open(seq).await?;
        }
        let Some(seg) = self.open.take() else {
            return Ok(());
        };
        let result = if seg.has_frames() {
            self.seal_segment(seg).await
        } else {
            let seq = seg.id().seq;
            drop(seg);
            self.discard_open(seq).await
        };
        self.poisoned = true; // closed: nothing more is accepted
        result
    }

    async fn finish_retirement(&self, rec: &SegmentRecord) -> Result<(), PlaneError> {
        if rec.location.is_some() {
            let up = SegmentUpdate {
                now_ms: now_ms(),
                ..SegmentUpdate::default()
            };
            self.transition(
                rec.id.seq,
                SegmentState::Retiring,
                SegmentState::Retired,
                up,
            )
            .await
        } else {
            self.catalog
                .remove_segment(rec.id)
                .await
                .map_err(PlaneError::Catalog)
        }
    }

    async fn load_index(
        &self,
        file: &D::File,
        idx_name: &str,
        present: bool,
    ) -> Result<SegmentIndex, PlaneError> {
        if present {
            let f = self.disk.open(idx_name).await?;
            let len = f.file_len().await?;
            let bytes = f.read_at(0, len as usize).await?;
            if let Ok(i) = SegmentIndex::decode(&bytes) {
                return Ok(i);
            }
        }
        // The index is a cache of the CAR: rebuild it.
        let len = file.file_len().await?;
        let car = file.read_at(0, len as usize).await?;
        SegmentIndex::from_car(&car).map_err(|e| PlaneError::Corrupt(e.to_string()))
    }

    /// Seals `seg` and records it (`Open → Sealed`), waiting for every step.
    async fn seal_segment(&mut self, seg: OpenSegment<D::File>) -> Result<(), PlaneError> {
        let seq = seg.id().seq;
        let index = seg.seal(self.disk.as_ref()).await?;
        self.record_sealed(seq, index).await
    }

    /// Commits `seg` (every frame written and synced), then seals it in the background.
    async fn seal_in_background(
        &mut self,
        mut seg: OpenSegment<D::File>,
    ) -> Result<(), PlaneError> {
        seg.commit().await?;
        let (seq, file) = (seg.id().seq, seg.file());
        let disk = self.disk.clone();
        let task = monoio::spawn(async move { seg.seal(disk.as_ref()).await });
        self.sealing = Some(Sealing {
            seq,
            file,
            task,
            done: None,
        });
        Ok(())
    }

    /// Waits for the segment sealing in the background (if any) and records it.
    /// A failed seal poisons the log.
    pub async fn finish_sealing(&mut self) -> Result<(), PlaneError> {
        let Some(s) = self.sealing.take() else {
            return Ok(());
        };
        let result = async {
            let index = match s.done {
                Some(r) => r?,
                None => s.task.await?,
            };
            self.record_sealed(s.seq, index).await
        }
        .await;
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Records a background seal that has ended; waits for nothing.
    pub async fn harvest_sealing(&mut self) -> Result<(), PlaneError> {
        if self.sealing_ended()? {
            self.finish_sealing().await
        } else {
            Ok(())
        }
    }

    /// Whether the background seal has ended (taking its outcome if it just did). A
    /// failed one poisons the log at once: no commit may succeed after a failed fsync.
    fn sealing_ended(&mut self) -> Result<bool, PlaneError> {
        use futures_util::FutureExt;
        let Some(s) = self.sealing.as_mut() else {
            return Ok(false);
        };
        if s.done.is_none() {
            s.done = (&mut s.task).now_or_never();
        }
        match &s.done {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => {
                self.poisoned = true;
                Err(PlaneError::Corrupt(format!("background seal failed: {e}")))
            }
        }
    }

    /// Records a sealed segment (`Open → Sealed`) and serves it from `sealed`.
    async fn record_sealed(&mut self, seq: u64, index: SegmentIndex) -> Result<(), PlaneError> {
        let id = self.id(seq);
        let up = SegmentUpdate {
            size_bytes: Some(index.segment_bytes),
            sha256: Some(index.segment_sha256),
            location: None,
            now_ms: now_ms(),
        };
        self.transition(id.seq, SegmentState::Open, SegmentState::Sealed, up)
            .await?;
        let file = self.disk.open(&car_name(id)).await?;
        self.sealed.insert(
            id.seq,
            SealedSegment {
                file: Some(Rc::new(file)),
                index,
                location: None,
            },
        );
        self.seals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Counts this log's seals (every one: by size, by age, at close, in recovery) in
    /// `counter` from now on.
    pub fn count_seals_in(&mut self, counter: Arc<std::sync::atomic::AtomicU64>) {
        self.seals = counter;
    }

    /// Seals the open segment (if it holds any frame) and opens the next one. Without
    /// room for the next one ([`PlaneError::NoSpace`]) nothing changes: the open
    /// segment stays open and takes what still fits.
    pub async fn roll(&mut self) -> Result<(), PlaneError> {
        self.check()?;
        let result = self.roll_inner().await;
        self.poison_on(&result);
        result
    }

    /// Poisons the log after a failure, unless it was a refusal for lack of space
    /// (which changed nothing).
    fn poison_on<T>(&mut self, result: &Result<T, PlaneError>) {
        if matches!(result, Err(e) if !matches!(e, PlaneError::NoSpace(_))) {
            self.poisoned = true;
        }
    }

    async fn roll_inner(&mut self) -> Result<(), PlaneError> {
        // One background seal at a time (they take milliseconds; rolls come seconds
        // apart even under full load).
        self.finish_sealing().await?;
        // The next segment first: when the disk has no room for it, the open one is
        // left as it is.
        let next = match self.spares.pop_first() {
            Some((_, spare)) => spare,
            None => self.create_next().await?,
        };
        if let Some(seg) = self.open.take() {
            self.seal_in_background(seg).await?;
        }
        self.open = Some(next);
        self.opened_at = std::time::Instant::now();
        Ok(())
    }

    /// Creates the segment numbered next, now (the lifecycle's create steps).
    async fn create_next(&mut self) -> Result<OpenSegment<D::File>, PlaneError> {
        let id = self.id(self.next_seq);
        self.next_seq += 1;
        create_recorded(
            self.disk.as_ref(),
            self.catalog.as_ref(),
            id,
            self.config.seal_bytes,
        )
        .await
    }

    /// Makes room for frames of `frame_lens` bytes (see
    /// [`crate::segment::frame::frame_len`]), to be appended
    /// in this order: creates spare segments now until the open segment and the spares
    /// hold them all, so appending them needs no new segment and cannot meet a full
    /// disk. [`PlaneError::NoSpace`] when the disk has no room: nothing was appended,
    /// and the caller fails its batch before appending anything.
    pub async fn reserve(
        &mut self,
        frame_lens: impl IntoIterator<Item = u64>,
    ) -> Result<(), PlaneError> {
        self.check()?;
        let open = self.open.as_ref().ok_or(PlaneError::Poisoned)?;
        let header_bytes = self.id(self.next_seq).header().len() as u64;
        let fresh_bytes = crate::io::round_up_to_page(self.config.seal_bytes) - header_bytes;
        // The appends' own rule: a frame that does not fit moves to the next segment.
        let mut free_bytes = open.capacity_bytes() - open.end();
        let mut segments = 0;
        for len in frame_lens {
            if len > free_bytes {
                segments += 1;
                free_bytes = fresh_bytes;
            }
            free_bytes = free_bytes.saturating_sub(len);
        }
        while self.spares.len() < segments {
            let made = self.create_next().await;
            self.poison_on(&made);
            let seg = made?;
            self.spares.insert(seg.id().seq, seg);
        }
        Ok(())
    }

    /// Whether a spare segment is being made.
    pub fn spare_pending(&self) -> bool {
        self.spare_pending
    }

    /// Starts preparing a spare segment if none is ready or being made.
    pub fn begin_spare(&mut self) -> Option<SpareJob<D, C>> {
        if !self.spares.is_empty() || self.spare_pending || self.check().is_err() {
            return None;
        }
        self.spare_pending = true;
        let id = self.id(self.next_seq);
        self.next_seq += 1;
        Some(SpareJob::new(
            self.disk.clone(),
            self.catalog.clone(),
            id,
            self.config.seal_bytes,
        ))
    }

    /// Hands over a spare made by a [`SpareJob`]. A spare numbered below the open
    /// segment (a roll went ahead without it) is deleted: segments must be used in
    /// the order of their numbers, which is the log order recovery relies on. A job
    /// refused for lack of space changes nothing (the next batch starts another).
    pub async fn install_spare(
        &mut self,
        spare: Result<OpenSegment<D::File>, PlaneError>,
    ) -> Result<(), PlaneError> {
        self.spare_pending = false;
        self.poison_on(&spare);
        let seg = spare?;
        let stale = self
            .open
            .as_ref()
            .is_some_and(|o| o.id().seq > seg.id().seq);
        if stale || self.check().is_err() {
            let seq = seg.id().seq;
            drop(seg);
            return self.discard_open(seq).await;
        }
        self.spares.insert(seg.id().seq, seg);
        Ok(())
    }

    fn check(&self) -> Result<(), PlaneError> {
        if self.poisoned || self.open.as_ref().is_some_and(OpenSegment::is_poisoned) {
            Err(PlaneError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn open_mut(&mut self) -> Result<&mut OpenSegment<D::File>, PlaneError> {
        self.open.as_mut().ok_or(PlaneError::Poisoned)
    }

    /// Appends a block (durable after the next [`PlaneLog::commit`]); when the open
    /// segment is full it is sealed (which commits it) and the next one opened.
    pub async fn append(&mut self, cid: &Cid, block: &[u8]) -> Result<Location, PlaneError> {
        self.check()?;
        self.harvest_sealing().await?;
        if !self.open_mut()?.fits(cid, block.len()) {
            self.roll().await?;
            if !self.open_mut()?.fits(cid, block.len()) {
                return Err(PlaneError::Corrupt(format!(
                    "a {}-byte block does not fit in an empty {}-byte segment",
                    block.len(),
                    self.config.seal_bytes
                )));
            }
        }
        let seg = self.open_mut()?;
        let offset = seg.append(cid, block)?;
        Ok(Location {
            seq: seg.id().seq,
            offset,
            len: block.len() as u32,
        })
    }

    /// Writes whole pages of appended blocks once at least `min_bytes` are pending (no
    /// fdatasync): see [`OpenSegment::write_behind`].
    pub async fn write_behind(&mut self, min_bytes: u64) -> Result<(), PlaneError> {
        self.check()?;
        self.open_mut()?.write_behind(min_bytes).await
    }

    /// Bytes appended to the open segment and not yet written.
    #[cfg(any(test, feature = "testing"))]
    pub fn unwritten_bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, OpenSegment::unwritten_bytes)
    }

    /// Whether the open segment holds a frame and has been open at least `age`.
    pub fn is_due_for_seal(&self, age: std::time::Duration) -> bool {
        self.open.as_ref().is_some_and(OpenSegment::has_frames) && self.opened_at.elapsed() >= age
    }

    /// Whether the log refuses writes after an I/O failure.
    #[cfg(any(test, feature = "testing"))]
    pub fn is_poisoned(&self) -> bool {
        self.check().is_err()
    }

    /// Logical end of the open segment (where the next frame goes).
    #[cfg(any(test, feature = "testing"))]
    pub fn open_end(&self) -> Option<(u64, u64)> {
        self.open.as_ref().map(|s| (s.id().seq, s.end()))
    }

    /// First half of a commit that lets appends and reads continue during the fsync:
    /// writes the pending pages and returns what to sync. Then call
    /// `job.sync().await` without holding the log, and [`PlaneLog::finish_commit`].
    pub async fn start_commit(&mut self) -> Result<Option<CommitJob<D::File>>, PlaneError> {
        self.check()?;
        self.harvest_sealing().await?;
        let seg = self.open_mut()?;
        let seq = seg.id().seq;
        Ok(seg
            .start_commit()
            .await?
            .map(|(file, end)| CommitJob { file, seq, end }))
    }

    /// Ends a commit with its fdatasync result. A failure poisons the log. If the
    /// segment was sealed in the meantime the seal made it durable.
    pub fn finish_commit(
        &mut self,
        job: CommitJob<D::File>,
        synced: std::io::Result<()>,
    ) -> Result<(), PlaneError> {
        let result = match self.open.as_mut().filter(|s| s.id().seq == job.seq) {
            Some(seg) => seg.finish_commit(job.end, synced).map(|_| ()),
            None => synced.map_err(PlaneError::Io),
        };
        // A background seal that failed meanwhile fails this commit too.
        let result = result.and_then(|()| self.sealing_ended().map(|_| ()));
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Makes every appended block durable (one write and one fdatasync).
    #[cfg(any(test, feature = "testing"))]
    pub async fn commit(&mut self) -> Result<(), PlaneError> {
        self.check()?;
        self.harvest_sealing().await?;
        self.open_mut()?.commit().await?;
        // A background seal that failed meanwhile fails this commit too.
        self.sealing_ended().map(|_| ())
    }

    /// Reads a block's bytes (the caller verifies them against the CID).
    #[cfg(any(test, feature = "testing"))]
    pub async fn read(&self, loc: Location) -> Result<Vec<u8>, PlaneError> {
        self.source(loc)?.read().await
    }

    /// Where a block's bytes are: call [`BlockSource::read`] after letting go of the
    /// log, so reads run concurrently with each other and with appends and commits.
    pub fn source(&self, loc: Location) -> Result<BlockSource<D::File>, PlaneError> {
        if let Some(seg) = self.open.as_ref().filter(|s| s.id().seq == loc.seq) {
            return seg.source(loc.offset, loc.len as usize);
        }
        let file = match self.sealing.as_ref().filter(|s| s.seq == loc.seq) {
            // Every frame of a sealing segment is written.
            Some(s) => s.file.clone(),
            None => {
                let seg = self
                    .sealed
                    .get(&loc.seq)
                    .ok_or_else(|| PlaneError::Corrupt(format!("no local segment {}", loc.seq)))?;
                self.local_file(loc.seq, seg)?
            }
        };
        Ok(BlockSource::File {
            file,
            offset: loc.offset,
            len: loc.len as usize,
            tail: Vec::new(),
        })
    }

    /// A sealed segment's local file, or [`PlaneError::Retired`] with where it went.
    fn local_file(
        &self,
        seq: u64,
        seg: &SealedSegment<D::File>,
    ) -> Result<Rc<D::File>, PlaneError> {
        seg.file.clone().ok_or_else(|| PlaneError::Retired {
            segment: car_name(self.id(seq)),
            location: seg.location.clone().unwrap_or_default(),
        })
    }

    /// Deletes the local copy of a shipped segment (the lifecycle's retire steps): mark
    /// `Shipped → Retiring`, unlink the CAR, fsync the directory, then `Retired`. The
    /// index file stays, so the block index still places every block (now on the cold
    /// tier, at the recorded location). Reads already holding the file finish from it.
    /// A segment that is not `Shipped` with a location is refused and nothing changes.
    pub async fn retire(&mut self, seq: u64) -> Result<(), PlaneError> {
        self.check()?;
        let rec = self
            .catalog
            .segment(self.id(seq))
            .await
            .map_err(PlaneError::Catalog)?
            .ok_or_else(|| PlaneError::Corrupt(format!("segment {seq} has no record")))?;
        let location = match (&rec.state, &rec.location) {
            (SegmentState::Shipped, Some(l)) => l.clone(),
            _ => {
                return Err(PlaneError::Corrupt(format!(
                    "segment {seq} is {:?}, not shipped: it cannot be retired",
                    rec.state
                )));
            }
        };
        if !self.sealed.contains_key(&seq) {
            return Err(PlaneError::Corrupt(format!("no local segment {seq}")));
        }
        let up = || SegmentUpdate {
            now_ms: now_ms(),
            ..SegmentUpdate::default()
        };
        self.transition(seq, SegmentState::Shipped, SegmentState::Retiring, up())
            .await?;
        if let Some(seg) = self.sealed.get_mut(&seq) {
            seg.file = None;
            seg.location = Some(location);
        }
        self.unlink_if_present(&car_name(self.id(seq))).await?;
        self.disk.sync_dir().await?;
        self.transition(seq, SegmentState::Retiring, SegmentState::Retired, up())
            .await
    }

    /// The whole file of a sealed local segment.
    pub async fn read_segment(&self, seq: u64) -> Result<Vec<u8>, PlaneError> {
        let seg = self
            .sealed
            .get(&seq)
            .ok_or_else(|| PlaneError::Corrupt(format!("no local segment {seq}")))?;
        let file = self.local_file(seq, seg)?;
        let len = file.file_len().await?;
        Ok(file.read_at(0, len as usize).await?)
    }

    /// Whether the sealed segment `seq` still has its local file (it is not retired).
    pub fn is_local(&self, seq: u64) -> bool {
        self.sealed.get(&seq).is_some_and(|s| s.file.is_some())
    }

    /// Indexes of the sealed segments (local and retired), by sequence number.
    pub fn sealed_indexes(&self) -> impl Iterator<Item = (u64, &SegmentIndex)> {
        self.sealed.iter().map(|(seq, s)| (*seq, &s.index))
    }

    /// The sequence number the next segment will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The open segment's sequence number.
    pub fn open_seq(&self) -> Option<u64> {
        self.open.as_ref().map(|s| s.id().seq)
    }
}
