//! The shipping pipeline: sealed segments go to their plane's target, are marked
//! shipped, and local copies beyond the retention window are retired.
//!
//! Every decision is taken from the catalog, read afresh at each pass: what is `Sealed`
//! on a shipping plane is the backlog; what is `Shipped` beyond `retain` is retired. A
//! restart therefore resumes exactly where the last run stopped, and nothing waits in a
//! memory queue that could overflow or be lost.
//!
//! Per segment (each step durable before the next):
//! 1. upload the CAR (the target checks it against the SHA-256 recorded at seal);
//! 2. upload the index (`.idx`), checked against its own SHA-256;
//! 3. record `Sealed → Shipped` with the CAR's location (mark-then-write: the location is
//!    recorded only once both uploads are durable at the target);
//! 4. retire the plane's shipped segments beyond the newest `retain` (the engine's retire
//!    steps: `Shipped → Retiring`, unlink the CAR, fsync the directory, `Retired`).
//!
//! A crash between steps leaves the segment `Sealed` (uploads are idempotent and are
//! simply repeated) or `Shipped` (retired at the next pass). A failure is retried with
//! capped exponential backoff and jitter, forever: a target that is down costs local
//! disk, never data.

use crate::ship_metrics::ShipperMetrics;
use crate::target::{Target, TargetError};
use client::Backoff;
use engine::catalog::{Catalog, SegmentRecord, SegmentState};
use engine::{Engine, EngineError, Plane, SegmentId, car_name, index_name, now_ms};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::watch;

/// One plane's shipping policy.
#[derive(Debug, Clone, Default)]
pub struct PlanePolicy {
    /// Whether sealed segments of this plane leave the node. A plane that does not ship
    /// keeps every segment locally.
    pub target: Option<Target>,
    /// Shipped segments kept locally (per shard), newest first; older ones are retired.
    pub retain: u64,
}

/// A step of shipping a segment, for crash tests: with [`ShipperConfig::crash_after`]
/// set, the process aborts right after that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipStep {
    CarUploaded,
    IndexUploaded,
    MarkedShipped,
    Retired,
}

impl std::str::FromStr for ShipStep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "car-uploaded" => Self::CarUploaded,
            "index-uploaded" => Self::IndexUploaded,
            "marked-shipped" => Self::MarkedShipped,
            "retired" => Self::Retired,
            _ => return Err(format!("unknown ship step {s:?}")),
        })
    }
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub data: PlanePolicy,
    pub catalog: PlanePolicy,
    /// The catalog is read again at least this often (and at once when a shard seals).
    pub rescan: Duration,
    /// First and largest wait after a failure.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Crash tests only: abort the process right after this step.
    pub crash_after: Option<ShipStep>,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        Self {
            data: PlanePolicy::default(),
            catalog: PlanePolicy::default(),
            rescan: Duration::from_secs(2),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            crash_after: None,
        }
    }
}

impl ShipperConfig {
    pub fn policy(&self, plane: Plane) -> &PlanePolicy {
        match plane {
            Plane::Data => &self.data,
            Plane::Meta => &self.catalog,
        }
    }

    /// Whether any plane ships.
    pub fn ships(&self) -> bool {
        self.data.target.is_some() || self.catalog.target.is_some()
    }
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("segment {segment}: {source}")]
    Target {
        segment: String,
        #[source]
        source: TargetError,
    },
    #[error("segment {segment}: {source}")]
    Engine {
        segment: String,
        #[source]
        source: EngineError,
    },
    #[error("segment {0} was sealed without a SHA-256")]
    NoDigest(String),
}

/// The pipeline of one node.
pub struct Shipper<C: Catalog + 'static> {
    engine: Arc<Engine<C>>,
    config: ShipperConfig,
    metrics: Arc<ShipperMetrics>,
}

impl<C: Catalog + 'static> std::fmt::Debug for Shipper<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("config", &self.config)
            .finish()
    }
}

