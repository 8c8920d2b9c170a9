//! The group-commit state machine (ARCHITECTURE.md, write path steps 3–6): where each
//! request and batch is, and when a head checkpoint may be taken.
//!
//! A request joins the pending batch (**collecting**); the data stage takes the batch
//! and makes its chunks durable (**data sync**); the batch waits for the meta stage
//! (**synced**, at most two batches); the meta stage appends and syncs its blocks
//! (**unpublished**: [`Unpublished`] lives from the first append until the trees are
//! published; it is *appending* until the meta plane's fdatasync returns, then
//! *durable*, and only a durable batch changes bucket records or publishes) and
//! answers it. A head checkpoint names the meta segment that was open
//! when it was taken, so it must never be taken while a batch is unpublished: that
//! batch's commits may sit in an older segment while its heads are not dirty yet, and a
//! restart would scan past an acknowledged write. [`GroupCommit::checkpoint_permit`]
//! hands out the proof ([`CheckpointPermit`]) only when no batch is unpublished, and the
//! dirty heads can be taken only with one.
//!
//! Everything here is single-threaded (one shard thread): `Cell`s and `RefCell`s, never
//! borrowed across an await; the `Notify`s wake the stages and the closers.

use super::op::{Blocks, Op};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::time::Duration;
use tokio::sync::Notify;

/// At most this many batches wait for the meta stage (the data stage waits for room):
/// one being applied and one behind it.
const MAX_SYNCED_BATCHES: usize = 2;

/// Where the meta stage is with its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaStage {
    /// No batch between its first append and its publication.
    Idle,
    /// A batch's blocks are being appended or synced; its heads are not published.
    Appending,
    /// A batch's blocks are durable (the meta plane's fdatasync returned); its bucket
    /// records may change now, its heads are not published yet.
    Durable,
    /// A batch failed after it may have appended (the failure poisoned the shard, or a
    /// bucket record was refused): its commits may be in the log, its heads were
    /// never published. No checkpoint is taken until a later batch publishes (or the
    /// shard closes).
    Abandoned,
}

/// The group commit of one shard: the pending batch, the batches between the stages,
/// the meta stage's place in its batch, the seal flag and the heads to checkpoint.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    /// Requests waiting for the next batch.
    pending: RefCell<Vec<Op>>,
    /// Raised when a request joins `pending` and when the shard stops.
    pending_ready: Notify,
    /// Batches whose data is durable, waiting for the meta stage, oldest first.
    synced: RefCell<VecDeque<Vec<Op>>>,
    synced_ready: Notify,
    /// Raised by the meta stage after each batch it answered.
    meta_done: Notify,
    /// Raised after each batch is answered and when the commit loop stops.
    batch_done: Notify,
    /// Batches taken and not answered yet (syncing data, synced, or in the meta stage).
    in_flight: Cell<usize>,
    data_stage_done: Cell<bool>,
    closing: Cell<bool>,
    meta_stage: Cell<MetaStage>,
    /// A seal (and the checkpoint after it) is running.
    sealing: Cell<bool>,
    /// The meta stage's block vectors (request blocks, tree blocks), emptied and kept
    /// between batches so the hot path does not regrow them.
    block_buffers: RefCell<[Blocks; 2]>,
    /// Buckets whose head moved since the last checkpoint.
    dirty_heads: RefCell<BTreeSet<String>>,
    /// Meta-plane segment open at the last checkpoint.
    checkpoint_seq: Cell<u64>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            pending: RefCell::new(Vec::new()),
            pending_ready: Notify::new(),
            synced: RefCell::new(VecDeque::new()),
            synced_ready: Notify::new(),
            meta_done: Notify::new(),
            batch_done: Notify::new(),
            in_flight: Cell::new(0),
            data_stage_done: Cell::new(false),
            closing: Cell::new(false),
            meta_stage: Cell::new(MetaStage::Idle),
            sealing: Cell::new(false),
            block_buffers: RefCell::default(),
            dirty_heads: RefCell::new(BTreeSet::new()),
            checkpoint_seq: Cell::new(0),
        }
    }
}

