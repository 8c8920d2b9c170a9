//! What a run measured: per operation, counts, bytes and every latency sample (exact
//! percentiles; a sample is 4 bytes, so a million operations cost 4 MB), and errors by
//! kind.

use std::collections::BTreeMap;
use std::time::Duration;

/// The operations the generator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Put,
    Get,
    Stat,
    Delete,
    List,
    Multipart,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Put,
        Op::Get,
        Op::Stat,
        Op::Delete,
        Op::List,
        Op::Multipart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Stat => "stat",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Multipart => "multipart",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// One operation's samples.
#[derive(Debug, Default, Clone)]
pub struct OpStats {
    pub count: u64,
    /// Body bytes sent (writes) or received (reads).
    pub bytes: u64,
    /// Latency of each successful operation, microseconds.
    pub latencies_us: Vec<u32>,
}

/// A worker's (or the merged) record of a run.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub ops: BTreeMap<Op, OpStats>,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn success(&mut self, op: Op, bytes: u64, latency: Duration) {
        let s = self.ops.entry(op).or_default();
        s.count += 1;
        s.bytes += bytes;
        s.latencies_us
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn error(&mut self, op: Op, kind: String) {
        *self
            .errors
            .entry(format!("{}: {kind}", op.name()))
            .or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (op, s) in other.ops {
            let mine = self.ops.entry(op).or_default();
            mine.count += s.count;
            mine.bytes += s.bytes;
            mine.latencies_us.extend(s.latencies_us);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }

    pub fn total_ops(&self) -> u64 {
        self.ops.values().map(|s| s.count).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.ops.values().map(|s| s.bytes).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency percentiles of one operation, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentiles of `samples` (sorted in place).
pub fn percentiles(samples: &mut [u32]) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        f64::from(samples[rank - 1]) / 1000.0
    };
    Percentiles {
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).rev().map(|i| i * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(percentiles(&mut []).max_ms, 0.0);
    }

    #[test]
    fn merging_adds_counts_samples_and_errors() {
        let mut a = Recorder::default();
        a.success(Op::Put, 10, Duration::from_micros(5));
        a.error(Op::Get, "HTTP 404 NoSuchKey".into());
        let mut b = Recorder::default();
        b.success(Op::Put, 20, Duration::from_micros(7));
        b.error(Op::Get, "HTTP 404 NoSuchKey".into());
        a.merge(b);
        assert_eq!(a.ops[&Op::Put].count, 2);
        assert_eq!(a.total_bytes(), 30);
        assert_eq!(a.errors["get: HTTP 404 NoSuchKey"], 2);
    }
}
