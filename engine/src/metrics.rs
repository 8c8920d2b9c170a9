//! Shard metrics: plain atomics, written by the shard thread and read from anywhere
//! (the frontend renders them for Prometheus).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    25, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800,
];

/// A cumulative-ready latency histogram (Prometheus style, plus an overflow bucket).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Per-bucket counts (not cumulative), the last one past every bound.
    pub fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Relaxed)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The bucket bound below which `q` (0..=1) of the samples fall.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts = self.counts();
        let total: u64 = counts.iter().sum();
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want && total > 0 {
                return LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        0
    }
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Group commits run.
    pub batches: AtomicU64,
    /// Requests committed by them (their sum over `batches` is the mean batch size).
    pub batch_ops: AtomicU64,
    pub data_fsync: Histogram,
    pub meta_fsync: Histogram,
    pub puts: AtomicU64,
    pub put_bytes: AtomicU64,
    pub gets: AtomicU64,
    pub get_bytes: AtomicU64,
    pub deletes: AtomicU64,
    pub lists: AtomicU64,
    /// Body chunk bytes appended to the data plane (chunks already stored are not
    /// written again, so this is below the bytes received when content repeats).
    pub chunk_bytes_written: AtomicU64,
    /// Multipart parts stored (uploaded or copied).
    pub parts: AtomicU64,
    /// Multipart uploads completed.
    pub uploads_completed: AtomicU64,
    pub block_cache_hits: AtomicU64,
    pub block_cache_misses: AtomicU64,
    /// Segments sealed since start (both planes; shared with the plane logs).
    pub segments_sealed: Arc<AtomicU64>,
    /// Blocks read from the cold tier (their segment was retired), bytes, failures.
    pub cold_reads: AtomicU64,
    pub cold_read_bytes: AtomicU64,
    pub cold_read_errors: AtomicU64,
    pub segments_retired: AtomicU64,
    /// Refusals because the disk had no room for a new segment (nothing of the refused
    /// writes was kept; the shard stays healthy). A refused group commit counts once,
    /// however many requests it held.
    pub no_space_refusals: AtomicU64,
    /// Set when an I/O failure stopped the shard's writes.
    pub poisoned: AtomicBool,
}

impl ShardMetrics {
    /// Mean requests per group commit.
    pub fn mean_batch_size(&self) -> f64 {
        let b = self.batches.load(Relaxed);
        if b == 0 {
            0.0
        } else {
            self.batch_ops.load(Relaxed) as f64 / b as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for us in [10, 30, 30, 90, 5_000, 1_000_000] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.counts()[0], 1);
        assert_eq!(h.counts()[1], 2);
        assert_eq!(*h.counts().last().unwrap(), 1);
        assert_eq!(h.quantile_us(0.5), 50);
        assert_eq!(h.quantile_us(1.0), u64::MAX);
    }
}