/// A batch between its first meta-plane append and its publication. While one lives no
/// head checkpoint is handed out. It is made durable by [`Unpublished::meta_synced`]
/// and ends by [`Unpublished::published`] (durable only) or [`Unpublished::refused`]
/// (nothing appended); dropped otherwise (the batch failed), the meta stage is left
/// [`MetaStage::Abandoned`].
#[must_use = "a batch ends published or refused"]
pub(crate) struct Unpublished<'a> {
    stage: &'a Cell<MetaStage>,
}

impl Unpublished<'_> {
    /// The batch's blocks are durable: every block its bucket records and heads refer
    /// to survives a crash.
    pub(crate) fn meta_synced(&self) {
        assert_eq!(self.stage.get(), MetaStage::Appending);
        self.stage.set(MetaStage::Durable);
    }

    /// Whether the batch's blocks are durable (bucket records may change).
    pub(crate) fn is_durable(&self) -> bool {
        self.stage.get() == MetaStage::Durable
    }

    /// The batch's trees are published: a checkpoint now covers its heads.
    pub(crate) fn published(self) {
        self.end(MetaStage::Durable);
    }

    /// Nothing of the batch was appended (refused for lack of space): as if it never ran.
    pub(crate) fn refused(self) {
        self.end(MetaStage::Appending);
    }

    fn end(self, from: MetaStage) {
        assert_eq!(self.stage.get(), from);
        self.stage.set(MetaStage::Idle);
        std::mem::forget(self);
    }
}

impl Drop for Unpublished<'_> {
    fn drop(&mut self) {
        assert!(matches!(
            self.stage.get(),
            MetaStage::Appending | MetaStage::Durable
        ));
        self.stage.set(MetaStage::Abandoned);
    }
}

/// Proof that no batch is between its append and its publication, taken just before
/// the dirty heads are (no await between the two: a batch may start appending at any
/// await).
#[derive(Debug)]
pub(crate) struct CheckpointPermit<'a> {
    _commit: PhantomData<&'a GroupCommit>,
}

/// A running seal; the flag drops with it.
pub(crate) struct Sealing<'a> {
    flag: &'a Cell<bool>,
}

impl Drop for Sealing<'_> {
    fn drop(&mut self) {
        assert!(
            self.flag.replace(false),
            "a seal ended that was not running"
        );
    }
}

impl GroupCommit {
    // --- requests ---

    /// Whether the shard stopped taking writes.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Stops taking writes; the commit loop finishes what is queued.
    pub(crate) fn close(&self) {
        self.closing.set(true);
        self.pending_ready.notify_one();
    }

    /// A request joins the pending batch (the caller checked the shard is writable).
    pub(crate) fn enqueue(&self, op: Op) {
        debug_assert!(!self.closing.get(), "a request joined a closing shard");
        self.pending.borrow_mut().push(op);
        self.pending_ready.notify_one();
    }

    // --- data stage ---

    /// Waits up to `wait` for a request to join.
    pub(crate) async fn wait_for_requests(&self, wait: Duration) {
        let _ = monoio::time::timeout(wait, self.pending_ready.notified()).await;
    }

    /// Takes up to `max_ops` pending requests as a batch; a non-empty one is in flight
    /// until [`GroupCommit::data_failed`] or [`GroupCommit::answered`] counts it out.
    pub(crate) fn take_batch(&self, max_ops: usize) -> Vec<Op> {
        let mut pending = self.pending.borrow_mut();
        let n = pending.len().min(max_ops);
        let ops: Vec<Op> = pending.drain(..n).collect();
        if !pending.is_empty() {
            self.pending_ready.notify_one();
        }
        if !ops.is_empty() {
            self.in_flight.set(self.in_flight.get() + 1);
        }
        assert!(ops.len() <= max_ops);
        ops
    }

    /// A batch's data is durable: it goes to the meta stage.
    pub(crate) fn data_synced(&self, ops: Vec<Op>) {
        let mut synced = self.synced.borrow_mut();
        synced.push_back(ops);
        assert!(synced.len() <= MAX_SYNCED_BATCHES);
        assert!(synced.len() <= self.in_flight.get());
        drop(synced);
        self.synced_ready.notify_one();
    }

    /// The data stage failed a batch (and answered it).
    pub(crate) fn data_failed(&self) {
        self.count_out(1);
        self.batch_done.notify_waiters();
    }

