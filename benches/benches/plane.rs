//! Plane-log hot paths on a real file (O_DIRECT where the filesystem allows it):
//! - `frame/encode_4KiB`: one CARv1 frame (varint, CID, 4 KiB block) into a buffer;
//! - `frame/append_4KiB`: [`PlaneLog::append`] of a 4 KiB block into the open segment's
//!   write buffer (no I/O; the occasional seal when a 64 MiB segment fills is included);
//! - `group_commit/{uring,std}/N`: append N 4 KiB blocks, then one commit (write the
//!   pending pages + one fdatasync), the work of one group-commit batch. Throughput is in
//!   blocks, so the lines show how batching amortises the fsync.
//!
//! Files go under `$INGOT_BENCH_DIR` if set, else cargo's target tmp dir (on the same
//! filesystem as the build, not tmpfs). Spare segments (64 MiB of zeros written ahead, a
//! background job in a shard) are made outside the timed region, as a shard does.
//! Catalog records go to the in-memory catalog: a record is written twice per 64 MiB
//! segment, so it does not change these numbers.
//!
//!     cargo bench -p benches --bench plane

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::block::cid_raw;
use engine::catalog::MemoryCatalog;
use engine::io::Disk;
use engine::io::std_disk::StdDisk;
use engine::io::uring::UringDisk;
use engine::plane::{PlaneConfig, PlaneLog};
use engine::segment::Plane;
use engine::segment::frame::{frame_len, write_frame};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BLOCK_BYTES: usize = 4096;
const SEAL_BYTES: u64 = 64 << 20;
/// Distinct blocks cycled through (distinct CIDs, as distinct objects would have).
const BLOCKS: usize = 1024;
const BATCHES: [usize; 5] = [1, 8, 64, 256, 1024];

fn blocks() -> Vec<(cid::Cid, Vec<u8>)> {
    (0..BLOCKS)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let block: Vec<u8> = (0..BLOCK_BYTES)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (cid_raw(&block), block)
        })
        .collect()
}

fn bench_dir() -> PathBuf {
    let base = std::env::var_os("INGOT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    base
}

type Log<D> = PlaneLog<D, MemoryCatalog>;

/// Sealed segments kept before a bench starts over in an empty directory: a long run
/// writes gigabytes, and a sealed segment's file stays open (and on disk) while its log
/// lives.
const MAX_SEALED: usize = 8;

/// A plane log in its own directory, started over (untimed) when it has sealed
/// [`MAX_SEALED`] segments.
struct Bed<D: Disk + 'static> {
    dir: PathBuf,
    make: fn(&Path) -> D,
    log: Option<Log<D>>,
}

impl<D: Disk + 'static> Bed<D> {
    fn new(dir: PathBuf, make: fn(&Path) -> D) -> Self {
        Self {
            dir,
            make,
            log: None,
        }
    }

    /// The log, ready for a timed batch: fresh if it has sealed too much, with a spare
    /// segment made ahead, as a shard's background job does (so a roll in the timed
    /// region costs what it costs in a shard, the seal, not the pre-write).
    async fn ready(&mut self) -> &mut Log<D> {
        if self
            .log
            .as_ref()
            .is_none_or(|l| l.sealed_indexes().count() >= MAX_SEALED)
        {
            self.log = None;
            let _ = std::fs::remove_dir_all(&self.dir);
            let config = PlaneConfig {
                seal_bytes: SEAL_BYTES,
            };
            let disk = Rc::new((self.make)(&self.dir));
            let catalog = Arc::new(MemoryCatalog::new());
            let (log, _) = PlaneLog::open(disk, catalog, Plane::Data, 0, config)
                .await
                .expect("open plane log");
            self.log = Some(log);
        }
        let log = self.log.as_mut().expect("log");
        if let Some(job) = log.begin_spare() {
            let seg = job.run().await;
            log.install_spare(seg).await.expect("install spare");
        }
        log
    }
}

/// Appends `batch` blocks and commits, `iters` times; returns the time spent in append
/// and commit only.
async fn commit_batches<D: Disk + 'static>(
    bed: &mut Bed<D>,
    blocks: &[(cid::Cid, Vec<u8>)],
    batch: usize,
    iters: u64,
) -> Duration {
    let mut spent = Duration::ZERO;
    let mut next = 0;
    for _ in 0..iters {
        let log = bed.ready().await;
        let start = Instant::now();
        for _ in 0..batch {
            let (cid, block) = &blocks[next % blocks.len()];
            next += 1;
            black_box(log.append(cid, block).await.expect("append"));
        }
        log.commit().await.expect("commit");
        spent += start.elapsed();
    }
    spent
}

fn uring_runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime (is io_uring allowed here?)")
}

fn frame(c: &mut Criterion) {
    let blocks = blocks();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(BLOCK_BYTES as u64));
    let mut buf = Vec::with_capacity(frame_len(&blocks[0].0, BLOCK_BYTES) * 64);
    let mut i = 0;
    g.bench_function("encode_4KiB", |b| {
        b.iter(|| {
            if buf.len() > (1 << 20) {
                buf.clear();
            }
            let (cid, block) = &blocks[i % BLOCKS];
            i += 1;
            write_frame(&mut buf, cid, block);
            black_box(buf.len())
        })
    });

    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let mut rt = uring_runtime();
    let mut bed = Bed::new(dir.path().join("append"), uring_disk);
    g.bench_function("append_4KiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // Commit every 4,096 appends (untimed) so the write buffer stays the
                    // size it has in a shard.
                    let n = (iters - done).min(4096);
                    let log = bed.ready().await;
                    let start = Instant::now();
                    for k in 0..n {
                        let (cid, block) = &blocks[(done + k) as usize % BLOCKS];
                        black_box(log.append(cid, block).await.expect("append"));
                    }
                    spent += start.elapsed();
                    log.commit().await.expect("commit");
                    done += n;
                }
                spent
            })
        })
    });
    g.finish();
}

fn uring_disk(dir: &Path) -> UringDisk {
    UringDisk::new(dir).expect("disk")
}

fn std_disk(dir: &Path) -> StdDisk {
    StdDisk::new(dir).expect("disk")
}

fn group_commit_on<D: Disk + 'static>(
    c: &mut Criterion,
    name: &str,
    rt: &mut monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>,
    mut bed: Bed<D>,
) {
    let blocks = blocks();
    let mut g = c.benchmark_group(format!("group_commit/{name}"));
    g.measurement_time(Duration::from_secs(4));
    for batch in BATCHES {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_custom(|iters| rt.block_on(commit_batches(&mut bed, &blocks, batch, iters)))
        });
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let mut rt = uring_runtime();
    let uring = Bed::new(dir.path().join("uring"), uring_disk);
    group_commit_on(c, "uring", &mut rt, uring);
    let std = Bed::new(dir.path().join("std"), std_disk);
    group_commit_on(c, "std", &mut rt, std);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1));
    targets = frame, group_commit
}
criterion_main!(benches);
