//! The command line of `ingot-engine bench`, and turning it into a [`Plan`].

use super::Plan;
use super::stats::Op;
use crate::S3Settings;
use std::time::Duration;

/// Flags of `ingot-engine bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// put, get, stat, delete, list, mixed or multipart
    #[arg(default_value = "put")]
    pub op: String,
    /// The S3 endpoint (any S3 server), `http://` or `https://`.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Bucket to use; created when missing (and then deleted afterwards).
    #[arg(long, default_value = "ingot-bench")]
    pub bucket: String,
    /// Key prefix of every object the run writes.
    #[arg(long, default_value = "bench/")]
    pub prefix: String,
    /// Object size, fixed (`4KiB`) or a range (`1KiB-1MiB`, uniform).
    #[arg(long, default_value = "4KiB")]
    pub size: String,
    /// Requests in flight (one connection each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to measure (after the warm-up), e.g. `30s`, `2m`.
    #[arg(long)]
    pub duration: Option<String>,
    /// Measure this many operations instead of a duration.
    #[arg(long)]
    pub objects: Option<u64>,
    /// Objects written before a get, stat, delete, list or mixed run.
    #[arg(long, default_value_t = 1000)]
    pub prefill: u64,
    /// The prefilled objects exist already (an earlier run with the same bucket, prefix,
    /// `--prefill` and `--keep`): do not write them again.
    #[arg(long)]
    pub reuse_prefill: bool,
    /// Not recorded: the first part of the run.
    #[arg(long, default_value = "2s")]
    pub warmup: String,
    /// Weights of a mixed run, e.g. `get=60,put=30,stat=5,delete=5`.
    #[arg(long, default_value = "get=60,put=30,stat=10")]
    pub mix: String,
    /// Part size of multipart uploads.
    #[arg(long, default_value = "8MiB")]
    pub part_size: String,
    /// Threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Keep what the run wrote (and the bucket).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `12.5KiB` → (12.5, "KiB").
fn number_and_unit<'a>(s: &'a str, what: &str) -> Result<(f64, &'a str), String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n = num.parse().map_err(|_| format!("bad {what} {s:?}"))?;
    Ok((n, unit.trim()))
}

/// `4096`, `4KiB`, `4KB`, `1.5MiB`, `64MiB`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s, "size")?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    Ok((n * mult as f64).round() as u64)
}

/// `500ms`, `10s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s, "duration")?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `get=60,put=40`.
pub fn parse_mix(s: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("mix entry {part:?} is not op=weight"))?;
        let op = Op::parse(name.trim()).ok_or_else(|| format!("unknown operation {name:?}"))?;
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("bad weight in {part:?}"))?;
        if w > 0 {
            out.push((op, w));
        }
    }
    if out.is_empty() {
        return Err("the mix has no operation with a weight".into());
    }
    Ok(out)
}

impl BenchArgs {
    /// Checks the flags and resolves the endpoint.
    pub fn plan(&self, progress: bool) -> Result<Plan, String> {
        let mix = match self.op.as_str() {
            "mixed" => parse_mix(&self.mix)?,
            name => vec![(
                Op::parse(name).ok_or_else(|| format!("unknown operation {name:?}"))?,
                1,
            )],
        };
        let (size_min, size_max) = match self.size.split_once('-') {
            Some((a, b)) => (parse_size(a)?, parse_size(b)?),
            None => {
                let n = parse_size(&self.size)?;
                (n, n)
            }
        };
        if size_min > size_max {
            return Err("the size range is empty".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        let duration = match (&self.duration, self.objects) {
            (Some(d), _) => Some(parse_duration(d)?),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        let reads = mix
            .iter()
            .any(|(op, _)| !matches!(op, Op::Put | Op::Multipart));
        let deletes_only = mix.iter().all(|(op, _)| *op == Op::Delete);
        let prefill = match (reads, deletes_only, self.objects) {
            (false, _, _) => 0,
            (true, true, Some(n)) => n.max(self.prefill),
            (true, _, _) => self.prefill.max(1),
        };
        Ok(Plan {
            target: target(&self.endpoint, self)?,
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            mix,
            size_min,
            size_max,
            part_bytes: parse_size(&self.part_size)?.max(5 << 20),
            concurrency: self.concurrency,
            duration,
            max_ops: self.objects,
            prefill,
            reuse_prefill: self.reuse_prefill,
            warmup: parse_duration(&self.warmup)?,
            keep: self.keep,
            progress,
        })
    }
}

/// The endpoint and credentials of the run; the endpoint is checked here, before any
/// object is written.
fn target(endpoint: &str, a: &BenchArgs) -> Result<S3Settings, String> {
    crate::pool::Endpoint::parse(endpoint).map_err(|e| e.to_string())?;
    Ok(S3Settings {
        endpoint: endpoint.to_owned(),
        ca_file: None,
        region: a.region.clone(),
        access_key: a.access_key.clone(),
        secret_key: a.secret_key.clone(),
        // A load generator waits as long as the server takes: a slow answer is a
        // measurement, not a failure.
        timeout: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_mixes_parse() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_mix("get=60,put=40,list=0"),
            Ok(vec![(Op::Get, 60), (Op::Put, 40)])
        );
        assert!(parse_mix("get=x").is_err());
        assert!(parse_mix("list=0").is_err());
    }
}
