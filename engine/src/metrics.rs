//! Shard metrics: plain atomics, written by the shard thread and read from anywhere,
//! and their Prometheus text (the engine's part of `/metrics`; the frontend adds its
//! request metrics around it with the same [`help`] and [`histogram`] writers).

use crate::catalog::SegmentCounts;
use std::collections::BTreeMap;
use std::fmt::Write as _;
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

/// The engine's lines of `/metrics`: the per-shard counters, poisoned gauges and
/// fsync histograms, then the segment counts by plane and lifecycle state. With no
/// shards (the engine is still recovering) only the `# HELP`/`# TYPE` lines remain.
pub fn render(o: &mut String, shards: &[Arc<ShardMetrics>], segments: &SegmentCounts) {
    render_shards(o, shards);
    render_segments(o, segments);
}

/// A shard counter: its name, its help text, and how to read it.
type ShardCounter = (&'static str, &'static str, fn(&ShardMetrics) -> u64);

/// The per-shard counters, each exported with a `shard` label.
const SHARD_COUNTERS: [ShardCounter; 18] = [
    ("ingot_commit_batches_total", "Group commits.", |s| {
        s.batches.load(Relaxed)
    }),
    (
        "ingot_commit_ops_total",
        "Operations committed (sum of batch sizes).",
        |s| s.batch_ops.load(Relaxed),
    ),
    ("ingot_shard_puts_total", "Objects stored.", |s| {
        s.puts.load(Relaxed)
    }),
    ("ingot_shard_put_bytes_total", "Object bytes stored.", |s| {
        s.put_bytes.load(Relaxed)
    }),
    ("ingot_shard_gets_total", "Objects read.", |s| {
        s.gets.load(Relaxed)
    }),
    ("ingot_shard_deletes_total", "Keys deleted.", |s| {
        s.deletes.load(Relaxed)
    }),
    ("ingot_shard_lists_total", "LIST pages served.", |s| {
        s.lists.load(Relaxed)
    }),
    (
        "ingot_shard_chunk_bytes_written_total",
        "Body chunk bytes appended to the data plane (after deduplication).",
        |s| s.chunk_bytes_written.load(Relaxed),
    ),
    ("ingot_shard_parts_total", "Multipart parts stored.", |s| {
        s.parts.load(Relaxed)
    }),
    (
        "ingot_shard_uploads_completed_total",
        "Multipart uploads completed.",
        |s| s.uploads_completed.load(Relaxed),
    ),
    ("ingot_block_cache_hits_total", "Block cache hits.", |s| {
        s.block_cache_hits.load(Relaxed)
    }),
    (
        "ingot_block_cache_misses_total",
        "Block cache misses.",
        |s| s.block_cache_misses.load(Relaxed),
    ),
    (
        "ingot_segments_sealed_total",
        "Segments sealed since start.",
        |s| s.segments_sealed.load(Relaxed),
    ),
    (
        "ingot_segments_retired_total",
        "Shipped segments whose local copy was retired since start.",
        |s| s.segments_retired.load(Relaxed),
    ),
    (
        "ingot_shard_no_space_refusals_total",
        "Group commits and streamed bodies refused with 507: no room on the disk (the shard stays healthy).",
        |s| s.no_space_refusals.load(Relaxed),
    ),
    (
        "ingot_cold_reads_total",
        "Blocks read from the cold tier (their segment was retired).",
        |s| s.cold_reads.load(Relaxed),
    ),
    (
        "ingot_cold_read_bytes_total",
        "Bytes read from the cold tier.",
        |s| s.cold_read_bytes.load(Relaxed),
    ),
    (
        "ingot_cold_read_errors_total",
        "Cold-tier reads that failed.",
        |s| s.cold_read_errors.load(Relaxed),
    ),
];

