//! The embedded catalog: one redb database file in the data directory, served by a
//! thread of its own (`ingot-catalog`, see [`server`]).
//!
//! Every call sends a request to that thread and awaits its answer, so no shard thread
//! and no tokio worker runs a redb transaction or waits for its fsync: they await a
//! oneshot channel, which works on monoio and tokio alike. Writes queued together are
//! committed together (group commit), and every write is answered only after a commit
//! with immediate durability (fsync) returned, which the lifecycle's mark-then-write
//! ordering relies on.
//!
//! A request is sent when its method is called, not when the future is first polled, so
//! calls made one after another reach the thread in that order.
//!
//! The handle is not `Clone`: share it in an `Arc`. Dropping it closes the queue and
//! joins the thread after it has answered what was queued, so when the drop returns the
//! database is closed and its file lock released (a reopen of the same data directory
//! right after an engine is dropped does not race the old thread).

mod server;
mod tables;
#[cfg(test)]
mod tests;

use super::{
    AccessKey, BucketRecord, Catalog, CatalogError, CatalogResult, HeadCheckpoint, PartRecord,
    SegmentRecord, SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::segment::SegmentId;
use redb::{ReadTransaction, WriteTransaction};
use server::{Counters, Request, Write};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

/// The name of the thread that serves an embedded catalog.
pub const THREAD_NAME: &str = "ingot-catalog";

/// What the catalog thread has done since the catalog opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Write requests answered (committed or failed).
    pub writes: u64,
    /// Durable write transactions committed: fewer than `writes` when writes queued
    /// together shared a commit.
    pub commits: u64,
}

/// The redb-backed catalog: a handle to the thread that owns the database.
#[derive(Debug)]
pub struct EmbeddedCatalog {
    /// `None` only while dropping, so the thread sees the queue close before the join.
    requests: Option<std::sync::mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl EmbeddedCatalog {
    /// Opens (or creates) the catalog database at `path`, creating every table, and
    /// starts its thread. The database is opened here, on the caller, so a failure
    /// (another process holds it, a bad file) is this call's error.
    pub fn open(path: &Path) -> CatalogResult<Self> {
        let db = tables::open(path)?;
        let (requests, queue) = std::sync::mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread = {
            let counters = counters.clone();
            crate::threads::spawn_helper(THREAD_NAME, move || server::serve(db, queue, counters))
                .map_err(|e| CatalogError::Storage(format!("starting {THREAD_NAME}: {e}")))?
        };
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
            counters,
        })
    }

    /// What the thread has done so far.
    pub fn stats(&self) -> EmbeddedStats {
        EmbeddedStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    fn send(&self, r: Request) -> CatalogResult<()> {
        let requests = self
            .requests
            .as_ref()
            .expect("the queue closes only in drop");
        requests.send(r).map_err(|_| stopped())
    }

    /// Sends a read to the thread; the future awaits its answer.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> CatalogResult<T> + Send + 'static,
    ) -> impl Future<Output = CatalogResult<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Request::Read(Box::new(move |txn| {
            let _ = reply.send(txn.map_err(Clone::clone).and_then(f));
        })));
        wait(sent, answer)
    }

    /// Sends a write to the thread; the future awaits its answer, which comes after the
    /// write is durable. `f` may run more than once (see `server::commit_writes`), each
    /// time on the same state, so it must depend on nothing but its arguments and `txn`.
    fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&WriteTransaction) -> CatalogResult<T> + Send + 'static,
    ) -> impl Future<Output = CatalogResult<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let job = Write {
            f,
            out: None,
            reply,
        };
        let sent = self.send(Request::Write(Box::new(job)));
        wait(sent, answer)
    }

    /// Runs `f` on the catalog thread between requests (tests: to see the thread, or to
    /// hold it while requests queue up).
    #[cfg(test)]
    fn run_on_thread(&self, f: impl FnOnce() + Send + 'static) {
        self.send(Request::Read(Box::new(move |_| f())))
            .expect("catalog thread running");
    }
}

fn stopped() -> CatalogError {
    CatalogError::Storage(format!("{THREAD_NAME} thread stopped"))
}

