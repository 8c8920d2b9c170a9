//! `ingot-engine bench`: an S3 load generator for ingot-engine or any S3 endpoint.
//!
//! Workers (one keep-alive connection each) run one operation after another for a
//! duration or an operation budget; the first `--warmup` is not recorded. Objects to
//! read are written first; bodies are slices at random offsets of one random pool, so no
//! two objects share chunks (a server that deduplicates gains nothing). Everything the
//! run wrote is deleted afterwards unless `--keep`.

pub mod args;
pub mod report;
pub mod request;
pub mod stats;

pub use args::BenchArgs;
pub use report::Report;
pub use request::RequestError;

use crate::{S3Settings, encode_key, encode_query_value};
use bytes::Bytes;
use hyper::Method;
use request::Client;
use stats::{Op, Recorder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A run's settings, resolved from [`BenchArgs`].
#[derive(Debug, Clone)]
pub struct Plan {
    /// The endpoint and credentials (each connection is its own client).
    pub target: S3Settings,
    pub bucket: String,
    pub prefix: String,
    /// Weights of the operations to run (one for a single-operation run).
    pub mix: Vec<(Op, u32)>,
    pub size_min: u64,
    pub size_max: u64,
    pub part_bytes: u64,
    pub concurrency: usize,
    pub duration: Option<Duration>,
    /// Stop after this many measured operations.
    pub max_ops: Option<u64>,
    /// Objects written before a run that reads, stats, lists or deletes.
    pub prefill: u64,
    /// The prefilled objects exist already.
    pub reuse_prefill: bool,
    pub warmup: Duration,
    pub keep: bool,
    pub progress: bool,
}

/// Shared state of a running benchmark.
struct Run {
    plan: Plan,
    pool: Bytes,
    /// Keys that exist (prefilled).
    keys: Vec<String>,
    next_delete: AtomicU64,
    /// Operations started in the measured window (the budget counter).
    started: AtomicU64,
    stop: AtomicBool,
    measure_from: Instant,
    done_ops: AtomicU64,
    done_bytes: AtomicU64,
}

/// A small, fast generator per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn random_pool(len: usize) -> Bytes {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

impl Run {
    fn body(&self, rng: &mut Rng) -> Bytes {
        let p = &self.plan;
        let size = p.size_min + rng.below(p.size_max - p.size_min + 1);
        let off = rng.below(self.pool.len() as u64 - size + 1);
        self.pool.slice(off as usize..(off + size) as usize)
    }

    fn pick_op(&self, rng: &mut Rng) -> Op {
        let total: u64 = self.plan.mix.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = rng.below(total);
        for (op, w) in &self.plan.mix {
            if x < u64::from(*w) {
                return *op;
            }
            x -= u64::from(*w);
        }
        self.plan.mix[0].0
    }

    fn object_path(&self, key: &str) -> String {
        format!("/{}/{}", self.plan.bucket, encode_key(key))
    }
}

/// Runs the plan; returns the report.
pub async fn run(plan: Plan) -> Result<Report, RequestError> {
    let pool = random_pool((plan.size_max.max(plan.part_bytes) + (64 << 20)) as usize);
    let mut admin = Client::new(&plan.target)?;
    let created = create_bucket(&mut admin, &plan.bucket).await?;
    let keys = prefill(&plan, &pool).await?;
    let clients = (0..plan.concurrency)
        .map(|_| Client::new(&plan.target))
        .collect::<Result<Vec<_>, _>>()?;
    let run = Arc::new(Run {
        measure_from: Instant::now() + plan.warmup,
        plan,
        pool,
        keys,
        next_delete: AtomicU64::new(0),
        started: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        done_ops: AtomicU64::new(0),
        done_bytes: AtomicU64::new(0),
    });
    let cpu_before = cpu_time();
    let mut workers = tokio::task::JoinSet::new();
    for (w, c) in clients.into_iter().enumerate() {
        workers.spawn(worker(run.clone(), c, w as u64));
    }
    let ticker = tokio::spawn(progress(run.clone()));
    let mut rec = Recorder::default();
    let mut written = Vec::new();
    while let Some(r) = workers.join_next().await {
        if let Ok((r, keys)) = r {
            rec.merge(r);
            written.extend(keys);
        }
    }
    ticker.abort();
    let elapsed = run.measure_from.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    if run.plan.progress {
        eprintln!();
    }
    let report = Report::new(&run.plan, rec, elapsed, cpu);
    if !run.plan.keep {
        written.extend(run.keys.iter().cloned());
        cleanup(&run, written, created).await;
    }
    Ok(report)
}

/// Creates the bucket unless it exists (a HEAD first: in us-east-1 creating your own
/// bucket again succeeds, which would hide that it was there before). Returns whether
/// the run created it.
async fn create_bucket(c: &mut Client, bucket: &str) -> Result<bool, RequestError> {
    let path = format!("/{bucket}");
    match c.send(Method::HEAD, &path, Bytes::new()).await {
        Ok(_) => return Ok(false),
        Err(RequestError::Status { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    match c.send(Method::PUT, &path, Bytes::new()).await {
        Ok(_) => Ok(true),
        Err(RequestError::Status { status: 409, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fewest connections that write the prefill.
const PREFILL_CONCURRENCY: usize = 64;

/// Writes the objects a reading run needs (unless they exist already), over the run's
/// connections or [`PREFILL_CONCURRENCY`], whichever is more.
async fn prefill(plan: &Plan, pool: &Bytes) -> Result<Vec<String>, RequestError> {
    if plan.prefill == 0 {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = (0..plan.prefill)
        .map(|i| format!("{}obj-{i:09}", plan.prefix))
        .collect();
    if plan.reuse_prefill {
        return Ok(keys);
    }
    let next = Arc::new(AtomicU64::new(0));
    let keys = Arc::new(keys);
    let mut tasks = tokio::task::JoinSet::new();
    // At least PREFILL_CONCURRENCY writers even for a run measured at concurrency 1:
    // filling a large bucket one object at a time takes too long.
    let writers = plan.concurrency.max(PREFILL_CONCURRENCY);
    for w in 0..writers.min(plan.prefill as usize) {
        let (plan, pool, keys, next) = (plan.clone(), pool.clone(), keys.clone(), next.clone());
        let mut c = Client::new(&plan.target)?;
        tasks.spawn(async move {
            let mut rng = Rng(0x1234_5678 + w as u64 * 7919);
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(key) = keys.get(i as usize) else {
                    return Ok::<_, RequestError>(());
                };
                let size = plan.size_min + rng.below(plan.size_max - plan.size_min + 1);
                let off = rng.below(pool.len() as u64 - size + 1);
                let body = pool.slice(off as usize..(off + size) as usize);
                let path = format!("/{}/{}", plan.bucket, encode_key(key));
                c.send(Method::PUT, &path, body).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| RequestError::Connection(e.to_string()))??;
    }
    Ok(Arc::try_unwrap(keys).unwrap_or_else(|k| (*k).clone()))
}

/// Whether another operation may start: not stopped, within the duration and budget.
fn may_start(run: &Run) -> bool {
    if run.stop.load(Relaxed) {
        return false;
    }
    let now = Instant::now();
    if let Some(d) = run.plan.duration
        && now >= run.measure_from + d
    {
        return false;
    }
    if now >= run.measure_from
        && let Some(max) = run.plan.max_ops
        && run.started.fetch_add(1, Relaxed) >= max
    {
        return false;
    }
    true
}

async fn worker(run: Arc<Run>, mut c: Client, w: u64) -> (Recorder, Vec<String>) {
    let mut rng = Rng(0xDEAD_BEEF ^ (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut rec = Recorder::default();
    let mut written = Vec::new();
    let mut seq = 0u64;
    while may_start(&run) {
        let op = run.pick_op(&mut rng);
        let started = Instant::now();
        let r = one_op(&run, &mut c, &mut rng, op, w, &mut seq, &mut written).await;
        if started < run.measure_from {
            continue; // warm-up
        }
        match r {
            Ok(bytes) => {
                rec.success(op, bytes, started.elapsed());
                run.done_ops.fetch_add(1, Relaxed);
                run.done_bytes.fetch_add(bytes, Relaxed);
            }
            Err(e) => rec.error(op, e.to_string()),
        }
    }
    (rec, written)
}

/// Runs one operation; returns the body bytes it moved.
async fn one_op(
    run: &Run,
    c: &mut Client,
    rng: &mut Rng,
    op: Op,
    w: u64,
    seq: &mut u64,
    written: &mut Vec<String>,
) -> Result<u64, RequestError> {
    let existing = |rng: &mut Rng| run.keys.get(rng.below(run.keys.len() as u64) as usize);
    match op {
        Op::Put | Op::Multipart => {
            *seq += 1;
            let key = format!("{}w{w:04}/{seq:09}", run.plan.prefix);
            let body = run.body(rng);
            let n = body.len() as u64;
            if op == Op::Put {
                c.send(Method::PUT, &run.object_path(&key), body).await?;
            } else {
                multipart(run, c, &key, body).await?;
            }
            written.push(key);
            Ok(n)
        }
        Op::Get | Op::Stat => {
            let key = existing(rng).ok_or_else(nothing_to_read)?;
            let method = if op == Op::Get {
                Method::GET
            } else {
                Method::HEAD
            };
            let a = c.send(method, &run.object_path(key), Bytes::new()).await?;
            Ok(a.body_bytes)
        }
        Op::Delete => {
            let i = run.next_delete.fetch_add(1, Relaxed);
            let key = run.keys.get(i as usize).ok_or_else(nothing_to_read)?;
            c.send(Method::DELETE, &run.object_path(key), Bytes::new())
                .await?;
            Ok(0)
        }
        Op::List => {
            // One page of up to 1,000 keys from a random place among the prefilled
            // keys (from the start when none were), so pages come from deep in a
            // large bucket, not always its first page.
            let mut path = format!(
                "/{}?list-type=2&max-keys=1000&prefix={}",
                run.plan.bucket,
                encode_query_value(&run.plan.prefix)
            );
            if let Some(after) = existing(rng) {
                path.push_str("&start-after=");
                path.push_str(&encode_query_value(after));
            }
            let a = c.send(Method::GET, &path, Bytes::new()).await?;
            Ok(a.body_bytes)
        }
    }
}

fn nothing_to_read() -> RequestError {
    RequestError::BadAnswer("no prefilled object left".into())
}

/// CreateMultipartUpload, the parts one after another, CompleteMultipartUpload.
async fn multipart(run: &Run, c: &mut Client, key: &str, body: Bytes) -> Result<(), RequestError> {
    let path = run.object_path(key);
    let a = c
        .send_keep(Method::POST, &format!("{path}?uploads"), Bytes::new())
        .await?;
    let text = String::from_utf8_lossy(&a.body).into_owned();
    let id = text
        .split_once("<UploadId>")
        .and_then(|(_, r)| r.split_once("</UploadId>"))
        .map(|(id, _)| id.to_owned())
        .ok_or_else(|| RequestError::BadAnswer("no UploadId".into()))?;
    let mut xml = String::from("<CompleteMultipartUpload>");
    let part = run.plan.part_bytes.max(1) as usize;
    let count = body.len().div_ceil(part).max(1);
    for n in 1..=count {
        let piece = body.slice(((n - 1) * part).min(body.len())..(n * part).min(body.len()));
        let q = format!("{path}?partNumber={n}&uploadId={id}");
        let a = c.send(Method::PUT, &q, piece).await?;
        let etag = a
            .header(hyper::header::ETAG)
            .ok_or_else(|| RequestError::BadAnswer("part without ETag".into()))?;
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    c.send(
        Method::POST,
        &format!("{path}?uploadId={id}"),
        Bytes::from(xml),
    )
    .await
    .map(|_| ())
}

/// A live progress line on stderr once a second (terminals only).
async fn progress(run: Arc<Run>) {
    if !run.plan.progress {
        return;
    }
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (ops, bytes) = (run.done_ops.load(Relaxed), run.done_bytes.load(Relaxed));
        let secs = last.0.elapsed().as_secs_f64();
        eprint!(
            "\r{ops} ops  {:.0} ops/s  {:.1} MB/s   ",
            (ops - last.1) as f64 / secs,
            (bytes - last.2) as f64 / secs / 1e6
        );
        last = (Instant::now(), ops, bytes);
    }
}

/// Deletes what the run wrote, then the bucket if the run created it.
async fn cleanup(run: &Arc<Run>, keys: Vec<String>, created: bool) {
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..run.plan.concurrency.clamp(1, 64) {
        let (run, keys, next) = (run.clone(), keys.clone(), next.clone());
        // The plan's settings made a client before: this one is made the same way.
        let Ok(mut c) = Client::new(&run.plan.target) else {
            break;
        };
        tasks.spawn(async move {
            while let Some(k) = keys.get(next.fetch_add(1, Relaxed) as usize) {
                let _ = c
                    .send(Method::DELETE, &run.object_path(k), Bytes::new())
                    .await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if created && let Ok(mut c) = Client::new(&run.plan.target) {
        let path = format!("/{}", run.plan.bucket);
        let _ = c.send(Method::DELETE, &path, Bytes::new()).await;
    }
}

/// CPU time of this process's live threads (the scheduler's nanosecond count from
/// `/proc/self/task/*/schedstat`); zero where that is not available.
pub fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}
