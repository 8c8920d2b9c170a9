//! Runtime spike: glommio vs monoio on the group-commit path of a shard.
//!
//! One thread, one pre-written O_DIRECT file. `writers` tasks each append a 4 KiB object
//! frame (4,136 bytes, like a CAR frame of a 4 KiB chunk) and wait until it is durable;
//! one commit loop writes everything appended since the last sync (rewriting the partial
//! last page) with one write and one fdatasync, then acknowledges the batch, while the
//! next batch fills. Prints acknowledged objects/s, mean batch size and fdatasync
//! latency percentiles.
//!
//!     cargo run --release -- glommio|monoio [writers] [seconds] [dir]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const FRAME_BYTES: usize = 4136;
const FILE_BYTES: u64 = 1 << 30;

/// The group-commit state of one shard's log, runtime-independent.
#[derive(Default)]
struct Log {
    /// Bytes from `tail_offset` (page-aligned) to the logical end.
    tail: RefCell<Vec<u8>>,
    tail_offset: Cell<u64>,
    /// Logical end (all appended bytes).
    end: Cell<u64>,
    /// Durable end.
    durable: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waker)>>,
    commit_waker: RefCell<Option<Waker>>,
    acked: Cell<u64>,
    batches: Cell<u64>,
    sync_us: RefCell<Vec<u64>>,
    stop: Cell<bool>,
}

impl Log {
    fn append(&self, frame: &[u8]) -> u64 {
        self.tail.borrow_mut().extend_from_slice(frame);
        self.end.set(self.end.get() + frame.len() as u64);
        if let Some(w) = self.commit_waker.borrow_mut().take() {
            w.wake();
        }
        self.end.get()
    }

    /// The bytes to write for the next commit: (file offset, page-padded bytes, end).
    /// The file offset wraps at half the pre-written file, so every write overwrites
    /// pre-written blocks as an open segment's writes do.
    fn snapshot(&self) -> (u64, Vec<u8>, u64) {
        let tail = self.tail.borrow();
        let mut bytes = tail.clone();
        bytes.resize(tail.len().div_ceil(PAGE) * PAGE, 0);
        (self.tail_offset.get() % (FILE_BYTES / 2), bytes, self.end.get())
    }

    fn committed(&self, end: u64) {
        let keep_from = (end / PAGE as u64) * PAGE as u64;
        let drop_bytes = (keep_from - self.tail_offset.get()) as usize;
        self.tail.borrow_mut().drain(..drop_bytes);
        self.tail_offset.set(keep_from);
        self.durable.set(end);
        let mut acked = 0;
        self.waiters.borrow_mut().retain(|(t, w)| {
            if *t <= end {
                w.wake_by_ref();
                acked += 1;
                false
            } else {
                true
            }
        });
        self.batches.set(self.batches.get() + 1);
        let _ = acked;
    }
}

struct Durable<'a> {
    log: &'a Log,
    ticket: u64,
}

impl Future for Durable<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.log.durable.get() >= self.ticket {
            return Poll::Ready(());
        }
        self.log.waiters.borrow_mut().push((self.ticket, cx.waker().clone()));
        Poll::Pending
    }
}

struct NewData<'a>(&'a Log);

impl Future for NewData<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.end.get() > self.0.durable.get() || self.0.stop.get() {
            return Poll::Ready(());
        }
        *self.0.commit_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

async fn writer(log: Rc<Log>, until: Instant) {
    let frame = vec![0x5a; FRAME_BYTES];
    while Instant::now() < until {
        let ticket = log.append(&frame);
        Durable { log: &log, ticket }.await;
        log.acked.set(log.acked.get() + 1);
    }
}

fn report(name: &str, log: &Log, elapsed: Duration, writers: usize) {
    let mut lat = log.sync_us.borrow().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    println!(
        "{name}: writers {writers} objects/s {:.0} batches {} mean batch {:.1} fdatasync p50 {} us p99 {} us max {} us",
        log.acked.get() as f64 / elapsed.as_secs_f64(),
        log.batches.get(),
        log.acked.get() as f64 / log.batches.get().max(1) as f64,
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
    );
}

