//! Engine-level load generator (no HTTP): many concurrent writers or readers on a tokio
//! runtime, as the frontend would drive the engine, against real files.
//!
//!     cargo run --release -p benches --bin engine-bench -- <puts|gets|big> \
//!         [--writers N] [--size BYTES] [--secs S] [--cores N] [--dir PATH] \
//!         [--catalog-body-bytes N] [--no-pin] [--callers N]
//!
//! - `puts`: N writers put `size`-byte objects for S seconds; reports objects/s, the
//!   mean group-commit batch, fsync latencies and PUT latency (histogram bucket bounds
//!   for p50/p99, and the slowest). Every ack is fsync-durable.
//! - `gets`: fills 10,000 objects, then N readers get random ones for S seconds.
//! - `big`: N writers put `size`-byte objects (e.g. 64 MiB); reports MiB/s next to
//!   this machine's single-core MD5 speed.
//! - `recover`: fills 1 GiB of 1 MiB objects into open (unsealed) segments, stops
//!   the engine without a clean shutdown, and times the restart's recovery.

use bytes::Bytes;
use engine::{Engine, EngineConfig, PutOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    mode: String,
    writers: usize,
    size: usize,
    secs: u64,
    cores: usize,
    dir: Option<String>,
    /// `ShardConfig::meta_body_bytes` (default: the engine's).
    meta_body_bytes: Option<u64>,
    /// Leave shard threads unpinned.
    no_pin: bool,
    /// Worker threads of the callers' tokio runtime (the frontend's side).
    callers: usize,
}

