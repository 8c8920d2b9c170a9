//! The result of a run: a table for people, JSON for scripts (`--json`).

use super::Plan;
use super::stats::{Op, Recorder, percentiles};
use serde_json::json;
use std::time::Duration;

/// One operation's line.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLine {
    pub op: Op,
    pub count: u64,
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub workload: String,
    pub size: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    /// The generator's own CPU time (user + system) per measured operation.
    pub cpu_us_per_op: f64,
    pub lines: Vec<OpLine>,
    pub errors: Vec<(String, u64)>,
}

impl Report {
    pub fn new(plan: &Plan, mut rec: Recorder, elapsed: Duration, cpu: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ops = rec.total_ops();
        let lines = Op::ALL
            .into_iter()
            .filter_map(|op| {
                let s = rec.ops.get_mut(&op)?;
                let p = percentiles(&mut s.latencies_us);
                Some(OpLine {
                    op,
                    count: s.count,
                    ops_per_s: s.count as f64 / secs,
                    mb_per_s: s.bytes as f64 / secs / 1e6,
                    p50_ms: p.p50_ms,
                    p90_ms: p.p90_ms,
                    p99_ms: p.p99_ms,
                    max_ms: p.max_ms,
                })
            })
            .collect();
        let workload = plan
            .mix
            .iter()
            .map(|(op, w)| format!("{}={w}", op.name()))
            .collect::<Vec<_>>()
            .join(",");
        let size = if plan.size_min == plan.size_max {
            plan.size_min.to_string()
        } else {
            format!("{}-{}", plan.size_min, plan.size_max)
        };
        Self {
            workload,
            size,
            concurrency: plan.concurrency,
            seconds: secs,
            ops,
            ops_per_s: ops as f64 / secs,
            mb_per_s: rec.total_bytes() as f64 / secs / 1e6,
            cpu_us_per_op: if ops == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / ops as f64
            },
            lines,
            errors: rec.errors.into_iter().collect(),
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ops: serde_json::Map<String, serde_json::Value> = self
            .lines
            .iter()
            .map(|l| {
                (
                    l.op.name().to_owned(),
                    json!({
                        "count": l.count, "ops_per_s": l.ops_per_s, "mb_per_s": l.mb_per_s,
                        "p50_ms": l.p50_ms, "p90_ms": l.p90_ms, "p99_ms": l.p99_ms,
                        "max_ms": l.max_ms,
                    }),
                )
            })
            .collect();
        let errors: serde_json::Map<String, serde_json::Value> = self
            .errors
            .iter()
            .map(|(k, n)| (k.clone(), json!(n)))
            .collect();
        json!({
            "workload": self.workload, "size_bytes": self.size,
            "concurrency": self.concurrency, "seconds": self.seconds, "ops": self.ops,
            "ops_per_s": self.ops_per_s, "mb_per_s": self.mb_per_s,
            "cpu_us_per_op": self.cpu_us_per_op, "operations": ops, "errors": errors,
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "workload {}  size {} B  concurrency {}  {:.1} s measured\n\
             {} ops  {:.0} ops/s  {:.2} MB/s  generator CPU {:.1} µs/op\n\n\
             {:<10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
            self.workload,
            self.size,
            self.concurrency,
            self.seconds,
            self.ops,
            self.ops_per_s,
            self.mb_per_s,
            self.cpu_us_per_op,
            "op",
            "count",
            "ops/s",
            "MB/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        for l in &self.lines {
            s.push_str(&format!(
                "{:<10} {:>10} {:>10.0} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                l.op.name(),
                l.count,
                l.ops_per_s,
                l.mb_per_s,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms
            ));
        }
        if self.errors.is_empty() {
            s.push_str("\nno errors\n");
        } else {
            s.push_str("\nerrors:\n");
            for (k, n) in &self.errors {
                s.push_str(&format!("  {n:>8}  {k}\n"));
            }
        }
        s
    }
}
