//! Request metrics and the Prometheus text exposition of `/metrics`.

use crate::conn::CutReason;
use engine::metrics::{Histogram, LATENCY_BOUNDS_US, ShardMetrics};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of the HTTP side. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (operation, status) → requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// operation → latency histogram.
    latency: Mutex<BTreeMap<String, Arc<Histogram>>>,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    pub connections: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections answered 503 and closed because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections cut by a limit, by [`CutReason`] (indexed by its position in
    /// [`CutReason::ALL`]).
    connections_cut: [AtomicU64; CutReason::ALL.len()],
    /// Other parts of the node that add their own lines (the shipper).
    sources: Mutex<Vec<Arc<dyn MetricsSource>>>,
}

/// A part of the node that adds lines to `/metrics`.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// Appends Prometheus text (with `# HELP` and `# TYPE` lines).
    fn render(&self, out: &mut String);
}

impl Metrics {
    pub fn record(&self, op: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((op.to_owned(), status)).or_default() += 1;
        }
        let h = self.latency.lock().map(|mut l| {
            l.entry(op.to_owned())
                .or_insert_with(|| Arc::new(Histogram::default()))
                .clone()
        });
        if let Ok(h) = h {
            h.record(elapsed);
        }
    }

    /// Counts a connection a limit cut.
    pub fn cut(&self, reason: CutReason) {
        self.connections_cut[reason as usize].fetch_add(1, Relaxed);
    }

    /// Connections cut for `reason` since start.
    pub fn cuts(&self, reason: CutReason) -> u64 {
        self.connections_cut[reason as usize].load(Relaxed)
    }

    /// Adds a source whose lines `/metrics` shows after the node's own.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        if let Ok(mut s) = self.sources.lock() {
            s.push(source);
        }
    }

    /// Requests seen for `op` with `status`.
    pub fn requests(&self, op: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .ok()
            .and_then(|r| r.get(&(op.to_owned(), status)).copied())
            .unwrap_or(0)
    }
}

/// Segment counts by plane and lifecycle state, as the catalog records them.
pub type SegmentCounts = BTreeMap<(String, String), u64>;

/// The Prometheus text format of everything the node measures.
pub fn render(m: &Metrics, shards: &[Arc<ShardMetrics>], segments: &SegmentCounts) -> String {
    let mut out = String::with_capacity(8192);
    let o = &mut out;
    help(
        o,
        "ingot_requests_total",
        "counter",
        "S3 requests by operation and HTTP status.",
    );
    if let Ok(r) = m.requests.lock() {
        for ((op, status), n) in r.iter() {
            let _ = writeln!(
                o,
                "ingot_requests_total{{op=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
    }
    help(
        o,
        "ingot_request_duration_seconds",
        "histogram",
        "S3 request latency by operation.",
    );
    if let Ok(l) = m.latency.lock() {
        for (op, h) in l.iter() {
            histogram(
                o,
                "ingot_request_duration_seconds",
                &format!("op=\"{op}\""),
                h,
            );
        }
    }
    help(o, "ingot_bytes_in_total", "counter", "Body bytes received.");
    let _ = writeln!(o, "ingot_bytes_in_total {}", m.bytes_in.load(Relaxed));
    help(o, "ingot_bytes_out_total", "counter", "Body bytes sent.");
    let _ = writeln!(o, "ingot_bytes_out_total {}", m.bytes_out.load(Relaxed));
    help(
        o,
        "ingot_connections_total",
        "counter",
        "TCP connections accepted.",
    );
    let _ = writeln!(o, "ingot_connections_total {}", m.connections.load(Relaxed));
    connection_metrics(o, m);
    shard_metrics(o, shards);
    help(
        o,
        "ingot_segments",
        "gauge",
        "Segments by plane and lifecycle state.",
    );
    for ((plane, state), n) in segments {
        let _ = writeln!(
            o,
            "ingot_segments{{plane=\"{plane}\",state=\"{state}\"}} {n}"
        );
    }
    if let Ok(sources) = m.sources.lock() {
        for s in sources.iter() {
            s.render(o);
        }
    }
    out
}

fn connection_metrics(o: &mut String, m: &Metrics) {
    help(
        o,
        "ingot_connections_open",
        "gauge",
        "Connections open now.",
    );
    let _ = writeln!(
        o,
        "ingot_connections_open {}",
        m.connections_open.load(Relaxed)
    );
    help(
        o,
        "ingot_connections_refused_total",
        "counter",
        "Connections answered 503 SlowDown and closed at the max_connections cap.",
    );
    let _ = writeln!(
        o,
        "ingot_connections_refused_total {}",
        m.connections_refused.load(Relaxed)
    );
    help(
        o,
        "ingot_connections_cut_total",
        "counter",
        "Connections closed by a limit: a timeout, or the keep-alive request cap.",
    );
    for r in CutReason::ALL {
        let _ = writeln!(
            o,
            "ingot_connections_cut_total{{reason=\"{}\"}} {}",
            r.label(),
            m.cuts(r)
        );
    }
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
pub fn shard_metrics(o: &mut String, shards: &[Arc<ShardMetrics>]) {
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

/// Writes `# HELP` and `# TYPE` lines (for [`MetricsSource`]s too).
pub fn help(o: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(o, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

fn histogram(o: &mut String, name: &str, labels: &str, h: &Histogram) {
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

    #[derive(Debug)]
    struct Extra;
    impl MetricsSource for Extra {
        fn render(&self, out: &mut String) {
            help(out, "ingot_extra", "gauge", "A test source.");
            out.push_str("ingot_extra 7\n");
        }
    }

    #[test]
    fn added_sources_render_once_after_the_node_metrics() {
        let m = Metrics::default();
        m.add_source(Arc::new(Extra));
        let text = render(&m, &[], &SegmentCounts::new());
        assert_eq!(text.matches("ingot_extra 7\n").count(), 1, "{text}");
        assert_eq!(text.matches("# TYPE ingot_extra gauge").count(), 1);
        assert!(text.find("ingot_extra").unwrap() > text.find("ingot_segments").unwrap());
    }

    #[test]
    fn rendered_text_has_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record("PutObject", 200, Duration::from_micros(150));
        m.record("PutObject", 200, Duration::from_millis(20));
        m.record("GetObject", 404, Duration::from_micros(10));
        let text = render(
            &m,
            &[Arc::new(ShardMetrics::default())],
            &SegmentCounts::new(),
        );
        assert!(text.contains("ingot_requests_total{op=\"PutObject\",status=\"200\"} 2"));
        assert!(text.contains("ingot_requests_total{op=\"GetObject\",status=\"404\"} 1"));
        assert!(text.contains("ingot_request_duration_seconds_count{op=\"PutObject\"} 2"));
        assert!(
            text.contains("ingot_request_duration_seconds_bucket{op=\"PutObject\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("ingot_shard_poisoned{shard=\"0\"} 0"));
        // Buckets are cumulative: never decreasing.
        let mut last = 0;
        for line in text
            .lines()
            .filter(|l| l.starts_with("ingot_request_duration_seconds_bucket{op=\"PutObject\""))
        {
            let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(n >= last);
            last = n;
        }
    }
}
