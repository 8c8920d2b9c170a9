//! The thread-per-core engine: one pinned thread per core, each running a monoio
//! (io_uring) executor that hosts one or more shards, and a `Send + Sync` handle that
//! any runtime (the frontend's tokio) uses to reach them.
//!
//! Requests travel as boxed jobs over bounded channels (tokio's sync primitives work on
//! every executor); bodies stream through bounded [`crate::api::body_channel`]s, so a
//! fast client waits for the shard instead of filling memory.
//!
//! Placement: a bucket's shard is chosen when it is created (hash of its name modulo
//! the core count) and recorded in the catalog. A start with fewer cores hosts shard
//! `s` on core `s % cores`, so buckets never move and every shard's logs stay in use;
//! a start with more cores spreads them out again.

use crate::api::{
    BodyDigests, BodyReceiver, BucketHead, BucketInfo, ByteRange, GetOutcome, INLINE_BODY_BYTES,
    ListRequest, ListResponse, ObjectInfo, PutOptions, body_channel,
};
use crate::catalog::{Catalog, CountedCatalog, EmbeddedCatalog};
use crate::data_dir;
use crate::error::{EngineError, EngineResult, validate_bucket_name};
use crate::io::any::AnyDisk;
use crate::io::std_disk::StdDisk;
use crate::io::uring::UringDisk;
use crate::metrics::ShardMetrics;
use crate::shard::{HashedPut, Shard, ShardConfig, join};
use bytes::Bytes;
use sha2::Digest;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

mod car_jobs;
mod lifecycle;
mod multipart;
mod replies;
pub mod upload_pages;

use replies::{Replies, Reply};

pub use car_jobs::car_bytes;

/// How shards do file I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring when available, else blocking calls with a warning.
    #[default]
    Auto,
    /// io_uring or refuse to start (with a message saying what to change).
    Uring,
    /// Blocking system calls on an epoll executor.
    Blocking,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Shard threads; 0 means one per online core.
    pub cores: usize,
    /// Pin each shard thread to its core.
    pub pin_cores: bool,
    pub io: IoMode,
    pub shard: ShardConfig,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cores: 0,
            pin_cores: true,
            io: IoMode::Auto,
            shard: ShardConfig::default(),
        }
    }
}

/// A shard of an engine on catalog `C` (which it reaches through the counting wrapper).
type EngineShard<C> = Shard<AnyDisk, CountedCatalog<C>>;

/// A request for a shard: runs there and gives back the answer to send ([`Replies`]).
type Job<C> = Box<dyn FnOnce(Rc<EngineShard<C>>) -> Pin<Box<dyn Future<Output = Reply>>> + Send>;

/// Jobs queued per shard before callers wait.
const JOB_QUEUE: usize = 4096;

/// The engine handle. `Send + Sync`; share it in an `Arc`.
pub struct Engine<C: Catalog + 'static = EmbeddedCatalog> {
    catalog: Arc<CountedCatalog<C>>,
    senders: RwLock<Vec<mpsc::Sender<Job<C>>>>,
    metrics: Vec<Arc<ShardMetrics>>,
    placement: RwLock<HashMap<String, u32>>,
    cores: usize,
    uring: bool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    data_dir: PathBuf,
    /// The shards' settings (small PUTs are cut and hashed by the caller with them).
    shard_config: ShardConfig,
    _lock: std::fs::File,
}

impl<C: Catalog + 'static> std::fmt::Debug for Engine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cores", &self.cores)
            .field("shards", &self.metrics.len())
            .field("uring", &self.uring)
            .finish()
    }
}

/// The shard a new bucket goes to (FNV-1a of the name).
pub fn placement_shard(name: &str, cores: usize) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h % cores.max(1) as u64) as u32
}

impl Engine<EmbeddedCatalog> {
    /// Starts on the embedded catalog in `data_dir/catalog.redb`.
    pub fn open(config: EngineConfig) -> EngineResult<Self> {
        let lock = lock_dir(&config.data_dir)?;
        let catalog = Arc::new(EmbeddedCatalog::open(
            &config.data_dir.join(data_dir::CATALOG_FILE),
        )?);
        Self::start_locked(config, catalog, lock)
    }
}