async fn wait<T>(
    sent: CatalogResult<()>,
    answer: oneshot::Receiver<CatalogResult<T>>,
) -> CatalogResult<T> {
    sent?;
    answer.await.map_err(|_| stopped())?
}

impl Drop for EmbeddedCatalog {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("{THREAD_NAME} thread panicked");
        }
    }
}

impl Catalog for EmbeddedCatalog {
    fn create_bucket(&self, rec: BucketRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::create_bucket(txn, &rec))
    }
    fn bucket(
        &self,
        name: &str,
    ) -> impl Future<Output = CatalogResult<Option<BucketRecord>>> + Send {
        let name = name.to_owned();
        self.read(move |txn| tables::bucket(txn, &name))
    }
    fn buckets(&self) -> impl Future<Output = CatalogResult<Vec<BucketRecord>>> + Send {
        self.read(tables::buckets)
    }
    fn delete_bucket(&self, name: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let name = name.to_owned();
        self.write(move |txn| tables::delete_bucket(txn, &name))
    }
    fn checkpoint_heads(
        &self,
        heads: &[HeadCheckpoint],
    ) -> impl Future<Output = CatalogResult<()>> + Send {
        let heads = heads.to_vec();
        self.write(move |txn| tables::checkpoint_heads(txn, &heads))
    }
    fn heads(&self) -> impl Future<Output = CatalogResult<Vec<HeadCheckpoint>>> + Send {
        self.read(tables::heads)
    }
    fn create_segment(&self, rec: SegmentRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::create_segment(txn, &rec))
    }
    fn transition_segment(
        &self,
        id: SegmentId,
        from: SegmentState,
        to: SegmentState,
        update: SegmentUpdate,
    ) -> impl Future<Output = CatalogResult<SegmentRecord>> + Send {
        self.write(move |txn| tables::transition_segment(txn, id, from, to, update.clone()))
    }
    fn segment(
        &self,
        id: SegmentId,
    ) -> impl Future<Output = CatalogResult<Option<SegmentRecord>>> + Send {
        self.read(move |txn| tables::segment(txn, id))
    }
    fn segments(&self) -> impl Future<Output = CatalogResult<Vec<SegmentRecord>>> + Send {
        self.read(tables::segments)
    }
    fn remove_segment(&self, id: SegmentId) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::remove_segment(txn, id))
    }
    fn create_upload(&self, rec: UploadRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::create_upload(txn, &rec))
    }
    fn upload(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<UploadRecord>>> + Send {
        let upload_id = upload_id.to_owned();
        self.read(move |txn| tables::upload(txn, &upload_id))
    }
    fn uploads(
        &self,
        bucket: &str,
    ) -> impl Future<Output = CatalogResult<Vec<UploadRecord>>> + Send {
        let bucket = bucket.to_owned();
        self.read(move |txn| tables::uploads(txn, &bucket))
    }
    fn upload_places(
        &self,
        bucket: &str,
        from: &UploadCursor,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<UploadCursor>>> + Send {
        let (bucket, from) = (bucket.to_owned(), from.clone());
        self.read(move |txn| tables::upload_places(txn, &bucket, &from, limit))
    }
    fn put_part(&self, part: PartRecord) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::put_part(txn, &part))
    }
    fn parts(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = CatalogResult<Vec<PartRecord>>> + Send {
        let upload_id = upload_id.to_owned();
        self.read(move |txn| tables::parts(txn, &upload_id))
    }
    fn remove_upload(&self, upload_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let upload_id = upload_id.to_owned();
        self.write(move |txn| tables::remove_upload(txn, &upload_id))
    }
    fn put_key(&self, key: AccessKey) -> impl Future<Output = CatalogResult<()>> + Send {
        self.write(move |txn| tables::put_key(txn, &key))
    }
    fn key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = CatalogResult<Option<AccessKey>>> + Send {
        let id = access_key_id.to_owned();
        self.read(move |txn| tables::key(txn, &id))
    }
    fn keys(&self) -> impl Future<Output = CatalogResult<Vec<AccessKey>>> + Send {
        self.read(tables::keys)
    }
    fn remove_key(&self, access_key_id: &str) -> impl Future<Output = CatalogResult<()>> + Send {
        let id = access_key_id.to_owned();
        self.write(move |txn| tables::remove_key(txn, &id))
    }
}