impl<C: Catalog + 'static> Shipper<C> {
    pub fn new(
        engine: Arc<Engine<C>>,
        config: ShipperConfig,
        metrics: Arc<ShipperMetrics>,
    ) -> Self {
        Self {
            engine,
            config,
            metrics,
        }
    }

    /// Ships and retires until `stop` turns true. A segment being uploaded when `stop`
    /// arrives is abandoned (it stays `Sealed` and is shipped after the next start).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(
            self.config.backoff_base,
            self.config.backoff_cap,
            now_ms() ^ u64::from(std::process::id()),
        );
        loop {
            let sealed_before = self.engine.segments_sealed();
            let wait = tokio::select! {
                r = self.pass() => match r {
                    Ok(()) => {
                        backoff.reset();
                        self.metrics.clear_error();
                        None
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "shipping failed");
                        self.metrics.set_error(now_ms(), e.to_string());
                        Some(delay)
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            let until = tokio::time::Instant::now() + wait.unwrap_or(self.config.rescan);
            // Wake early when a shard seals a segment (unless backing off).
            loop {
                let tick = tokio::time::Instant::now() + Duration::from_millis(100);
                tokio::select! {
                    _ = tokio::time::sleep_until(tick.min(until)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now = tokio::time::Instant::now();
                if now >= until
                    || (wait.is_none() && self.engine.segments_sealed() != sealed_before)
                {
                    break;
                }
            }
        }
    }

    /// One pass: refresh the backlog, ship it oldest first, then retire.
    pub async fn pass(&self) -> Result<(), ShipError> {
        let records = self.records().await?;
        let mut backlog: Vec<&SegmentRecord> = records
            .iter()
            .filter(|r| r.state == SegmentState::Sealed)
            .filter(|r| self.config.policy(r.id.plane).target.is_some())
            .collect();
        backlog.sort_by_key(|r| (r.updated_ms, r.id.plane.as_str(), r.id.shard, r.id.seq));
        self.set_backlog(&backlog);
        for (i, rec) in backlog.iter().enumerate() {
            self.ship(rec).await?;
            self.set_backlog(&backlog[i + 1..]);
        }
        self.retire_all().await
    }

    async fn records(&self) -> Result<Vec<SegmentRecord>, ShipError> {
        self.engine
            .segment_records()
            .await
            .map_err(|source| ShipError::Engine {
                segment: "*".into(),
                source,
            })
    }

    fn set_backlog(&self, backlog: &[&SegmentRecord]) {
        let m = &self.metrics;
        m.backlog_segments.store(backlog.len() as u64, Relaxed);
        m.backlog_bytes
            .store(backlog.iter().map(|r| r.size_bytes).sum(), Relaxed);
        let oldest = backlog.iter().map(|r| r.updated_ms).min();
        m.backlog_oldest_age_ms
            .store(oldest.map_or(0, |t| now_ms().saturating_sub(t)), Relaxed);
    }

    fn crash_point(&self, step: ShipStep) {
        if self.config.crash_after == Some(step) {
            tracing::error!(?step, "crash test: aborting after this step");
            std::process::abort();
        }
    }

    /// Steps 1–3 for one sealed segment.
    async fn ship(&self, rec: &SegmentRecord) -> Result<(), ShipError> {
        let id = rec.id;
        let name = car_name(id);
        let Some(target) = &self.config.policy(id.plane).target else {
            return Ok(());
        };
        let sha256 = rec
            .sha256
            .ok_or_else(|| ShipError::NoDigest(name.clone()))?;
        let (car, idx) = self.engine.segment_paths(id);
        let target_err = |source| ShipError::Target {
            segment: name.clone(),
            source,
        };
        let started = std::time::Instant::now();
        let location = target
            .put_file(&name, &car, sha256)
            .await
            .map_err(target_err)?;
        self.crash_point(ShipStep::CarUploaded);
        let idx_sha = crate::target::dir::file_sha256_async(&idx)
            .await
            .map_err(target_err)?;
        target
            .put_file(&index_name(id), &idx, idx_sha)
            .await
            .map_err(target_err)?;
        self.crash_point(ShipStep::IndexUploaded);
        self.engine
            .mark_shipped(id, location.clone())
            .await
            .map_err(|source| ShipError::Engine {
                segment: name.clone(),
                source,
            })?;
        self.crash_point(ShipStep::MarkedShipped);
        self.metrics.shipped_segments.fetch_add(1, Relaxed);
        self.metrics
            .shipped_bytes
            .fetch_add(rec.size_bytes, Relaxed);
        tracing::info!(
            shard = id.shard,
            segment = %name,
            location = %location,
            size_bytes = rec.size_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "segment shipped"
        );
        Ok(())
    }

    /// Step 4 for every plane and shard: keep the newest `retain` shipped segments.
    async fn retire_all(&self) -> Result<(), ShipError> {
        let records = self.records().await?;
        let mut shipped: BTreeMap<(&str, u32), Vec<SegmentId>> = BTreeMap::new();
        for r in records.iter().filter(|r| r.state == SegmentState::Shipped) {
            if self.config.policy(r.id.plane).target.is_some() {
                shipped
                    .entry((r.id.plane.as_str(), r.id.shard))
                    .or_default()
                    .push(r.id);
            }
        }
        for ids in shipped.values_mut() {
            ids.sort_by_key(|id| std::cmp::Reverse(id.seq));
            let keep = self.config.policy(ids[0].plane).retain as usize;
            for id in ids.iter().skip(keep) {
                let retired =
                    self.engine
                        .retire_segment(*id)
                        .await
                        .map_err(|source| ShipError::Engine {
                            segment: car_name(*id),
                            source,
                        })?;
                if retired {
                    self.crash_point(ShipStep::Retired);
                    self.metrics.retired_segments.fetch_add(1, Relaxed);
                    tracing::info!(shard = id.shard, segment = %car_name(*id), "segment retired");
                }
            }
        }
        Ok(())
    }
}
