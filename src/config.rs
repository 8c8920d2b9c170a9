//! Settings: command-line flags, their `INGOT_*` environment twins, a TOML file and
//! built-in defaults, in that order of precedence. Unknown keys in the file are an
//! error that names them.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::config_error::ConfigError;

/// Flags of the server (each has an `INGOT_*` environment twin).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `ingot-engine config print-default`).
    #[arg(long, env = "INGOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where segments, the catalog and generated credentials live [default: ./ingot-data]
    #[arg(long, env = "INGOT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the S3 endpoint [default: 0.0.0.0:9000]
    #[arg(long, env = "INGOT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Shards, one pinned thread each [default: every online core]
    #[arg(long, env = "INGOT_CORES", value_name = "N")]
    pub cores: Option<usize>,
    /// Threads of the HTTP runtime [default: every online core]
    #[arg(long, env = "INGOT_FRONTEND_THREADS", value_name = "N")]
    pub frontend_threads: Option<usize>,
    /// Region the endpoint reports and signs for [default: us-east-1]
    #[arg(long, env = "INGOT_REGION")]
    pub region: Option<String>,
    /// Base domain for virtual-host addressing (bucket.DOMAIN); without it only
    /// path-style requests work, so set clients to path-style.
    #[arg(long, env = "INGOT_DOMAIN")]
    pub domain: Option<String>,
    /// Root access key (with --secret-key or --secret-key-file).
    #[arg(long, env = "INGOT_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Root secret key. Prefer --secret-key-file: flags show up in `ps`.
    #[arg(long, env = "INGOT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// File holding the root secret key.
    #[arg(long, env = "INGOT_SECRET_KEY_FILE", value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Shard file I/O: auto (io_uring, else blocking with a warning), uring, blocking
    /// [default: auto]
    #[arg(long, env = "INGOT_IO_MODE")]
    pub io_mode: Option<String>,
    /// Log filter, e.g. `info` or `debug,frontend=trace` [default: info]
    #[arg(long, env = "INGOT_LOG")]
    pub log: Option<String>,
    /// Multipart uploads not completed within this many seconds are aborted
    /// [default: 604800, 7 days]
    #[arg(long, env = "INGOT_UPLOAD_EXPIRY_S", value_name = "SECONDS")]
    pub upload_expiry_s: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (leaf first; with --tls-key).
    /// SIGHUP re-reads both files.
    #[arg(long, env = "INGOT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert; refused if group or others can read it.
    #[arg(long, env = "INGOT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Connections open at once; past it a new one is answered 503 SlowDown and closed
    /// [default: 4096]
    #[arg(long, env = "INGOT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
}

/// The TOML file. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub cores: Option<usize>,
    pub frontend_threads: Option<usize>,
    pub region: Option<String>,
    pub domain: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub io_mode: Option<String>,
    pub log: Option<String>,
    pub header_read_timeout_s: Option<u64>,
    pub drain_timeout_s: Option<u64>,
    pub upload_expiry_s: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: Option<usize>,
    pub body_read_timeout_s: Option<u64>,
    pub body_min_bytes_per_s: Option<u64>,
    pub max_requests_per_connection: Option<u64>,
    pub tls_handshake_timeout_s: Option<u64>,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub data_plane: crate::shipping::PlaneSection,
    /// `[meta_plane]`; `[catalog_plane]`, its name before the plane was renamed, is
    /// accepted too.
    #[serde(default, alias = "catalog_plane")]
    pub meta_plane: crate::shipping::PlaneSection,
    pub s3_target: Option<crate::shipping::S3Section>,
    #[serde(default)]
    pub shipper: crate::shipping::ShipperSection,
}

/// `[engine]`: storage knobs (see tuning/README.md for what each trades).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub seal_bytes: Option<u64>,
    pub seal_age_ms: Option<u64>,
    pub chunk_bytes: Option<usize>,
    pub node_cache_bytes: Option<usize>,
    pub block_cache_bytes: Option<usize>,
    pub write_behind_bytes: Option<u64>,
    /// `catalog_body_bytes`, its name before the meta plane was renamed, is accepted too.
    #[serde(alias = "catalog_body_bytes")]
    pub meta_body_bytes: Option<u64>,
    pub max_batch_ops: Option<usize>,
    pub pin_cores: Option<bool>,
    pub uring_entries: Option<u32>,
}

