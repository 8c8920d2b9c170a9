//! A shard: the buckets placed on it, their trees, and its two plane logs, driven by one
//! thread. All state is single-threaded (`Rc`, `RefCell`); the plane logs ([`Planes`]) sit
//! behind async mutexes because appends, reads and the commit loop interleave at awaits.
//!
//! - [`group_commit`]: the group commit's states and the checkpoint rule;
//! - [`commit`]: the group-commit loop (the write path's steps 3–6) and sealing;
//! - [`objects`]: the request handlers (buckets, PUT, GET, HEAD, DELETE, LIST, COPY);
//! - [`multipart`]: uploaded parts, Complete and Abort;
//! - [`recovery`]: opening a shard — block index, bucket heads re-derived from the
//!   meta plane after the last checkpoint.
//!
//! Invariant: no `RefCell` borrow is held across an await.

mod car_tasks;
mod commit;
mod group_commit;
mod join;
mod multipart;
mod nodes;
mod objects;
mod op;
mod recovery;

use crate::api::BucketHead;
use crate::block::verify_block;
use crate::block_lookup::{BlockCache, BlockIndex, BlockKey, BlockLoc};
use crate::catalog::Catalog;
use crate::error::{EngineError, EngineResult};
use crate::io::Disk;
use crate::metrics::ShardMetrics;
use crate::mst::{Mst, MstError, NodeStore};
use crate::plane::{Location, PlaneError, PlaneLog};
use crate::segment::Plane;
use bytes::Bytes;
use cid::Cid;
use group_commit::GroupCommit;
use multipart::Completions;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

pub use car_tasks::ExportReceiver;
#[cfg(feature = "testing")]
pub use {car_tasks::EXPORT_CHANNEL_BLOCKS, commit::ShardStats};
pub(crate) use join::join;
pub use multipart::{CompleteOptions, CompletePart, MAX_PARTS, MIN_PART_BYTES, StoredPart};
pub(crate) use objects::HashedPut;

/// Per-shard settings.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Size of a segment file; it is sealed when the next frame does not fit.
    pub seal_bytes: u64,
    /// A segment holding frames is sealed once it has been open this long.
    pub seal_age: Duration,
    /// Body chunk size.
    pub chunk_bytes: usize,
    /// Budget of the decoded MST node cache.
    pub node_cache_bytes: usize,
    /// Budget of the block cache (manifests, chunk indexes, chunks).
    pub block_cache_bytes: usize,
    /// A streaming body's pages are written once this many are pending, without waiting
    /// for the commit: large bodies reach the disk in bounded pieces, and a commit's
    /// fsync waits for at most one piece.
    pub write_behind_bytes: u64,
    /// A PUT whose declared length is at most this many bytes journals its chunks in
    /// the meta plane, with its manifest: the group commit that makes it durable
    /// then needs one fdatasync, not two (ARCHITECTURE.md, "Small bodies ride in the
    /// meta plane"). 0 sends every body to the data plane.
    pub meta_body_bytes: u64,
    /// Largest body a single PUT may carry.
    pub max_put_bytes: u64,
    /// Most requests one group commit takes; the rest wait for the next.
    pub max_batch_ops: usize,
    /// Entries of the io_uring submission queue of each shard thread: how many reads,
    /// writes and syncs can be submitted at once before a submission waits.
    pub uring_entries: u32,
    /// Where blocks of retired segments are read from; without it such a read fails
    /// with [`EngineError::ColdTier`].
    pub cold: Option<crate::cold::ColdHandle>,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            seal_bytes: 64 << 20,
            seal_age: Duration::from_secs(5),
            chunk_bytes: crate::chunker::DEFAULT_CHUNK_BYTES,
            node_cache_bytes: 64 << 20,
            block_cache_bytes: 256 << 20,
            write_behind_bytes: 1 << 20,
            meta_body_bytes: 16 << 10,
            max_put_bytes: crate::api::MAX_PUT_BYTES,
            max_batch_ops: 4096,
            uring_entries: 1024,
            cold: None,
        }
    }
}