/// Creates the data directory (0700) if needed, locks it, and tightens the modes an
/// earlier version left (see [`data_dir`]).
fn lock_dir(dir: &Path) -> EngineResult<std::fs::File> {
    let failed =
        |p: &Path, e: std::io::Error| EngineError::Startup(format!("{}: {e}", p.display()));
    data_dir::create_private(dir).map_err(|e| failed(dir, e))?;
    let path = dir.join(data_dir::LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(data_dir::FILE_MODE)
        .open(&path)
        .map_err(|e| failed(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(EngineError::Startup(format!(
                "{} is in use by another ingot-engine process",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(&path, e)),
    }
    match data_dir::tighten(dir) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            dir = %dir.display(),
            entries = n,
            "data directory entries had group or other permissions; set to owner-only (0700 directories, 0600 files)"
        ),
        Err(e) => return Err(failed(dir, e)),
    }
    Ok(file)
}

/// Decides between io_uring and blocking I/O, explaining a missing io_uring.
fn choose_io(mode: IoMode) -> EngineResult<bool> {
    if mode == IoMode::Blocking {
        return Ok(false);
    }
    if monoio::utils::detect_uring() {
        return Ok(true);
    }
    let why = uring_help();
    if mode == IoMode::Uring {
        return Err(EngineError::Startup(why));
    }
    tracing::warn!("{why}; falling back to blocking file I/O (slower commits)");
    Ok(false)
}

fn uring_help() -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let memlock = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max locked memory"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        })
        .unwrap_or_else(|| "unknown".into());
    if disabled != 0 {
        format!(
            "io_uring is disabled by the kernel (kernel.io_uring_disabled={disabled}); \
             run `sysctl -w kernel.io_uring_disabled=0` to enable it"
        )
    } else {
        format!(
            "io_uring_setup was refused: a container seccomp profile may block it (allow \
             io_uring_setup, io_uring_enter and io_uring_register, e.g. docker run \
             --security-opt seccomp=<profile>), or on kernels before 5.12 the locked-memory \
             limit is too low (now {memlock}; raise it with `ulimit -l` or LimitMEMLOCK=)"
        )
    }
}

/// What a shard thread reports once its shards opened (or one failed to).
type ShardReady = EngineResult<(u32, Arc<ShardMetrics>)>;

/// The shard threads just started: each shard's job channel, the threads, and where
/// they report as their shards open.
struct Executors<C: Catalog + 'static> {
    senders: Vec<mpsc::Sender<Job<C>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ready: std::sync::mpsc::Receiver<ShardReady>,
}