/// Everything the server runs with, after precedence is applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub cores: usize,
    pub frontend_threads: usize,
    pub region: String,
    pub domain: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub io_mode: engine::IoMode,
    pub log: String,
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    /// Multipart uploads older than this are aborted.
    pub upload_expiry: Duration,
    /// HTTPS when set.
    pub tls: Option<frontend::TlsFiles>,
    pub limits: frontend::ConnLimits,
    pub engine: engine::ShardConfig,
    pub pin_cores: bool,
    pub ship: crate::shipping::ShipSettings,
}

/// Default cache sizes per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    pub node_bytes: usize,
    pub block_bytes: usize,
}

/// Smallest default node cache per shard.
const MIN_NODE_CACHE_BYTES: usize = 64 << 20;
/// Smallest default block cache per shard.
const MIN_BLOCK_CACHE_BYTES: usize = 256 << 20;

impl CacheSizes {
    /// An eighth of `memory_bytes` shared by the shards, a quarter of each share for MST
    /// nodes and the rest for blocks, never below 64 MiB and 256 MiB. Listing a large
    /// bucket touches one manifest per key and about one node per four keys: caches that
    /// hold them keep a LIST page off the disk (`tuning/README.md`).
    pub fn for_memory(memory_bytes: u64, shards: usize) -> Self {
        let share = usize::try_from(memory_bytes / 8 / shards.max(1) as u64).unwrap_or(usize::MAX);
        Self {
            node_bytes: (share / 4).max(MIN_NODE_CACHE_BYTES),
            block_bytes: (share - share / 4).max(MIN_BLOCK_CACHE_BYTES),
        }
    }
}

/// Physical memory (`MemTotal` of /proc/meminfo), if it can be read.
pub fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads the TOML file. A file that holds a secret (`secret_key`, `[s3_target]
/// secret_key`) is refused unless only its owner has access to it.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let (text, mode) = crate::secret_file::read_with_mode(path)?;
    let f = parse_file(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })?;
    if f.holds_secrets() {
        crate::secret_file::ensure_private(path, mode)?;
    }
    Ok(f)
}

impl FileConfig {
    /// Whether the file itself holds a secret key.
    fn holds_secrets(&self) -> bool {
        self.secret_key.is_some()
            || self
                .s3_target
                .as_ref()
                .is_some_and(|s| s.secret_key.is_some())
    }
}

pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Seven days, as S3 lifecycle rules commonly use for incomplete uploads.
pub const DEFAULT_UPLOAD_EXPIRY_S: u64 = 7 * 24 * 3600;

fn positive_u64(name: &str, v: u64) -> Result<u64, ConfigError> {
    if v == 0 {
        Err(ConfigError::Invalid(format!("{name} must be at least 1")))
    } else {
        Ok(v)
    }
}

/// The certificate and key, given together or not at all (each by flag, environment
/// or file).
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<frontend::TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(frontend::TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Invalid(
            "tls_cert was given without tls_key (--tls-key, INGOT_TLS_KEY)".into(),
        )),
        (None, Some(_)) => Err(ConfigError::Invalid(
            "tls_key was given without tls_cert (--tls-cert, INGOT_TLS_CERT)".into(),
        )),
    }
}

/// The connection limits: `max_connections` by flag or file, the rest file-only.
fn conn_limits(a: &ServeArgs, f: &FileConfig) -> Result<frontend::ConnLimits, ConfigError> {
    let d = frontend::ConnLimits::default();
    let secs = |name: &str, v: Option<u64>, default: Duration| {
        v.map_or(Ok(default), |s| {
            positive_u64(name, s).map(Duration::from_secs)
        })
    };
    Ok(frontend::ConnLimits {
        max_connections: positive_u64(
            "max_connections",
            a.max_connections
                .or(f.max_connections)
                .map_or(d.max_connections as u64, |n| n as u64),
        )? as usize,
        body_read_timeout: secs(
            "body_read_timeout_s",
            f.body_read_timeout_s,
            d.body_read_timeout,
        )?,
        body_min_bytes_per_s: f.body_min_bytes_per_s.unwrap_or(d.body_min_bytes_per_s),
        max_requests_per_connection: positive_u64(
            "max_requests_per_connection",
            f.max_requests_per_connection
                .unwrap_or(d.max_requests_per_connection),
        )?,
        tls_handshake_timeout: secs(
            "tls_handshake_timeout_s",
            f.tls_handshake_timeout_s,
            d.tls_handshake_timeout,
        )?,
    })
}