impl ShardConfig {
    pub(crate) fn check(&self) -> EngineResult<()> {
        let bad = |s: &str| Err(EngineError::Startup(s.to_owned()));
        if !self.uring_entries.is_power_of_two() || !(8..=32768).contains(&self.uring_entries) {
            return bad("uring_entries must be a power of two from 8 to 32768");
        }
        if self.seal_bytes < (64 << 10) || self.seal_bytes > (4 << 30) - 4096 {
            return bad("seal_bytes must be between 64 KiB and 4 GiB");
        }
        if self.chunk_bytes == 0 || self.chunk_bytes as u64 > crate::format::chunks::MAX_CHUNK_BYTES
        {
            return bad("chunk_bytes must be between 1 byte and 16 MiB");
        }
        if self.chunk_bytes as u64 * 2 > self.seal_bytes {
            return bad("chunk_bytes must be at most half of seal_bytes");
        }
        if self.meta_body_bytes > 1 << 20 {
            return bad("meta_body_bytes must be at most 1 MiB");
        }
        if self.max_batch_ops == 0 {
            return bad("max_batch_ops must be at least 1");
        }
        Ok(())
    }
}

/// A bucket's trees: `working` takes the changes of the batch being committed,
/// `published` is what readers see (the last durable commit).
#[derive(Debug)]
pub(crate) struct BucketState {
    pub working: Mst,
    pub published: Mst,
    pub head: BucketHead,
}

/// One shard, in parts: its settings, the catalog, the two plane logs, the block
/// index and caches, the buckets' trees, the group commit, the running Completes, and
/// its metrics.
pub struct Shard<D: Disk, C: Catalog> {
    pub(crate) id: u32,
    pub(crate) config: ShardConfig,
    pub(crate) catalog: Arc<C>,
    pub(crate) planes: Planes<D, C>,
    pub(crate) blocks: BlockStores,
    pub(crate) buckets: RefCell<HashMap<String, BucketState>>,
    /// Requests and batches on their way through the group commit; the checkpoint rule.
    pub(crate) commit: GroupCommit,
    /// Multipart uploads whose Complete is running.
    pub(crate) completions: Completions,
    /// When a refusal for lack of space was last logged (at most one warning per
    /// [`NO_SPACE_WARN_EVERY`]; every refusal is counted in the metrics).
    pub(crate) no_space_warned_at: Cell<Option<std::time::Instant>>,
    pub(crate) metrics: Arc<ShardMetrics>,
}

/// Where a shard finds its blocks without reading a plane log: the block index (CID →
/// plane and place), the block cache (bytes, and decoded forms beside them) and the
/// decoded MST node cache.
pub(crate) struct BlockStores {
    pub(crate) index: RefCell<BlockIndex>,
    pub(crate) cache: RefCell<BlockCache>,
    pub(crate) nodes: RefCell<NodeStore>,
}

impl BlockStores {
    pub(crate) fn new(index: BlockIndex, config: &ShardConfig) -> Self {
        Self {
            index: RefCell::new(index),
            cache: RefCell::new(BlockCache::new(config.block_cache_bytes)),
            nodes: RefCell::new(NodeStore::new(
                crate::block::NoBlocks,
                config.node_cache_bytes,
            )),
        }
    }
}

/// A shard's two plane logs. They sit behind async mutexes because appends, reads and
/// the commit stages interleave at awaits.
pub(crate) struct Planes<D: Disk, C: Catalog> {
    pub(crate) data: Mutex<PlaneLog<D, C>>,
    pub(crate) meta: Mutex<PlaneLog<D, C>>,
    /// Raised when a spare segment job ends.
    pub(crate) spares_done: Notify,
}

impl<D: Disk, C: Catalog> Planes<D, C> {
    pub(crate) fn new(data: PlaneLog<D, C>, meta: PlaneLog<D, C>) -> Self {
        Self {
            data: Mutex::new(data),
            meta: Mutex::new(meta),
            spares_done: Notify::new(),
        }
    }

    pub(crate) fn get(&self, plane: Plane) -> &Mutex<PlaneLog<D, C>> {
        match plane {
            Plane::Data => &self.data,
            Plane::Meta => &self.meta,
        }
    }
}

impl<D: Disk, C: Catalog> std::fmt::Debug for Shard<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("buckets", &self.buckets.borrow().len())
            .field("blocks", &self.blocks.index.borrow().len())
            .finish()
    }
}

/// A full disk is warned about at most this often per shard (each refused request
/// would otherwise log a line).
pub(crate) const NO_SPACE_WARN_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn mst_error(e: MstError) -> EngineError {
    match e {
        MstError::InvalidKey(k) => EngineError::InvalidKey(k),
        MstError::NodeFull => EngineError::KeyspaceFull,
        other => EngineError::Corrupt(other.to_string()),
    }
}