/// Writes the per-shard counters, poisoned gauges and fsync histograms.
fn render_shards(o: &mut String, shards: &[Arc<ShardMetrics>]) {
    for (name, text, get) in SHARD_COUNTERS {
        help(o, name, "counter", text);
        for (i, s) in shards.iter().enumerate() {
            let _ = writeln!(o, "{name}{{shard=\"{i}\"}} {}", get(s));
        }
    }
    help(
        o,
        "ingot_shard_poisoned",
        "gauge",
        "1 when the shard stopped after an I/O failure.",
    );
    for (i, s) in shards.iter().enumerate() {
        let p = u8::from(s.poisoned.load(Relaxed));
        let _ = writeln!(o, "ingot_shard_poisoned{{shard=\"{i}\"}} {p}");
    }
    for (name, text, pick) in [
        (
            "ingot_data_fsync_seconds",
            "fdatasync latency of the data plane.",
            (|s: &ShardMetrics| &s.data_fsync) as fn(&ShardMetrics) -> &Histogram,
        ),
        (
            "ingot_catalog_fsync_seconds",
            "fdatasync latency of the meta plane.",
            |s: &ShardMetrics| &s.meta_fsync,
        ),
    ] {
        help(o, name, "histogram", text);
        for (i, s) in shards.iter().enumerate() {
            histogram(o, name, &format!("shard=\"{i}\""), pick(s));
        }
    }
}

/// Writes the segment counts that are not zero, labelled by plane and lower-case
/// state name, sorted by those labels.
fn render_segments(o: &mut String, segments: &SegmentCounts) {
    help(
        o,
        "ingot_segments",
        "gauge",
        "Segments by plane and lifecycle state.",
    );
    let labelled: BTreeMap<(&str, String), u64> = segments
        .iter()
        .filter(|&(_, _, n)| n > 0)
        .map(|(plane, state, n)| {
            let state = format!("{state:?}").to_ascii_lowercase();
            ((plane.as_str(), state), n)
        })
        .collect();
    for ((plane, state), n) in labelled {
        let _ = writeln!(
            o,
            "ingot_segments{{plane=\"{plane}\",state=\"{state}\"}} {n}"
        );
    }
}

/// Writes `# HELP` and `# TYPE` lines.
pub fn help(o: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(o, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

/// Writes `h` as a Prometheus histogram (cumulative buckets in seconds, sum, count)
/// with `labels` (already formatted, without braces).
pub fn histogram(o: &mut String, name: &str, labels: &str, h: &Histogram) {
    let counts = h.counts();
    let mut cumulative = 0;
    for (i, bound_us) in LATENCY_BOUNDS_US.iter().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(o, "{name}_sum{{{labels}}} {}", h.sum_us() as f64 / 1e6);
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.count());
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

    #[test]
    fn engine_lines_list_shards_then_non_zero_segment_counts_by_label() {
        use crate::catalog::{SegmentRecord, SegmentState};
        use crate::segment::{Plane, SegmentId};
        let record = |plane, seq, state| SegmentRecord {
            id: SegmentId {
                plane,
                shard: 0,
                seq,
            },
            state,
            size_bytes: 0,
            sha256: None,
            location: None,
            created_ms: 0,
            updated_ms: 0,
        };
        let counts = SegmentCounts::of(&[
            record(Plane::Meta, 1, SegmentState::Shipped),
            record(Plane::Data, 1, SegmentState::Sealed),
            record(Plane::Data, 2, SegmentState::Open),
            record(Plane::Data, 3, SegmentState::Sealed),
        ]);
        let shard = Arc::new(ShardMetrics::default());
        shard.puts.store(3, Relaxed);
        let mut text = String::new();
        render(&mut text, &[shard.clone(), shard], &counts);
        assert!(
            text.contains("ingot_shard_puts_total{shard=\"1\"} 3\n"),
            "{text}"
        );
        let segments: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ingot_segments{"))
            .collect();
        // Sorted by plane then state name, as the frontend rendered them before.
        assert_eq!(
            segments,
            [
                "ingot_segments{plane=\"catalog\",state=\"shipped\"} 1",
                "ingot_segments{plane=\"data\",state=\"open\"} 1",
                "ingot_segments{plane=\"data\",state=\"sealed\"} 2",
            ]
        );
        assert!(
            text.find("ingot_catalog_fsync_seconds").unwrap()
                < text.find("# HELP ingot_segments ").unwrap()
        );
    }
}
