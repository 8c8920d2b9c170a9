//! The shipper's counters and gauges, in Prometheus text.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the pipeline has done and what is waiting. Gauges are refreshed at each pass
/// over the catalog.
#[derive(Debug, Default)]
pub struct ShipperMetrics {
    /// Sealed segments of shipping planes not yet shipped, and their bytes.
    pub backlog_segments: AtomicU64,
    pub backlog_bytes: AtomicU64,
    /// Age of the oldest of them, in milliseconds (0 when none waits).
    pub backlog_oldest_age_ms: AtomicU64,
    pub shipped_segments: AtomicU64,
    pub shipped_bytes: AtomicU64,
    pub retired_segments: AtomicU64,
    /// Failed attempts (each is retried after a backoff).
    pub failures: AtomicU64,
    /// The last failure and when it happened (ms since the epoch); cleared by a pass
    /// that ships or has nothing to ship.
    last_error: Mutex<Option<(u64, String)>>,
}

impl ShipperMetrics {
    pub fn set_error(&self, now_ms: u64, error: String) {
        self.failures.fetch_add(1, Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((now_ms, error));
        }
    }

    pub fn clear_error(&self) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
    }

    /// The last failure, if the pipeline has not recovered from it.
    pub fn last_error(&self) -> Option<(u64, String)> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Appends the Prometheus text of these metrics.
    pub fn render(&self, o: &mut String) {
        let gauges = [
            (
                "ingot_ship_backlog_segments",
                "Sealed segments waiting to be shipped.",
                &self.backlog_segments,
            ),
            (
                "ingot_ship_backlog_bytes",
                "Bytes of the sealed segments waiting to be shipped.",
                &self.backlog_bytes,
            ),
        ];
        for (name, text, v) in gauges {
            let _ = writeln!(o, "# HELP {name} {text}\n# TYPE {name} gauge");
            let _ = writeln!(o, "{name} {}", v.load(Relaxed));
        }
        let name = "ingot_ship_backlog_oldest_age_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Age of the oldest segment waiting to be shipped.\n# TYPE {name} gauge"
        );
        let age = self.backlog_oldest_age_ms.load(Relaxed) as f64 / 1000.0;
        let _ = writeln!(o, "{name} {age}");
        let counters = [
            (
                "ingot_ship_segments_total",
                "Segments shipped.",
                &self.shipped_segments,
            ),
            (
                "ingot_ship_bytes_total",
                "Segment bytes shipped.",
                &self.shipped_bytes,
            ),
            (
                "ingot_ship_retired_total",
                "Shipped segments whose local copy was retired.",
                &self.retired_segments,
            ),
            (
                "ingot_ship_failures_total",
                "Failed ship or retire attempts (each retried).",
                &self.failures,
            ),
        ];
        for (name, text, v) in counters {
            let _ = writeln!(o, "# HELP {name} {text}\n# TYPE {name} counter");
            let _ = writeln!(o, "{name} {}", v.load(Relaxed));
        }
        let name = "ingot_ship_last_error_timestamp_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} When the failure the pipeline has not yet recovered from happened \
             (0: none); its text is in the label.\n# TYPE {name} gauge"
        );
        match self.last_error() {
            Some((at_ms, e)) => {
                let e: String = e
                    .chars()
                    .take(200)
                    .map(|c| {
                        if c == '"' || c == '\\' || c == '\n' {
                            '\''
                        } else {
                            c
                        }
                    })
                    .collect();
                let _ = writeln!(o, "{name}{{error=\"{e}\"}} {}", at_ms / 1000);
            }
            None => {
                let _ = writeln!(o, "{name} 0");
            }
        }
    }
}