fn parse() -> Args {
    let mut a = Args {
        mode: "puts".into(),
        writers: 64,
        size: 4096,
        secs: 10,
        cores: 1,
        dir: None,
        meta_body_bytes: None,
        no_pin: false,
        callers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--writers" => a.writers = val().parse().expect("--writers"),
            "--size" => a.size = val().parse().expect("--size"),
            "--secs" => a.secs = val().parse().expect("--secs"),
            "--cores" => a.cores = val().parse().expect("--cores"),
            "--dir" => a.dir = Some(val()),
            "--no-pin" => a.no_pin = true,
            "--callers" => a.callers = val().parse().expect("--callers"),
            "--catalog-body-bytes" => {
                a.meta_body_bytes = Some(val().parse().expect("--catalog-body-bytes"));
            }
            m if !m.starts_with("--") => a.mode = m.to_owned(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn payload(size: usize, seed: u64) -> Bytes {
    Bytes::from(engine::testing::pseudo_random_bytes(size, seed))
}

/// User + system CPU time (ms) in a /proc `stat` line: fields 14 and 15, counted after
/// the parenthesised name, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
fn stat_cpu_ms(stat: &str) -> f64 {
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 * 10.0
}

/// CPU time (ms) used so far by this process's live threads whose name starts with
/// `prefix` (0 where /proc is not readable).
fn thread_cpu_ms(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .map(|t| stat_cpu_ms(&std::fs::read_to_string(t.path().join("stat")).unwrap_or_default()))
        .sum()
}

/// CPU time (ms) used so far by the whole process, ended threads included.
fn process_cpu_ms() -> f64 {
    stat_cpu_ms(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

fn md5_mib_s() -> f64 {
    use md5::Digest;
    let buf = vec![7u8; 64 << 20];
    let start = Instant::now();
    let d = md5::Md5::digest(&buf);
    std::hint::black_box(d);
    64.0 / start.elapsed().as_secs_f64()
}

fn main() {
    let args = parse();
    let tmp;
    let dir = match &args.dir {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = std::env::temp_dir().join(format!("ingot-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = EngineConfig {
        cores: args.cores,
        ..EngineConfig::new(&dir)
    };
    if args.mode == "recover" {
        recover(config);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    config.shard.seal_bytes = 64 << 20;
    config.pin_cores = !args.no_pin;
    if let Some(n) = args.meta_body_bytes {
        config.shard.meta_body_bytes = n;
    }
    let engine = Arc::new(Engine::open(config).expect("engine"));
    // The frontend's runtime: by default one thread, the engine having one core of
    // this 2-core box.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.callers.max(1))
        .build()
        .expect("tokio");
    rt.block_on(run(&args, engine.clone()));
    rt.block_on(engine.shutdown()).expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(args: &Args, engine: Arc<Engine>) {
    engine.create_bucket("bench").await.expect("bucket");
    println!(
        "mode={} writers={} size={} cores={} io_uring={}",
        args.mode,
        args.writers,
        args.size,
        args.cores,
        engine.uses_io_uring()
    );
    match args.mode.as_str() {
        "puts" | "big" => puts(args, &engine).await,
        "gets" => gets(args, &engine).await,
        m => panic!("unknown mode {m}"),
    }
}

async fn puts(args: &Args, engine: &Arc<Engine>) {
    let done = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(engine::metrics::Histogram::default());
    let slowest_us = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(args.secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let (engine, done) = (engine.clone(), done.clone());
        let (latency, slowest_us) = (latency.clone(), slowest_us.clone());
        let body = payload(args.size.max(16), w as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let key = format!("w{w}/{n}");
                // Unique bodies: identical ones would be stored once (deduplicated).
                let mut b = body.to_vec();
                b[..16].copy_from_slice(&[(w as u64).to_le_bytes(), n.to_le_bytes()].concat());
                let sent = Instant::now();
                engine
                    .put_bytes("bench", &key, PutOptions::default(), Bytes::from(b))
                    .await
                    .expect("put");
                let took = sent.elapsed();
                latency.record(took);
                slowest_us.fetch_max(took.as_micros() as u64, Relaxed);
                n += 1;
                done.fetch_add(1, Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Relaxed);
    let m = &engine.shard_metrics()[0];
    println!(
        "objects={n} objects_per_s={:.0} mib_per_s={:.1} mean_batch={:.1} data_fsync_us_p50={} p99={} catalog_fsync_us_p50={} p99={}",
        n as f64 / secs,
        n as f64 * args.size as f64 / secs / (1 << 20) as f64,
        m.mean_batch_size(),
        m.data_fsync.quantile_us(0.5),
        m.data_fsync.quantile_us(0.99),
        m.meta_fsync.quantile_us(0.5),
        m.meta_fsync.quantile_us(0.99),
    );
    println!(
        "put_latency_us_p50={} p99={} max={}",
        latency.quantile_us(0.5),
        latency.quantile_us(0.99),
        slowest_us.load(Relaxed)
    );
    let (shard_ms, caller_ms) = (thread_cpu_ms("ingot-shard"), thread_cpu_ms("tokio-rt"));
    let total_ms = process_cpu_ms();
    let syncs = m.meta_fsync.count().max(1);
    println!(
        "catalog_syncs={} objects_per_catalog_sync={:.1} catalog_fsync_us_mean={} catalog_fsync_busy_pct={:.0}",
        m.meta_fsync.count(),
        n as f64 / syncs as f64,
        m.meta_fsync.sum_us() / syncs,
        m.meta_fsync.sum_us() as f64 / 1e4 / secs,
    );
    println!(
        "shard_cpu_us_per_put={:.1} caller_cpu_us_per_put={:.1} process_cpu_us_per_put={:.1} shard_busy_pct={:.0}",
        shard_ms * 1000.0 / n as f64,
        caller_ms * 1000.0 / n as f64,
        total_ms * 1000.0 / n as f64,
        shard_ms / 10.0 / secs / args.cores as f64,
    );
    if args.mode == "big" {
        println!("single_core_md5_mib_per_s={:.0}", md5_mib_s());
    }
}

async fn gets(args: &Args, engine: &Arc<Engine>) {
    const OBJECTS: u64 = 10_000;
    let body = payload(args.size, 9);
    for i in 0..OBJECTS {
        engine
            .put_bytes(
                "bench",
                &format!("o{i}"),
                PutOptions::default(),
                body.clone(),
            )
            .await
            .expect("fill");
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(args.secs);
    let start = Instant::now();
    // CPU of the read phase only (the fill above is not counted).
    let cpu_before = (
        thread_cpu_ms("ingot-shard"),
        thread_cpu_ms("tokio-rt"),
        process_cpu_ms(),
    );
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let (engine, done) = (engine.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut x = w as u64 * 7919 + 1;
            while Instant::now() < until {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = format!("o{}", (x >> 33) % OBJECTS);
                let mut got = engine.get_object("bench", &key, None).await.expect("get");
                let mut n = 0;
                while let Some(p) = got.body.recv().await {
                    n += p.expect("piece").len();
                }
                assert_eq!(n, got.info.manifest.size as usize);
                done.fetch_add(1, Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("reader");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Relaxed);
    let m = &engine.shard_metrics()[0];
    println!(
        "gets={n} gets_per_s={:.0} block_cache_hits={} misses={}",
        n as f64 / secs,
        m.block_cache_hits.load(Relaxed),
        m.block_cache_misses.load(Relaxed)
    );
    let per_get = |after: f64, before: f64| (after - before) * 1000.0 / n.max(1) as f64;
    let shard_ms = thread_cpu_ms("ingot-shard");
    println!(
        "shard_cpu_us_per_get={:.2} caller_cpu_us_per_get={:.2} process_cpu_us_per_get={:.2} shard_busy_pct={:.0}",
        per_get(shard_ms, cpu_before.0),
        per_get(thread_cpu_ms("tokio-rt"), cpu_before.1),
        per_get(process_cpu_ms(), cpu_before.2),
        (shard_ms - cpu_before.0) / 10.0 / secs / args.cores as f64,
    );
}

fn recover(mut config: EngineConfig) {
    const FILL_BYTES: u64 = 1 << 30;
    config.shard.seal_bytes = FILL_BYTES + (64 << 20);
    config.shard.seal_age = Duration::from_secs(3600);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let engine = Engine::open(config.clone()).expect("engine");
    rt.block_on(async {
        engine.create_bucket("bench").await.expect("bucket");
        let mut written = 0u64;
        let mut i = 0u64;
        while written < FILL_BYTES {
            let body = payload(1 << 20, i + 1);
            engine
                .put_bytes("bench", &format!("o{i}"), PutOptions::default(), body)
                .await
                .expect("put");
            written += 1 << 20;
            i += 1;
        }
    });
    // No shutdown: the segments stay open, as after a crash.
    drop(engine);
    let start = Instant::now();
    let engine = Engine::open(config).expect("recover");
    let ms = start.elapsed().as_millis();
    let n = rt.block_on(async {
        engine
            .list_objects(
                "bench",
                engine::ListRequest {
                    max_keys: 100_000,
                    ..Default::default()
                },
            )
            .await
            .expect("list")
            .objects
            .len()
    });
    println!("recovered_open_segment_bytes={FILL_BYTES} recovery_ms={ms} objects={n}");
    rt.block_on(engine.shutdown()).expect("shutdown");
}
