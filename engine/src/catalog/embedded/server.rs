//! The catalog thread: owns the redb database and runs every request sent to it.
//!
//! redb commits fsync on the thread that commits. Run on the caller, that thread was a
//! shard's io_uring thread (segment lifecycle changes, checkpoints) or a tokio worker
//! (multipart records, keys), each stalled for a disk flush. Here the flush happens on
//! this thread only, and callers await a oneshot answer.
//!
//! Group commit: the thread takes every request queued when it wakes (up to
//! [`MAX_BATCH`]) and runs them in arrival order. Consecutive writes share one write
//! transaction and one durable commit; each is answered only after that commit returns.
//! Consecutive reads share one read transaction, begun after the writes before them
//! committed, so a request always sees every write sent before it.

use super::tables::storage;
use crate::catalog::{CatalogError, CatalogResult};
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use tokio::sync::oneshot;

/// The most requests the thread takes into one round, which bounds one write
/// transaction's size and the wait of the last request in it.
pub(super) const MAX_BATCH: usize = 1024;

/// A read: runs in a read transaction (or gets the error of beginning one) and sends its
/// own answer.
pub(super) type ReadJob = Box<dyn FnOnce(Result<&ReadTransaction, &CatalogError>) + Send>;

/// What the catalog thread is asked to do.
pub(super) enum Request {
    Read(ReadJob),
    Write(Box<dyn WriteJob>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Read(_) => "Request::Read",
            Request::Write(_) => "Request::Write",
        })
    }
}

/// A write that can run more than once in a transaction that may be aborted, and is
/// answered once, after the transaction that kept its last run committed.
pub(super) trait WriteJob: Send {
    /// Runs the write in `txn`, keeping its result for [`WriteJob::answer`].
    fn run(&mut self, txn: &WriteTransaction) -> CatalogResult<()>;
    /// Sends the kept result, or `failure`.
    fn answer(self: Box<Self>, failure: Option<CatalogError>);
}

/// A write as a closure over owned arguments, with the caller's answer channel.
pub(super) struct Write<T, F> {
    pub(super) f: F,
    pub(super) out: Option<T>,
    pub(super) reply: oneshot::Sender<CatalogResult<T>>,
}

impl<T, F> WriteJob for Write<T, F>
where
    T: Send,
    F: Fn(&WriteTransaction) -> CatalogResult<T> + Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> CatalogResult<()> {
        self.out = Some((self.f)(txn)?);
        Ok(())
    }

    fn answer(self: Box<Self>, failure: Option<CatalogError>) {
        let result = match failure {
            Some(e) => Err(e),
            None => {
                let out = self.out;
                assert!(out.is_some(), "a committed write ran and kept its result");
                Ok(out.expect("asserted"))
            }
        };
        // A caller that stopped waiting has nothing to be told.
        let _ = self.reply.send(result);
    }
}

/// Counts the thread keeps, shared with the handles.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Write requests answered (committed or failed).
    pub(super) writes: AtomicU64,
    /// Durable commits of write transactions.
    pub(super) commits: AtomicU64,
}

/// The thread's body: serves requests until every handle is gone and the queue is
/// drained, then drops the database (releasing its file lock) and returns.
pub(super) fn serve(db: Database, requests: Receiver<Request>, counters: Arc<Counters>) {
    let mut round = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = requests.recv() {
        round.push(first);
        while round.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(r) => round.push(r),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        run_round(&db, &mut round, &counters);
        debug_assert!(round.is_empty(), "every request of a round is answered");
    }
}

/// Runs one round's requests in arrival order, grouping consecutive writes and
/// consecutive reads.
fn run_round(db: &Database, round: &mut Vec<Request>, counters: &Counters) {
    let mut writes: Vec<Box<dyn WriteJob>> = Vec::new();
    let mut reads: Vec<ReadJob> = Vec::new();
    for r in round.drain(..) {
        match r {
            Request::Write(w) => {
                run_reads(db, &mut reads);
                writes.push(w);
            }
            Request::Read(r) => {
                commit_writes(db, &mut writes, counters);
                reads.push(r);
            }
        }
    }
    commit_writes(db, &mut writes, counters);
    run_reads(db, &mut reads);
}

fn run_reads(db: &Database, reads: &mut Vec<ReadJob>) {
    if reads.is_empty() {
        return;
    }
    match db.begin_read().map_err(storage) {
        Ok(txn) => reads.drain(..).for_each(|r| r(Ok(&txn))),
        Err(e) => reads.drain(..).for_each(|r| r(Err(&e))),
    }
}

/// How one attempt at committing a group of writes ended.
enum Attempt {
    /// Every write ran and the transaction committed; or beginning or committing it
    /// failed, and that error is every write's answer.
    Finished(Option<CatalogError>),
    /// The write at this index (in the group) failed; the transaction was aborted, so
    /// nothing of the group is written.
    FailedAt(usize, CatalogError),
}

/// Commits `writes` in as few durable transactions as their failures allow, answering
/// each in order.
///
/// A failing write must not fail its neighbours, and it may fail after writing part of
/// what it meant to (a checkpoint of several heads meets a missing bucket). redb cannot
/// roll back part of a write transaction once it holds changes (savepoints need a clean
/// one), and validating every write before it writes would copy each write's checks. So
/// a failure aborts the group's transaction, the writes before the failing one are run
/// again in a fresh transaction and committed, the failing one runs alone (failing again
/// on the same state, its error is its answer), and the writes after it form the next
/// group. The writes are deterministic in the state they see, so a rerun does what the
/// first run did; failures are rare (conflicts, missing records), so the cost is an
/// aborted transaction per failure, never an extra fsync for the writes that succeed.
fn commit_writes(db: &Database, writes: &mut Vec<Box<dyn WriteJob>>, counters: &Counters) {
    let mut queue: std::collections::VecDeque<_> = writes.drain(..).collect();
    while !queue.is_empty() {
        let mut end = queue.len();
        loop {
            let group = queue.make_contiguous();
            match attempt(db, &mut group[..end], counters) {
                Attempt::Finished(failure) => {
                    counters.writes.fetch_add(end as u64, Ordering::Relaxed);
                    for w in queue.drain(..end) {
                        w.answer(failure.clone());
                    }
                    break;
                }
                Attempt::FailedAt(0, e) => {
                    let w = queue.pop_front().expect("the failed write is queued");
                    counters.writes.fetch_add(1, Ordering::Relaxed);
                    w.answer(Some(e));
                    break;
                }
                Attempt::FailedAt(at, _) => {
                    debug_assert!(at < end, "the failing write is in the group");
                    end = at;
                }
            }
        }
    }
}

/// Runs `group` in one write transaction and commits it durably.
fn attempt(db: &Database, group: &mut [Box<dyn WriteJob>], counters: &Counters) -> Attempt {
    assert!(!group.is_empty(), "a group has a write");
    let txn = match db.begin_write().map_err(storage) {
        Ok(t) => t,
        Err(e) => return Attempt::Finished(Some(e)),
    };
    // A new transaction commits with immediate durability (redb's default): the commit
    // returns after the fsync, and only then are the writes answered.
    for (i, w) in group.iter_mut().enumerate() {
        if let Err(e) = w.run(&txn) {
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, "catalog: aborting a write transaction failed");
            }
            return Attempt::FailedAt(i, e);
        }
    }
    let committed = txn.commit().map_err(storage);
    if committed.is_ok() {
        counters.commits.fetch_add(1, Ordering::Relaxed);
    }
    Attempt::Finished(committed.err())
}