fn io_mode(s: &str) -> Result<engine::IoMode, ConfigError> {
    match s {
        "auto" => Ok(engine::IoMode::Auto),
        "uring" => Ok(engine::IoMode::Uring),
        "blocking" => Ok(engine::IoMode::Blocking),
        other => Err(ConfigError::Invalid(format!(
            "io_mode {other:?}: expected auto, uring or blocking"
        ))),
    }
}

impl Settings {
    /// Applies flag/env > file > default.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    pub fn merge(a: ServeArgs, f: FileConfig) -> Result<Self, ConfigError> {
        let d = engine::ShardConfig::default();
        let e = &f.engine;
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid(format!("{name} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        let cores = positive("cores", a.cores.or(f.cores).unwrap_or_else(online_cores))?;
        let caches = memory_bytes().map_or(
            CacheSizes {
                node_bytes: MIN_NODE_CACHE_BYTES,
                block_bytes: MIN_BLOCK_CACHE_BYTES,
            },
            |m| CacheSizes::for_memory(m, cores),
        );
        let frontend_threads = positive(
            "frontend_threads",
            a.frontend_threads
                .or(f.frontend_threads)
                .unwrap_or_else(online_cores),
        )?;
        let limits = conn_limits(&a, &f)?;
        let tls = tls_files(a.tls_cert.or(f.tls_cert), a.tls_key.or(f.tls_key))?;
        let domain = a.domain.or(f.domain).filter(|d| !d.is_empty());
        Ok(Self {
            data_dir: a
                .data_dir
                .or(f.data_dir)
                .unwrap_or_else(|| "./ingot-data".into()),
            listen: a
                .listen
                .or(f.listen)
                .unwrap_or_else(|| ([0, 0, 0, 0], 9000).into()),
            cores,
            frontend_threads,
            region: a.region.or(f.region).unwrap_or_else(|| "us-east-1".into()),
            domain,
            access_key: a.access_key.or(f.access_key),
            secret_key: a.secret_key.or(f.secret_key),
            secret_key_file: a.secret_key_file.or(f.secret_key_file),
            io_mode: io_mode(a.io_mode.or(f.io_mode).as_deref().unwrap_or("auto"))?,
            log: a.log.or(f.log).unwrap_or_else(|| "info".into()),
            header_read_timeout: Duration::from_secs(f.header_read_timeout_s.unwrap_or(30)),
            drain_timeout: Duration::from_secs(f.drain_timeout_s.unwrap_or(30)),
            upload_expiry: Duration::from_secs(positive_u64(
                "upload_expiry_s",
                a.upload_expiry_s
                    .or(f.upload_expiry_s)
                    .unwrap_or(DEFAULT_UPLOAD_EXPIRY_S),
            )?),
            tls,
            limits,
            engine: engine::ShardConfig {
                seal_bytes: e.seal_bytes.unwrap_or(d.seal_bytes),
                seal_age: e.seal_age_ms.map_or(d.seal_age, Duration::from_millis),
                chunk_bytes: e.chunk_bytes.unwrap_or(d.chunk_bytes),
                node_cache_bytes: e.node_cache_bytes.unwrap_or(caches.node_bytes),
                block_cache_bytes: e.block_cache_bytes.unwrap_or(caches.block_bytes),
                write_behind_bytes: e.write_behind_bytes.unwrap_or(d.write_behind_bytes),
                meta_body_bytes: e.meta_body_bytes.unwrap_or(d.meta_body_bytes),
                max_batch_ops: e.max_batch_ops.unwrap_or(d.max_batch_ops),
                uring_entries: e.uring_entries.unwrap_or(d.uring_entries),
                ..d
            },
            pin_cores: e.pin_cores.unwrap_or(true),
            ship: crate::shipping::ShipSettings::resolve(
                &f.data_plane,
                &f.meta_plane,
                f.s3_target.as_ref(),
                &f.shipper,
            )?,
        })
    }
}

/// `ingot-engine config print-default`: every key, commented, with its default.
pub const DEFAULT_CONFIG: &str = r#"# ingot-engine configuration (TOML).
# Precedence: command-line flag > INGOT_* environment variable > this file > default.
# Every key is optional; unknown keys are refused at start.

# Segments, the catalog and generated credentials. (--data-dir, INGOT_DATA_DIR)
data_dir = "./ingot-data"

# Address of the S3 endpoint. (--listen, INGOT_LISTEN)
listen = "0.0.0.0:9000"

# Shards, one pinned io_uring thread each; default: every online core.
# A bucket stays on the shard it was created on, also when this changes. (--cores)
# cores = 16

# Threads of the HTTP runtime; default: every online core. (--frontend-threads)
# frontend_threads = 16

# Region reported by GetBucketLocation and expected in signatures. (--region)
region = "us-east-1"

# Base domain for virtual-host addressing (bucket.s3.example.com); empty: path-style
# only. (--domain)
domain = ""

# Root credentials. With none given, a random pair is generated on first start and
# stored in <data_dir>/credentials.toml (mode 0600). (--access-key, --secret-key,
# --secret-key-file, INGOT_ACCESS_KEY, INGOT_SECRET_KEY, INGOT_SECRET_KEY_FILE)
# access_key = "..."
# secret_key_file = "/run/secrets/ingot-secret-key"

# Shard file I/O: "auto" (io_uring, else blocking calls with a warning), "uring"
# (refuse to start without io_uring), "blocking". (--io-mode)
io_mode = "auto"

# Log filter (tracing EnvFilter syntax). (--log, INGOT_LOG)
log = "info"

# A client must send its request head within this many seconds; on a keep-alive
# connection the idle wait for the next request counts too.
header_read_timeout_s = 30

# On SIGTERM/SIGINT, in-flight requests get this many seconds to finish.
drain_timeout_s = 30

# HTTPS on the S3 listener: a PEM certificate chain (leaf first) and its PEM private key
# (refused if group or others can read it). Both or neither; without them the listener
# speaks plain HTTP. SIGHUP re-reads both files (a bad pair is logged, the old one kept).
# (--tls-cert, --tls-key, INGOT_TLS_CERT, INGOT_TLS_KEY)
# tls_cert = "/etc/ingot/tls/fullchain.pem"
# tls_key = "/etc/ingot/tls/key.pem"

# Connections open at once (TLS handshakes included); past it a new connection is
# answered 503 SlowDown and closed. Keep the open-file limit (ulimit -n) above it.
# (--max-connections, INGOT_MAX_CONNECTIONS)
max_connections = 4096

# The longest wait for the next piece of a request body; then the request fails with
# 400 RequestTimeout, nothing is stored and the connection is closed.
body_read_timeout_s = 30

# Past its first body_read_timeout_s of waiting, a request body must keep arriving at
# this many bytes per second on average (time the node itself holds the body back does
# not count), or it fails the same way: a client dripping a byte just inside the
# timeout cannot hold a connection forever. 0 turns this off.
body_min_bytes_per_s = 1024

# Requests one keep-alive connection carries; the last is answered with
# "Connection: close".
max_requests_per_connection = 1000

# The longest TLS handshake.
tls_handshake_timeout_s = 10

# Multipart uploads not completed within this many seconds are aborted and their parts
# dropped (checked at start and then every hour). (--upload-expiry-s)
upload_expiry_s = 604800

[engine]
# A segment is sealed (and becomes shippable) at this size...
seal_bytes = 67108864
# ...or once it has held frames for this long.
seal_age_ms = 5000
# Body chunk size: the unit of deduplication and of ranged reads.
chunk_bytes = 1048576
# Caches per shard. Default: an eighth of physical memory shared by the shards, a quarter
# of each share for decoded MST nodes and the rest for blocks (manifests, chunk indexes,
# small chunks), at least 64 MiB and 256 MiB.
# node_cache_bytes = 67108864
# block_cache_bytes = 268435456
# A streaming body's pages are written once this many are pending.
write_behind_bytes = 1048576
# A PUT of at most this many bytes journals its body in the meta plane with its
# manifest: one fsync per group commit instead of two. 0 turns it off.
meta_body_bytes = 16384
# Most requests one group commit takes.
max_batch_ops = 4096
# Pin each shard thread to its core.
pin_cores = true
# io_uring submission queue entries per shard thread (a power of two, 8 to 32768).
uring_entries = 1024

# Shipping: sealed segments of a plane can leave the node for a cold tier; the newest
# `retain` shipped segments per shard stay local, older ones are retired (their blocks
# are then read from the target with ranged reads). A plane that does not ship keeps
# every segment. Targets: "file:///path" (a directory, e.g. a mounted volume) or
# "s3://bucket/prefix" on the [s3_target] endpoint.
[data_plane]
ship = false
# target = "file:///mnt/cold/node-a"
retain = 6

[meta_plane]
ship = false
# target = "s3://cold-tier/node-a"
retain = 6

[shipper]
# The catalog is read for sealed segments at least this often (and at once when a shard
# seals one).
rescan_ms = 2000
# A failed upload is retried after a random wait below min(cap, base * 2^failures).
backoff_base_ms = 500
backoff_cap_ms = 60000

# The endpoint of s3:// targets (http:// or https://; path-style). Credentials: access_key and
# secret_key here (this file must then be mode 0600), or credentials_file (TOML with
# access_key and secret_key, mode 0600), or the
# environment (INGOT_SHIP_ACCESS_KEY/INGOT_SHIP_SECRET_KEY, else AWS_ACCESS_KEY_ID/
# AWS_SECRET_ACCESS_KEY).
# [s3_target]
# endpoint = "http://127.0.0.1:9100"
# region = "us-east-1"
# credentials_file = "/etc/ingot/ship-credentials.toml"
# Certificates trusted for https:// besides the Mozilla roots (PEM).
# ca_file = "/etc/ingot/cold-tier-ca.pem"
# timeout_s = 60
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_parses_and_matches_the_defaults() {
        let f = parse_file(DEFAULT_CONFIG).expect("default config parses");
        let from_file = Settings::merge(ServeArgs::default(), f).unwrap();
        let builtin = Settings::merge(ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(
            format!("{:?}", from_file.engine),
            format!("{:?}", builtin.engine)
        );
        assert_eq!(from_file.listen, builtin.listen);
        assert_eq!(from_file.data_dir, builtin.data_dir);
        assert_eq!(from_file.region, builtin.region);
        assert_eq!(from_file.domain, None);
        assert_eq!(from_file.upload_expiry, builtin.upload_expiry);
        assert_eq!(builtin.upload_expiry, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(from_file.limits, builtin.limits);
        assert_eq!(from_file.limits, frontend::ConnLimits::default());
        assert_eq!(from_file.tls, None);
    }

    #[test]
    fn the_meta_plane_keys_parse_under_their_old_names_too() {
        let new = parse_file("[engine]\nmeta_body_bytes = 4096\n\n[meta_plane]\nretain = 3\n")
            .expect("new names parse");
        let old =
            parse_file("[engine]\ncatalog_body_bytes = 4096\n\n[catalog_plane]\nretain = 3\n")
                .expect("old names parse");
        for f in [new, old] {
            assert_eq!(f.engine.meta_body_bytes, Some(4096));
            assert_eq!(f.meta_plane.retain, Some(3));
            let s = Settings::merge(ServeArgs::default(), f).unwrap();
            assert_eq!(s.engine.meta_body_bytes, 4096);
        }
    }

    #[test]
    fn caches_take_an_eighth_of_memory_with_floors() {
        let c = CacheSizes::for_memory(24 << 30, 2);
        assert_eq!(c.node_bytes, 384 << 20);
        assert_eq!(c.block_bytes, 1152 << 20);
        assert_eq!(c.node_bytes + c.block_bytes, (24 << 30) / 8 / 2);
        let small = CacheSizes::for_memory(2 << 30, 16);
        assert_eq!(small.node_bytes, MIN_NODE_CACHE_BYTES);
        assert_eq!(small.block_bytes, MIN_BLOCK_CACHE_BYTES);
        let f = parse_file("[engine]\nnode_cache_bytes = 1048576\n").unwrap();
        let s = Settings::merge(ServeArgs::default(), f).unwrap();
        assert_eq!(s.engine.node_cache_bytes, 1 << 20);
    }

    #[test]
    fn unknown_keys_are_reported_by_name() {
        let err = parse_file("listen = \"127.0.0.1:1\"\nlisten_port = 9\n").unwrap_err();
        assert!(err.contains("listen_port"), "{err}");
        let err = parse_file("[engine]\nseal_size = 1\n").unwrap_err();
        assert!(err.contains("seal_size"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let f =
            parse_file("region = \"eu-west-3\"\ncores = 3\n[engine]\nseal_bytes = 1024\n").unwrap();
        let a = ServeArgs {
            cores: Some(5),
            ..ServeArgs::default()
        };
        let s = Settings::merge(a, f).unwrap();
        assert_eq!(s.cores, 5);
        assert_eq!(s.region, "eu-west-3");
        assert_eq!(s.engine.seal_bytes, 1024);
        assert_eq!(s.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
    }

    #[test]
    fn tls_needs_both_files_from_any_source() {
        let f = parse_file("tls_key = \"/k.pem\"\n").unwrap();
        let a = ServeArgs {
            tls_cert: Some("/c.pem".into()),
            ..ServeArgs::default()
        };
        let s = Settings::merge(a, f).unwrap();
        let tls = s.tls.unwrap();
        assert_eq!((tls.cert, tls.key), ("/c.pem".into(), "/k.pem".into()));
        let f = parse_file("tls_cert = \"/c.pem\"\n").unwrap();
        let e = Settings::merge(ServeArgs::default(), f).unwrap_err();
        assert!(e.to_string().contains("without tls_key"), "{e}");
        let a = ServeArgs {
            tls_key: Some("/k.pem".into()),
            ..ServeArgs::default()
        };
        let e = Settings::merge(a, FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("without tls_cert"), "{e}");
    }

    #[test]
    fn limits_come_from_flags_and_the_file_and_zero_is_refused() {
        let f = parse_file(
            "max_connections = 7\nbody_read_timeout_s = 3\nmax_requests_per_connection = 5\n\
             tls_handshake_timeout_s = 2\n",
        )
        .unwrap();
        let a = ServeArgs {
            max_connections: Some(9),
            ..ServeArgs::default()
        };
        let l = Settings::merge(a, f).unwrap().limits;
        assert_eq!(l.max_connections, 9);
        assert_eq!(l.body_read_timeout, Duration::from_secs(3));
        assert_eq!(l.max_requests_per_connection, 5);
        assert_eq!(l.tls_handshake_timeout, Duration::from_secs(2));
        for key in [
            "max_connections",
            "body_read_timeout_s",
            "max_requests_per_connection",
            "tls_handshake_timeout_s",
        ] {
            let f = parse_file(&format!("{key} = 0\n")).unwrap();
            let e = Settings::merge(ServeArgs::default(), f).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn a_config_file_with_secrets_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let set = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let root = dir.path().join("root.toml");
        std::fs::write(&root, "access_key = \"AK\"\nsecret_key = \"SK\"\n").unwrap();
        let ship = dir.path().join("ship.toml");
        std::fs::write(
            &ship,
            "[s3_target]\naccess_key = \"AK\"\nsecret_key = \"SK\"\n",
        )
        .unwrap();
        let plain = dir.path().join("plain.toml");
        std::fs::write(&plain, "region = \"eu-west-3\"\n").unwrap();
        for mode in [0o640, 0o604] {
            for f in [&root, &ship] {
                set(f, mode);
                let e = load_file(f).unwrap_err();
                assert!(matches!(e, ConfigError::SecretFile(_)), "{e}");
                assert!(e.to_string().contains("chmod 600"), "{e}");
            }
            set(&plain, mode);
            assert!(
                load_file(&plain).is_ok(),
                "a file without secrets may be shared"
            );
        }
        set(&root, 0o600);
        set(&ship, 0o600);
        assert_eq!(load_file(&root).unwrap().secret_key.as_deref(), Some("SK"));
        assert!(load_file(&ship).is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        let f = parse_file("io_mode = \"fast\"").unwrap();
        assert!(Settings::merge(ServeArgs::default(), f).is_err());
        let zero = ServeArgs {
            cores: Some(0),
            ..ServeArgs::default()
        };
        assert!(Settings::merge(zero, FileConfig::default()).is_err());
    }
}