    /// Waits until at most one synced batch waits for the meta stage.
    pub(crate) async fn wait_for_meta_room(&self) {
        while self.synced.borrow().len() >= MAX_SYNCED_BATCHES {
            self.meta_done.notified().await;
        }
    }

    /// The data stage takes no more batches; the meta stage ends once it has the rest.
    pub(crate) fn data_stage_stopped(&self) {
        assert!(self.closing.get());
        self.data_stage_done.set(true);
        self.synced_ready.notify_one();
    }

    /// The commit loop ended: closers waiting for the last batch look again.
    pub(crate) fn loop_stopped(&self) {
        assert!(self.data_stage_done.get());
        assert_eq!(
            self.in_flight.get(),
            0,
            "the commit loop ended with a batch in flight"
        );
        self.batch_done.notify_waiters();
    }

    // --- meta stage ---

    /// Every batch whose data is durable, in order, as one meta batch (up to
    /// `max_ops`), and how many batches it merged. When the data stage has nothing to
    /// sync (small bodies ride in the meta plane) it passes batches on faster than a
    /// meta sync completes: merged, they share one fdatasync.
    pub(crate) fn take_synced(&self, max_ops: usize) -> Option<(Vec<Op>, usize)> {
        let mut synced = self.synced.borrow_mut();
        let mut ops = synced.pop_front()?;
        let mut batches = 1;
        while synced
            .front()
            .is_some_and(|next| ops.len() + next.len() <= max_ops)
        {
            ops.extend(synced.pop_front().into_iter().flatten());
            batches += 1;
        }
        assert!(batches <= self.in_flight.get());
        Some((ops, batches))
    }

    /// Whether the meta stage has seen the last batch: the data stage stopped and
    /// nothing is left to take.
    pub(crate) fn meta_stage_finished(&self) -> bool {
        self.data_stage_done.get() && self.synced.borrow().is_empty()
    }

    /// Waits for a synced batch (or the data stage's end).
    pub(crate) async fn wait_for_synced(&self) {
        self.synced_ready.notified().await;
    }

    /// The meta stage's block vectors, empty.
    pub(crate) fn take_block_buffers(&self) -> [Blocks; 2] {
        let buffers = std::mem::take(&mut *self.block_buffers.borrow_mut());
        debug_assert!(buffers.iter().all(Vec::is_empty));
        buffers
    }

    /// Returns the meta stage's block vectors (emptied) for the next batch.
    pub(crate) fn keep_block_buffers(&self, buffers: [Blocks; 2]) {
        assert!(buffers.iter().all(Vec::is_empty));
        *self.block_buffers.borrow_mut() = buffers;
    }