/// One job channel per shard and one thread per core, each hosting the shards placed on
/// it.
fn spawn_executors<C: Catalog + 'static>(
    config: &EngineConfig,
    cores: usize,
    uring: bool,
    shard_count: usize,
    catalog: &Arc<CountedCatalog<C>>,
) -> EngineResult<Executors<C>> {
    let mut senders = Vec::with_capacity(shard_count);
    let mut receivers: Vec<Vec<(u32, mpsc::Receiver<Job<C>>)>> =
        (0..cores).map(|_| Vec::new()).collect();
    for id in 0..shard_count as u32 {
        let (tx, rx) = mpsc::channel(JOB_QUEUE);
        senders.push(tx);
        receivers[executor_of(id, cores)].push((id, rx));
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::with_capacity(cores);
    for (core, shards) in receivers.into_iter().enumerate() {
        let ctx = ExecutorCtx {
            core,
            pin: config.pin_cores,
            uring,
            shards,
            data_dir: config.data_dir.clone(),
            catalog: catalog.clone(),
            config: config.shard.clone(),
            ready: ready_tx.clone(),
        };
        let t = std::thread::Builder::new()
            .name(format!("ingot-shard-{core}"))
            .spawn(move || ctx.run())
            .map_err(|e| EngineError::Startup(format!("cannot spawn a shard thread: {e}")))?;
        threads.push(t);
    }
    Ok(Executors {
        senders,
        threads,
        ready: ready_rx,
    })
}

/// Waits for every shard to report: their metrics, indexed by shard (`None` when a
/// thread stopped first), and the first failure.
fn wait_for_shards(
    ready: &std::sync::mpsc::Receiver<ShardReady>,
    shard_count: usize,
) -> (Option<Vec<Arc<ShardMetrics>>>, Option<EngineError>) {
    let mut metrics: Vec<Option<Arc<ShardMetrics>>> = vec![None; shard_count];
    let mut failure = None;
    for _ in 0..shard_count {
        match ready.recv() {
            Ok(Ok((id, m))) => metrics[id as usize] = Some(m),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => break,
        }
    }
    (metrics.into_iter().collect(), failure)
}

/// Shard `s` runs on executor `s % cores`.
fn executor_of(shard: u32, cores: usize) -> usize {
    shard as usize % cores
}

impl<C: Catalog + 'static> Engine<C> {
    /// Starts on `catalog` (the data directory is locked first).
    pub fn start(config: EngineConfig, catalog: Arc<C>) -> EngineResult<Self> {
        let lock = lock_dir(&config.data_dir)?;
        Self::start_locked(config, catalog, lock)
    }

    fn start_locked(
        config: EngineConfig,
        catalog: Arc<C>,
        lock: std::fs::File,
    ) -> EngineResult<Self> {
        config.shard.check()?;
        let cores = match config.cores {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let uring = choose_io(config.io)?;
        let (buckets, segments) = block_on_local(async {
            Ok::<_, EngineError>((catalog.buckets().await?, catalog.segments().await?))
        })?;
        let catalog = Arc::new(CountedCatalog::new(catalog, &segments));
        // Every shard that has buckets or segments, plus one per core.
        let mut shard_ids: BTreeSet<u32> = (0..cores as u32).collect();
        shard_ids.extend(buckets.iter().map(|b| b.shard));
        shard_ids.extend(segments.iter().map(|s| s.id.shard));
        let shard_count = shard_ids.iter().max().map_or(0, |m| m + 1) as usize;
        data_dir::prepare_shards(&config.data_dir, 0..shard_count as u32)
            .map_err(|e| EngineError::Startup(format!("{}: {e}", config.data_dir.display())))?;
        let Executors {
            senders,
            threads,
            ready,
        } = spawn_executors(&config, cores, uring, shard_count, &catalog)?;
        let (metrics, failure) = wait_for_shards(&ready, shard_count);
        let engine = Self {
            catalog,
            senders: RwLock::new(senders),
            metrics: metrics.unwrap_or_default(),
            placement: RwLock::new(buckets.iter().map(|b| (b.name.clone(), b.shard)).collect()),
            cores,
            uring,
            threads: Mutex::new(threads),
            data_dir: config.data_dir.clone(),
            shard_config: config.shard.clone(),
            _lock: lock,
        };
        if let Some(e) = failure.or_else(|| {
            (engine.metrics.len() != shard_count)
                .then(|| EngineError::Startup("a shard thread stopped while opening".into()))
        }) {
            engine.stop_threads();
            return Err(e);
        }
        tracing::info!(
            cores,
            shards = shard_count,
            io_uring = uring,
            "engine started"
        );
        Ok(engine)
    }

    /// Shard threads.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Whether shards use io_uring (false: the blocking fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.uring
    }

    /// Each shard's metrics, by shard id.
    pub fn shard_metrics(&self) -> &[Arc<ShardMetrics>] {
        &self.metrics
    }

    /// Whether every shard takes writes.
    pub fn is_healthy(&self) -> bool {
        !self
            .metrics
            .iter()
            .any(|m| m.poisoned.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs `f` on shard `id`'s thread and returns its result.
    async fn call<T, F, Fut>(&self, id: u32, f: F) -> EngineResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<EngineShard<C>>) -> Fut + Send + 'static,
        Fut: Future<Output = EngineResult<T>> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job<C> = Box::new(move |shard| {
            Box::pin(async move {
                let answer = f(shard).await;
                Box::new(move || {
                    let _ = tx.send(answer);
                }) as Reply
            })
        });
        let sender = self
            .senders
            .read()
            .map_err(|_| EngineError::ShuttingDown)?
            .get(id as usize)
            .cloned()
            .ok_or(EngineError::ShuttingDown)?;
        sender
            .send(job)
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    fn shard_of(&self, bucket: &str) -> EngineResult<u32> {
        self.placement
            .read()
            .map_err(|_| EngineError::ShuttingDown)?
            .get(bucket)
            .copied()
            .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))
    }

    pub async fn create_bucket(&self, name: &str) -> EngineResult<()> {
        validate_bucket_name(name)?;
        if self.shard_of(name).is_ok() {
            return Err(EngineError::BucketAlreadyExists(name.to_owned()));
        }
        let id = placement_shard(name, self.cores);
        let n = name.to_owned();
        self.call(id, move |s| async move { s.create_bucket(&n).await })
            .await?;
        if let Ok(mut p) = self.placement.write() {
            p.insert(name.to_owned(), id);
        }
        Ok(())
    }

    pub async fn delete_bucket(&self, name: &str) -> EngineResult<()> {
        let id = self.shard_of(name)?;
        let n = name.to_owned();
        self.call(id, move |s| async move { s.delete_bucket(&n).await })
            .await?;
        if let Ok(mut p) = self.placement.write() {
            p.remove(name);
        }
        // In-progress uploads go with the bucket (a bucket made again starts empty).
        self.drop_uploads(name).await
    }

    /// The bucket, if it exists.
    pub async fn head_bucket(&self, name: &str) -> EngineResult<BucketInfo> {
        self.shard_of(name)?;
        let rec = self
            .catalog
            .bucket(name)
            .await?
            .ok_or_else(|| EngineError::NoSuchBucket(name.to_owned()))?;
        Ok(BucketInfo {
            name: rec.name,
            created_ms: rec.created_ms,
            shard: rec.shard,
        })
    }

    /// All buckets, by name.
    pub async fn list_buckets(&self) -> EngineResult<Vec<BucketInfo>> {
        Ok(self
            .catalog
            .buckets()
            .await?
            .into_iter()
            .map(|r| BucketInfo {
                name: r.name,
                created_ms: r.created_ms,
                shard: r.shard,
            })
            .collect())
    }

    /// A bucket's committed head (commit, sequence, MST root).
    pub async fn bucket_head(&self, name: &str) -> EngineResult<BucketHead> {
        let id = self.shard_of(name)?;
        let n = name.to_owned();
        self.call(id, move |s| async move { s.head(&n) }).await
    }

    /// Stores an object whose body arrives on `body` (see [`body_channel`]). The body's
    /// MD5 (and SHA-256 when asked) is computed here, on the caller's thread, while the
    /// shard cuts and hashes the chunks: one stream uses two cores.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        body: BodyReceiver,
    ) -> EngineResult<ObjectInfo> {
        let id = self.shard_of(bucket)?;
        if opts.content_length.is_some_and(|n| n <= INLINE_BODY_BYTES) {
            return self.put_inline(id, bucket, key, opts, body).await;
        }
        let want_sha = opts.want_sha256 || opts.content_sha256.is_some();
        let (forward, rx, drx) = hashing_forward(body, want_sha, None);
        let (b, k) = (bucket.to_owned(), key.to_owned());
        let put = self.call(id, move |s| async move {
            s.put_object_with(&b, &k, opts, rx, Some(drx)).await
        });
        join(forward, put).await.1
    }

    /// A small body is collected, cut and hashed here, its manifest built, and the
    /// shard only stores it ([`HashedPut`]): the request crosses threads once, and the
    /// shard thread spends no time on SHA-256 or MD5 of the body.
    async fn put_inline(
        &self,
        id: u32,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        mut body: BodyReceiver,
    ) -> EngineResult<ObjectInfo> {
        let declared = opts.content_length.unwrap_or(0);
        let mut first: Option<Bytes> = None;
        let mut more: Vec<u8> = Vec::new();
        let mut got = 0u64;
        while let Some(piece) = body.recv().await {
            let piece = piece?;
            got += piece.len() as u64;
            if got > declared {
                return Err(EngineError::EntityTooLarge { limit: declared });
            }
            if piece.is_empty() {
                continue;
            }
            match &first {
                None => first = Some(piece),
                Some(f) => {
                    if more.is_empty() {
                        more.extend_from_slice(f);
                    }
                    more.extend_from_slice(&piece);
                }
            }
        }
        let data = if more.is_empty() {
            first.unwrap_or_default()
        } else {
            Bytes::from(more)
        };
        let put = HashedPut::new(key, opts, &data, &self.shard_config)?;
        let b = bucket.to_owned();
        self.call(id, move |s| async move { s.put_hashed(&b, put).await })
            .await
    }

    /// Stores an object from an in-memory body.
    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        data: Bytes,
    ) -> EngineResult<ObjectInfo> {
        let mut opts = opts;
        opts.content_length.get_or_insert(data.len() as u64);
        let (tx, rx) = body_channel();
        let feed = async move {
            let piece = 1 << 20;
            let mut at = 0;
            while at < data.len() {
                let end = (at + piece).min(data.len());
                if tx.send(Ok(data.slice(at..end))).await.is_err() {
                    break;
                }
                at = end;
            }
        };
        let (_, r) = join(feed, self.put_object(bucket, key, opts, rx)).await;
        r
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> EngineResult<ObjectInfo> {
        let id = self.shard_of(bucket)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.call(id, move |s| async move { s.head_object(&b, &k).await })
            .await
    }

    /// An object's bytes (all or a range) as a stream, each block verified.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> EngineResult<GetOutcome> {
        let id = self.shard_of(bucket)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.call(
            id,
            move |s| async move { s.get_object(&b, &k, range).await },
        )
        .await
    }

    /// The bytes of an object already looked up with [`Engine::head_object`], so
    /// conditions checked on `info` hold for the bytes served.
    pub async fn get_object_at(
        &self,
        bucket: &str,
        info: &ObjectInfo,
        range: Option<ByteRange>,
    ) -> EngineResult<GetOutcome> {
        let id = self.shard_of(bucket)?;
        let info = info.clone();
        self.call(id, move |s| async move { s.read_object(info, range) })
            .await
    }

    /// Looks `key` up and reads what `choose` picks from its manifest, in one visit to
    /// the shard: `choose` runs there, on the object found (checking a request's
    /// conditions, resolving its range or part), and returns its own answer with the
    /// bytes to read — `Some(None)` the whole body, `Some(Some(range))` a range, `None`
    /// nothing (a failed condition, an empty selection). The bytes belong to exactly
    /// the object `choose` saw. One round trip instead of [`Engine::head_object`]
    /// followed by [`Engine::get_object_at`].
    pub async fn get_object_chosen<T, F>(
        &self,
        bucket: &str,
        key: &str,
        choose: F,
    ) -> EngineResult<(ObjectInfo, T, Option<GetOutcome>)>
    where
        T: Send + 'static,
        F: FnOnce(&ObjectInfo) -> (T, Option<Option<ByteRange>>) + Send + 'static,
    {
        let id = self.shard_of(bucket)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.call(id, move |s| async move {
            let info = s.head_object(&b, &k).await?;
            let (chosen, read) = choose(&info);
            let got = match read {
                Some(range) => Some(s.read_object(info.clone(), range)?),
                None => None,
            };
            Ok((info, chosen, got))
        })
        .await
    }

    /// Deletes a key; succeeds whether or not it existed.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> EngineResult<()> {
        let id = self.shard_of(bucket)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.call(id, move |s| async move { s.delete_object(&b, &k).await })
            .await
            .map(|_| ())
    }

    pub async fn list_objects(&self, bucket: &str, req: ListRequest) -> EngineResult<ListResponse> {
        let id = self.shard_of(bucket)?;
        let b = bucket.to_owned();
        self.call(id, move |s| async move { s.list_objects(&b, req).await })
            .await
    }

    /// Copies an object. Within a shard the copy shares the source's chunks (no body
    /// byte is read or written); across shards the body streams from one to the other
    /// and is checked against the source's MD5.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> EngineResult<ObjectInfo> {
        let src = self.shard_of(src_bucket)?;
        let dst = self.shard_of(dst_bucket)?;
        if src == dst {
            let (sb, sk, db, dk) = (
                src_bucket.to_owned(),
                src_key.to_owned(),
                dst_bucket.to_owned(),
                dst_key.to_owned(),
            );
            return self
                .call(src, move |s| async move {
                    s.copy_object(&sb, &sk, &db, &dk, replace).await
                })
                .await;
        }
        let got = self.get_object(src_bucket, src_key, None).await?;
        let m = &got.info.manifest;
        let mut opts = replace.unwrap_or_else(|| PutOptions::from_manifest(m));
        opts.content_length = Some(m.size);
        // A multipart object's MD5 is that of its part MD5s: the copy is one part.
        opts.content_md5 = m.parts.is_none().then_some(m.md5);
        if opts.checksum.is_none() {
            opts.checksum = m.checksum.clone();
        }
        self.put_object(dst_bucket, dst_key, opts, got.body).await
    }

    /// Re-reads an object and checks every block and the body digests.
    pub async fn verify_object(&self, bucket: &str, key: &str) -> EngineResult<u64> {
        let id = self.shard_of(bucket)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.call(id, move |s| async move { s.verify_object(&b, &k).await })
            .await
    }

    /// Clean shutdown: every shard commits what is queued, seals its segments and
    /// checkpoints its heads; then the threads exit.
    pub async fn shutdown(&self) -> EngineResult<()> {
        let mut first_err = None;
        for id in 0..self.metrics.len() as u32 {
            let r = self.call(id, |s| async move { s.close().await }).await;
            if let Err(e) = r {
                tracing::error!(shard = id, error = %e, "shard did not close cleanly");
                first_err.get_or_insert(e);
            }
        }
        self.stop_threads();
        first_err.map_or(Ok(()), Err)
    }

    fn stop_threads(&self) {
        if let Ok(mut s) = self.senders.write() {
            s.clear();
        }
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t));
        for t in threads.unwrap_or_default() {
            let _ = t.join();
        }
    }
}