fn prewrite(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(FILE_BYTES >> 20) {
        f.write_all(&zeros).expect("prewrite");
    }
    f.sync_all().expect("sync");
}

fn run_glommio(path: std::path::PathBuf, writers: usize, secs: u64) {
    use glommio::io::DmaFile;
    use glommio::{LocalExecutorBuilder, Placement};
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .spawn(move || async move {
            let file: Rc<DmaFile> = Rc::new(
                glommio::io::OpenOptions::new().write(true).read(true).dma_open(&path).await.expect("open"),
            );
            let log = Rc::new(Log::default());
            let until = Instant::now() + Duration::from_secs(secs);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..writers {
                tasks.push(glommio::spawn_local(writer(log.clone(), until)).detach());
            }
            while Instant::now() < until {
                NewData(&log).await;
                let (off, bytes, end) = log.snapshot();
                let mut buf = file.alloc_dma_buffer(bytes.len());
                buf.as_bytes_mut().copy_from_slice(&bytes);
                file.write_at(buf, off).await.expect("write");
                let t = Instant::now();
                file.fdatasync().await.expect("fdatasync");
                log.sync_us.borrow_mut().push(t.elapsed().as_micros() as u64);
                log.committed(end);
            }
            log.stop.set(true);
            // Let the writers see the last batch and exit.
            let (off, bytes, end) = log.snapshot();
            let mut buf = file.alloc_dma_buffer(bytes.len().max(PAGE));
            buf.as_bytes_mut()[..bytes.len()].copy_from_slice(&bytes);
            file.write_at(buf, off).await.expect("write");
            file.fdatasync().await.expect("fdatasync");
            log.committed(end);
            for t in tasks {
                t.await;
            }
            report("glommio", &log, start.elapsed(), writers);
        })
        .expect("executor")
        .join()
        .expect("join");
}

fn run_monoio(path: std::path::PathBuf, writers: usize, secs: u64) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime (io_uring)");
    rt.block_on(async move {
        let file = monoio::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await
            .expect("open");
        let log = Rc::new(Log::default());
        let until = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..writers {
            tasks.push(monoio::spawn(writer(log.clone(), until)));
        }
        let write = |off: u64, bytes: Vec<u8>| {
            // An aligned slice of an over-allocated buffer (O_DIRECT needs 4 KiB alignment).
            let mut v = vec![0u8; bytes.len() + PAGE];
            let a = v.as_ptr().align_offset(PAGE);
            v[a..a + bytes.len()].copy_from_slice(&bytes);
            let len = bytes.len();
            let file = &file;
            async move {
                use monoio::buf::IoBuf;
                let (r, _) = file.write_all_at(v.slice(a..a + len), off).await;
                r.expect("write");
            }
        };
        while Instant::now() < until {
            NewData(&log).await;
            let (off, bytes, end) = log.snapshot();
            write(off, bytes).await;
            let t = Instant::now();
            file.sync_data().await.expect("fdatasync");
            log.sync_us.borrow_mut().push(t.elapsed().as_micros() as u64);
            log.committed(end);
        }
        log.stop.set(true);
        let (off, mut bytes, end) = log.snapshot();
        if bytes.is_empty() {
            bytes.resize(PAGE, 0);
        }
        write(off, bytes).await;
        file.sync_data().await.expect("fdatasync");
        log.committed(end);
        for t in tasks {
            t.await;
        }
        report("monoio", &log, start.elapsed(), writers);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("glommio");
    let writers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = args.get(4).cloned().unwrap_or_else(|| ".".into());
    let path = std::path::Path::new(&dir).join(format!("spike-{which}.log"));
    prewrite(&path);
    match which {
        "glommio" => run_glommio(path.clone(), writers, secs),
        "monoio" => run_monoio(path.clone(), writers, secs),
        other => panic!("unknown runtime {other}"),
    }
    let _ = std::fs::remove_file(&path);
}