    /// The meta stage is about to append a batch: until it is published, no head
    /// checkpoint is taken.
    pub(crate) fn begin_append(&self) -> Unpublished<'_> {
        let stage = self.meta_stage.get();
        assert!(
            matches!(stage, MetaStage::Idle | MetaStage::Abandoned),
            "two meta batches at once"
        );
        self.meta_stage.set(MetaStage::Appending);
        Unpublished {
            stage: &self.meta_stage,
        }
    }

    /// The meta stage answered `batches` batches.
    pub(crate) fn answered(&self, batches: usize) {
        assert!(matches!(
            self.meta_stage.get(),
            MetaStage::Idle | MetaStage::Abandoned
        ));
        self.count_out(batches);
        self.meta_done.notify_waiters();
        self.batch_done.notify_waiters();
    }

    fn count_out(&self, batches: usize) {
        let in_flight = self.in_flight.get();
        assert!(
            batches >= 1 && batches <= in_flight,
            "{batches} of {in_flight} batches"
        );
        self.in_flight.set(in_flight - batches);
    }

    // --- closing ---

    /// Waits until no request is pending and no batch in flight (the shard is closing).
    pub(crate) async fn wait_drained(&self) {
        assert!(self.closing.get());
        while !self.pending.borrow().is_empty() || self.in_flight.get() > 0 {
            self.batch_done.notified().await;
        }
    }

    // --- seals and checkpoints ---

    /// Starts a seal, unless one is running.
    pub(crate) fn begin_seal(&self) -> Option<Sealing<'_>> {
        if self.sealing.replace(true) {
            return None;
        }
        Some(Sealing {
            flag: &self.sealing,
        })
    }

    /// Proof that a checkpoint may be taken now: no batch is between its append and its
    /// publication.
    pub(crate) fn checkpoint_permit(&self) -> Option<CheckpointPermit<'_>> {
        (self.meta_stage.get() == MetaStage::Idle).then_some(CheckpointPermit {
            _commit: PhantomData,
        })
    }

    /// The permit of a closing shard whose batches are all answered (a batch that
    /// failed after appending was never acknowledged: a checkpoint may pass it).
    pub(crate) fn drained_permit(&self) -> CheckpointPermit<'_> {
        assert!(self.closing.get());
        assert_eq!(self.in_flight.get(), 0);
        assert!(self.pending.borrow().is_empty());
        assert!(matches!(
            self.meta_stage.get(),
            MetaStage::Idle | MetaStage::Abandoned
        ));
        CheckpointPermit {
            _commit: PhantomData,
        }
    }

    /// A bucket's head moved (published, or derived by recovery from the log).
    pub(crate) fn mark_dirty(&self, bucket: &str) {
        self.dirty_heads.borrow_mut().insert(bucket.to_owned());
    }

    /// A deleted bucket has no head to checkpoint.
    pub(crate) fn forget_head(&self, bucket: &str) {
        self.dirty_heads.borrow_mut().remove(bucket);
    }

    /// The buckets whose heads moved since the last checkpoint, for a checkpoint.
    pub(crate) fn take_dirty(&self, _permit: CheckpointPermit<'_>) -> BTreeSet<String> {
        std::mem::take(&mut *self.dirty_heads.borrow_mut())
    }

    /// A checkpoint was not recorded: its heads stay dirty for the next one.
    pub(crate) fn restore_dirty(&self, names: BTreeSet<String>) {
        self.dirty_heads.borrow_mut().extend(names);
    }

    /// Meta-plane segment open at the last checkpoint.
    pub(crate) fn checkpoint_seq(&self) -> u64 {
        self.checkpoint_seq.get()
    }

    pub(crate) fn set_checkpoint_seq(&self, seq: u64) {
        self.checkpoint_seq.set(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_checkpoint_while_a_batch_is_unpublished() {
        let gc = GroupCommit::default();
        assert!(gc.checkpoint_permit().is_some());
        let batch = gc.begin_append();
        assert!(gc.checkpoint_permit().is_none());
        batch.meta_synced();
        assert!(batch.is_durable());
        assert!(gc.checkpoint_permit().is_none());
        batch.published();
        assert!(gc.checkpoint_permit().is_some());
        gc.begin_append().refused();
        assert!(gc.checkpoint_permit().is_some());
    }

    #[test]
    fn a_failed_batch_blocks_checkpoints_until_one_publishes() {
        let gc = GroupCommit::default();
        drop(gc.begin_append());
        assert!(gc.checkpoint_permit().is_none());
        let batch = gc.begin_append();
        batch.meta_synced();
        batch.published();
        assert!(gc.checkpoint_permit().is_some());
    }

    #[test]
    #[should_panic]
    fn a_batch_is_published_only_once_durable() {
        let gc = GroupCommit::default();
        gc.begin_append().published();
    }

    #[test]
    #[should_panic(expected = "two meta batches at once")]
    fn two_unpublished_batches_are_refused() {
        let gc = GroupCommit::default();
        let _first = gc.begin_append();
        let _second = gc.begin_append();
    }

    #[test]
    fn dirty_heads_go_with_a_permit_and_come_back_on_failure() {
        let gc = GroupCommit::default();
        gc.mark_dirty("a");
        gc.mark_dirty("b");
        gc.forget_head("b");
        let names = gc.take_dirty(gc.checkpoint_permit().expect("idle"));
        assert_eq!(names.iter().map(String::as_str).collect::<Vec<_>>(), ["a"]);
        gc.restore_dirty(names);
        let again = gc.take_dirty(gc.checkpoint_permit().expect("idle"));
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn one_seal_at_a_time() {
        let gc = GroupCommit::default();
        let seal = gc.begin_seal();
        assert!(seal.is_some());
        assert!(gc.begin_seal().is_none());
        drop(seal);
        assert!(gc.begin_seal().is_some());
    }
}