impl<C: Catalog + 'static> Drop for Engine<C> {
    fn drop(&mut self) {
        // Without a shutdown the shards stop where they are: like a crash, recovery
        // finishes the work at the next start.
        self.stop_threads();
    }
}

struct ExecutorCtx<C: Catalog + 'static> {
    core: usize,
    pin: bool,
    uring: bool,
    shards: Vec<(u32, mpsc::Receiver<Job<C>>)>,
    data_dir: PathBuf,
    catalog: Arc<CountedCatalog<C>>,
    config: ShardConfig,
    ready: std::sync::mpsc::Sender<ShardReady>,
}

impl<C: Catalog + 'static> ExecutorCtx<C> {
    fn run(self) {
        if self.pin
            && let Err(e) = monoio::utils::bind_to_cpu_set([self.core])
        {
            tracing::warn!(core = self.core, error = %e, "cannot pin shard thread");
        }
        let ready = self.ready.clone();
        let fail = |e: std::io::Error| {
            let _ = ready.send(Err(EngineError::Startup(format!("shard runtime: {e}"))));
        };
        if self.uring {
            match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .with_entries(self.config.uring_entries)
                .build()
            {
                Ok(mut rt) => rt.block_on(self.serve()),
                Err(e) => fail(e),
            }
        } else {
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
            {
                Ok(mut rt) => rt.block_on(self.serve()),
                Err(e) => fail(e),
            }
        }
    }

    async fn serve(self) {
        let mut tasks = Vec::new();
        let mut shards = Vec::new();
        for (id, rx) in self.shards {
            let dir = data_dir::shard_dir(&self.data_dir, id);
            let disk = if self.uring {
                UringDisk::new(&dir).map(AnyDisk::Uring)
            } else {
                StdDisk::new(&dir).map(AnyDisk::Std)
            };
            let disk = match disk {
                Ok(d) => d,
                Err(e) => {
                    let msg = format!("{}: {e}", dir.display());
                    let _ = self.ready.send(Err(EngineError::Startup(msg)));
                    return;
                }
            };
            let opened =
                Shard::open(id, Rc::new(disk), self.catalog.clone(), self.config.clone()).await;
            match opened {
                Ok((shard, _)) => {
                    let _ = self.ready.send(Ok((id, shard.metrics().clone())));
                    let commits = monoio::spawn(shard.clone().run_commits());
                    let replies = Rc::new(Replies::default());
                    // Detached: it waits for answers as long as the executor runs.
                    let _flusher = monoio::spawn(replies.clone().run());
                    tasks.push(monoio::spawn(dispatch(shard.clone(), rx, replies.clone())));
                    shards.push((shard, commits, replies));
                }
                Err(e) => {
                    tracing::error!(shard = id, error = %e, "shard failed to open");
                    let _ = self.ready.send(Err(e));
                    return;
                }
            }
        }
        for t in tasks {
            t.await;
        }
        // The engine is gone: let the commit loops finish what is queued and stop, so
        // every shard (and its hold on the catalog) is dropped before the thread ends.
        for (shard, commits, replies) in shards {
            shard.stop();
            commits.await;
            // Answers of the jobs the last commits finished go out before the thread ends.
            replies.flush();
        }
    }
}

