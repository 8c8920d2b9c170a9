//! Request metrics and the Prometheus text exposition of `/metrics`: the frontend's
//! own lines, the engine's (rendered by the engine), then the other sources'.

use engine::metrics::{Histogram, help, histogram};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the node cut a connection, for `ingot_connections_cut_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CutReason {
    /// No (complete) request head within the header read timeout, idle time included.
    HeadTimeout,
    BodyTimeout,
    TlsHandshakeTimeout,
    /// The keep-alive cap was reached.
    MaxRequests,
}

impl CutReason {
    pub const ALL: [CutReason; 4] = [
        Self::HeadTimeout,
        Self::BodyTimeout,
        Self::TlsHandshakeTimeout,
        Self::MaxRequests,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::HeadTimeout => "head_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::TlsHandshakeTimeout => "tls_handshake_timeout",
            Self::MaxRequests => "max_requests",
        }
    }
}

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

/// The Prometheus text format of everything the node measures; `engine_lines` writes
/// the engine's part (its shards and segments) after the connection metrics.
pub fn render(m: &Metrics, engine_lines: impl FnOnce(&mut String)) -> String {
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
    engine_lines(o);
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::catalog::SegmentCounts;
    use engine::metrics::ShardMetrics;

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
        let text = render(&m, |o| {
            engine::metrics::render(o, &[], &SegmentCounts::default())
        });
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
        let text = render(&m, |o| {
            let shards = [Arc::new(ShardMetrics::default())];
            engine::metrics::render(o, &shards, &SegmentCounts::default())
        });
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