impl<D: Disk + 'static, C: Catalog> Shard<D, C> {
    #[cfg(any(test, feature = "testing"))]
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn metrics(&self) -> &Arc<ShardMetrics> {
        &self.metrics
    }

    /// Whether an I/O failure stopped the shard's writes.
    pub fn is_poisoned(&self) -> bool {
        self.metrics.poisoned.load(Relaxed)
    }

    /// After a write failed: poisons the shard (later writes are refused, reads go
    /// on), unless the failure was a refusal for lack of space
    /// ([`EngineError::NoSpace`]), which changed nothing: that one is counted and
    /// warned about, at most once per [`NO_SPACE_WARN_EVERY`].
    pub(crate) fn write_failed(&self, why: &EngineError) {
        if let EngineError::NoSpace(_) = why {
            self.metrics.no_space_refusals.fetch_add(1, Relaxed);
            let last = self.no_space_warned_at.get();
            if last.is_none_or(|t| t.elapsed() >= NO_SPACE_WARN_EVERY) {
                self.no_space_warned_at.set(Some(std::time::Instant::now()));
                let refusals = self.metrics.no_space_refusals.load(Relaxed);
                tracing::warn!(shard = self.id, error = %why, refusals, "disk full: writes refused until space returns");
            }
            return;
        }
        if !self.metrics.poisoned.swap(true, Relaxed) {
            tracing::error!(shard = self.id, error = %why, "shard poisoned: writes refused");
        }
    }

    pub(crate) fn check_writable(&self) -> EngineResult<()> {
        if self.is_poisoned() {
            Err(EngineError::Poisoned(self.id))
        } else if self.commit.is_closing() {
            Err(EngineError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Names of the buckets on this shard.
    #[cfg(any(test, feature = "testing"))]
    pub fn bucket_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.buckets.borrow().keys().cloned().collect();
        v.sort();
        v
    }

    /// A bucket's committed head.
    pub fn head(&self, bucket: &str) -> EngineResult<BucketHead> {
        self.buckets
            .borrow()
            .get(bucket)
            .map(|b| b.head)
            .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))
    }

    pub(crate) fn published(&self, bucket: &str) -> EngineResult<Mst> {
        self.buckets
            .borrow()
            .get(bucket)
            .map(|b| b.published.clone())
            .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))
    }

    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn locate(&self, cid: &Cid) -> EngineResult<(BlockKey, Option<BlockLoc>)> {
        let key = block_key(cid)?;
        Ok((key, self.blocks.index.borrow().get(&key)))
    }

    /// Where a block is stored, for a block the cache did not have.
    fn stored_at(&self, cid: &Cid, key: &BlockKey) -> EngineResult<BlockLoc> {
        self.blocks
            .index
            .borrow()
            .get(key)
            .ok_or_else(|| EngineError::Corrupt(format!("block {cid} is missing")))
    }

    /// The plane a block is stored in, if the shard holds it (for tools and tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn block_plane(&self, cid: &Cid) -> Option<Plane> {
        self.locate(cid).ok()?.1.map(|l| l.plane())
    }

    /// A block's bytes, from the cache or a plane log, verified against its CID.
    pub async fn read_block(&self, cid: &Cid) -> EngineResult<Bytes> {
        // The cache first: a hit needs no block-index lookup (a cache miss of its own).
        let key = block_key(cid)?;
        if let Some(b) = self.blocks.cache.borrow_mut().get(&key) {
            self.metrics.block_cache_hits.fetch_add(1, Relaxed);
            return Ok(b);
        }
        self.metrics.block_cache_misses.fetch_add(1, Relaxed);
        let loc = self.stored_at(cid, &key)?;
        let bytes = self.read_at(loc.plane(), loc.location()).await?;
        if verify_block(cid, &bytes).is_err() {
            tracing::error!(shard = self.id, block = %cid, "block failed verification");
            return Err(EngineError::Corrupt(format!(
                "block {cid} does not match its CID"
            )));
        }
        let bytes = Bytes::from(bytes);
        self.blocks.cache.borrow_mut().insert(key, bytes.clone());
        Ok(bytes)
    }

    /// A block decoded by `decode`, from the block cache's decoded form when a reader
    /// kept one (no read, no decode), else read with [`Shard::read_block`], decoded, and
    /// kept beside the cached bytes.
    pub(crate) async fn decoded_block<T: std::any::Any + Send + Sync>(
        &self,
        cid: &Cid,
        decode: impl FnOnce(&[u8]) -> EngineResult<T>,
    ) -> EngineResult<Arc<T>> {
        let key = block_key(cid)?;
        if let Some(value) = self.blocks.cache.borrow_mut().decoded::<T>(&key) {
            self.metrics.block_cache_hits.fetch_add(1, Relaxed);
            return Ok(value);
        }
        let bytes = self.read_block(cid).await?;
        let value = Arc::new(decode(&bytes)?);
        // An estimate: decoded manifests and chunk indexes hold about their encoded
        // bytes again in strings and vectors, plus the value itself.
        let charge_bytes = bytes.len() + std::mem::size_of::<T>();
        self.blocks
            .cache
            .borrow_mut()
            .keep_decoded(&key, value.clone(), charge_bytes);
        Ok(value)
    }

    /// A block read and verified like [`Shard::read_block`] but not kept in the block
    /// cache (a walk over a whole bucket would evict everything else).
    pub async fn read_block_uncached(&self, cid: &Cid) -> EngineResult<Bytes> {
        let key = block_key(cid)?;
        if let Some(b) = self.blocks.cache.borrow_mut().get(&key) {
            return Ok(b);
        }
        let loc = self.stored_at(cid, &key)?;
        let bytes = self.read_at(loc.plane(), loc.location()).await?;
        if verify_block(cid, &bytes).is_err() {
            tracing::error!(shard = self.id, block = %cid, "block failed verification");
            return Err(EngineError::Corrupt(format!(
                "block {cid} does not match its CID"
            )));
        }
        Ok(Bytes::from(bytes))
    }

    pub(crate) fn plane(&self, plane: Plane) -> &Mutex<PlaneLog<D, C>> {
        self.planes.get(plane)
    }

    /// Reads without holding the plane log across the I/O: many reads are in flight at
    /// once, and none waits for an append, a write-behind or a commit's write.
    async fn read_at(&self, plane: Plane, loc: Location) -> EngineResult<Vec<u8>> {
        let source = self.plane(plane).lock().await.source(loc);
        match source {
            Ok(source) => Ok(source.read().await?),
            Err(PlaneError::Retired { segment, location }) => {
                self.read_cold(&segment, &location, loc).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a block of a retired segment from the cold tier (the caller verifies it).
    async fn read_cold(
        &self,
        segment: &str,
        location: &str,
        loc: Location,
    ) -> EngineResult<Vec<u8>> {
        let Some(cold) = &self.config.cold else {
            return Err(EngineError::ColdTier(format!(
                "segment {segment} is retired to {location} and no cold tier is configured"
            )));
        };
        self.metrics.cold_reads.fetch_add(1, Relaxed);
        match cold.read(location, loc.offset, loc.len).await {
            Ok(bytes) => {
                self.metrics
                    .cold_read_bytes
                    .fetch_add(bytes.len() as u64, Relaxed);
                Ok(bytes)
            }
            Err(e) => {
                self.metrics.cold_read_errors.fetch_add(1, Relaxed);
                tracing::warn!(shard = self.id, segment, location, error = %e, "cold read failed");
                Err(EngineError::ColdTier(format!("{location}: {e}")))
            }
        }
    }

    /// Retires a shipped segment: its local CAR goes, its blocks are read from the cold
    /// tier from now on. A meta-plane segment is retired only once a head checkpoint
    /// covers every commit in it (recovery never reads a retired segment); until then
    /// this answers `Ok(false)` and changes nothing.
    pub async fn retire_segment(&self, plane: Plane, seq: u64) -> EngineResult<bool> {
        self.check_writable()?;
        if plane == Plane::Meta && seq >= self.commit.checkpoint_seq() {
            return Ok(false);
        }
        let r = self.plane(plane).lock().await.retire(seq).await;
        match r {
            Ok(()) => {
                self.metrics.segments_retired.fetch_add(1, Relaxed);
                Ok(true)
            }
            Err(e @ (PlaneError::Io(_) | PlaneError::Catalog(_))) => {
                let e = EngineError::from(e);
                self.write_failed(&e);
                Err(e)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn block_key(cid: &Cid) -> EngineResult<BlockKey> {
    BlockKey::of(cid).ok_or_else(|| EngineError::Corrupt(format!("{cid} is not a SHA-256 block")))
}