/// Runs each job for `shard` as its own task until the engine drops the channel; the
/// answers go out in bursts through `replies`.
async fn dispatch<C: Catalog + 'static>(
    shard: Rc<EngineShard<C>>,
    mut rx: mpsc::Receiver<Job<C>>,
    replies: Rc<Replies>,
) {
    while let Some(job) = rx.recv().await {
        let run = job(shard.clone());
        let replies = replies.clone();
        monoio::spawn(async move { replies.push(run.await) });
    }
}

/// Forwards `body` to a new channel for a shard, computing on the caller's thread the
/// body's MD5 (and SHA-256 when `want_sha`), sent on the digests channel once the body
/// has ended, and the additional checksum `checksum` asks for, put in its slot first.
pub(crate) fn hashing_forward(
    mut body: BodyReceiver,
    want_sha: bool,
    checksum: Option<(crate::format::ChecksumAlgorithm, crate::api::LateChecksum)>,
) -> (
    impl Future<Output = ()> + Send,
    BodyReceiver,
    oneshot::Receiver<BodyDigests>,
) {
    let (tx, rx) = body_channel();
    let (dtx, drx) = oneshot::channel();
    let forward = async move {
        let mut md5 = md5::Md5::new();
        let mut sha = want_sha.then(sha2::Sha256::new);
        let mut extra = checksum.map(|(a, slot)| (crate::checksum::ChecksumHasher::new(a), slot));
        while let Some(piece) = body.recv().await {
            if let Ok(b) = &piece {
                md5.update(b);
                if let Some(h) = &mut sha {
                    h.update(b);
                }
                if let Some((h, _)) = &mut extra {
                    h.update(b);
                }
            }
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return; // the shard stopped reading (it reports why)
            }
        }
        if let Some((h, slot)) = extra
            && let Ok(mut slot) = slot.lock()
        {
            *slot = Some(crate::format::Checksum {
                algorithm: h.algorithm(),
                kind: crate::format::ChecksumType::FullObject,
                value: h.finalize(),
            });
        }
        let _ = dtx.send(BodyDigests {
            md5: md5.finalize().into(),
            sha256: sha.map(|h| h.finalize().into()),
        });
    };
    (forward, rx, drx)
}

/// Runs a future to completion on the calling thread (catalog calls at start).
fn block_on_local<F: Future>(f: F) -> F::Output {
    let mut rt = match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a local runtime: {e}"),
    };
    rt.block_on(f)
}
