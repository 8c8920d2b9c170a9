//! Helpers shared by the integration tests.

/// A small deterministic generator (xorshift64), so seeded cases replay exactly.
#[allow(dead_code)]
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs a future on a single-threaded monoio runtime (epoll driver, timers on): the
/// runtime shards run on, minus io_uring, which simulated-disk tests do not need.
#[allow(dead_code)]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(f)
}

/// A body channel already holding `data` (in pieces of `piece` bytes), closed. For
/// bodies that fit the channel; larger ones are fed by a task.
#[allow(dead_code)]
pub fn body_of(data: &[u8]) -> engine::BodyReceiver {
    let (tx, rx) = engine::body_channel();
    if !data.is_empty() {
        tx.try_send(Ok(bytes::Bytes::copy_from_slice(data)))
            .expect("body fits the channel");
    }
    rx
}

/// Collects a streamed body.
#[allow(dead_code)]
pub async fn collect(mut rx: engine::BodyReceiver) -> Result<Vec<u8>, engine::EngineError> {
    let mut out = Vec::new();
    while let Some(p) = rx.recv().await {
        out.extend_from_slice(&p?);
    }
    Ok(out)
}

/// Opens shard 0 on a simulated disk with its commit loop running.
#[allow(dead_code)]
pub async fn open_shard(
    disk: &engine::io::sim::SimDisk,
    catalog: &std::sync::Arc<engine::catalog::MemoryCatalog>,
    config: engine::ShardConfig,
) -> std::rc::Rc<engine::Shard<engine::io::sim::SimDisk, engine::catalog::MemoryCatalog>> {
    let (shard, _) =
        engine::Shard::open(0, std::rc::Rc::new(disk.clone()), catalog.clone(), config)
            .await
            .expect("open shard");
    monoio::spawn(shard.clone().run_commits());
    shard
}

/// Polls `done` every millisecond for at most ten seconds.
#[allow(dead_code)]
pub async fn wait_until(what: &str, done: impl AsyncFn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done().await {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting until {what}"
        );
        monoio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
