//! `ingot-engine export | import | verify`: a bucket as one CAR file, through a running
//! node's admin endpoint (`--endpoint`) or on a stopped node's data directory.
//!
//! Exit codes: 0 done (verify: nothing damaged), 1 the work failed (damage found, an
//! import refused, an export cut short), 2 the command could not run (bad flags,
//! unreachable node, data directory in use).

use crate::config::{ServeArgs, Settings};
use bytes::Bytes;
use clap::Args;
use client::{ErrorBody, S3Client, S3Settings, body};
use engine::Engine;
use engine::archive::{CarItem, CarStream, CheckOptions, History};
use http_body_util::BodyExt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the bucket lives: a running node, or a stopped node's data directory.
#[derive(Debug, Clone, Args)]
pub struct Place {
    /// A running node's S3 endpoint (`http://host:port`); requests are signed with
    /// --access-key/--secret-key (or the data directory's stored key). Without it the
    /// command opens the data directory of a stopped node.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub node: ServeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub bucket: String,
    /// The file to write (`-` for standard output). A file appears only once whole.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Past commits to include with their trees: a number, or `all`.
    #[arg(long, default_value = "0", value_parser = parse_history)]
    pub history: History,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The bucket to create (it must not exist).
    #[arg(long)]
    pub bucket: String,
    /// The CAR file (`-` for standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The bucket to check (required with --endpoint; default: every bucket).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Past commits to check with their trees: a number, or `all`.
    #[arg(long, default_value = "0", value_parser = parse_history)]
    pub history: History,
    #[command(flatten)]
    pub place: Place,
}

fn parse_history(s: &str) -> Result<History, String> {
    History::parse(s).ok_or_else(|| format!("{s:?} is not a number of commits or \"all\""))
}

/// A failure and the exit code it means.
struct Failed(u8, String);

type Outcome = Result<String, Failed>;

fn usage(msg: impl Into<String>) -> Failed {
    Failed(2, msg.into())
}

fn failed(msg: impl Into<String>) -> Failed {
    Failed(1, msg.into())
}

fn finish(cmd: &str, r: Outcome) -> ExitCode {
    match r {
        Ok(summary) => {
            eprint!("{summary}");
            ExitCode::SUCCESS
        }
        Err(Failed(code, msg)) => {
            eprintln!("ingot-engine {cmd}: {msg}");
            ExitCode::from(code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start a runtime: {e}")))
}

pub fn export(args: ExportArgs) -> ExitCode {
    let r = runtime().and_then(|rt| rt.block_on(run_export(args)));
    finish("export", r)
}

pub fn import(args: ImportArgs) -> ExitCode {
    let r = runtime().and_then(|rt| rt.block_on(run_import(args)));
    finish("import", r)
}

pub fn verify(args: VerifyArgs) -> ExitCode {
    let r = runtime().and_then(|rt| rt.block_on(run_verify(args)));
    finish("verify", r)
}

/// A line on a terminal's stderr, redrawn at most every 200 ms.
struct Progress {
    what: String,
    on: bool,
    last: Instant,
    pub bytes: u64,
    pub blocks: u64,
}

impl Progress {
    fn new(what: String) -> Self {
        Self {
            what,
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
            bytes: 0,
            blocks: 0,
        }
    }

    fn add(&mut self, bytes: u64, blocks: u64) {
        self.bytes += bytes;
        self.blocks += blocks;
        if self.on && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        eprint!(
            "\r{}: {:.1} MiB, {} blocks   ",
            self.what,
            self.bytes as f64 / (1 << 20) as f64,
            self.blocks
        );
    }

    fn done(&self) {
        if self.on {
            self.draw();
            eprintln!();
        }
    }
}

/// Opens a stopped node's data directory (refused while a node runs on it).
fn open_engine(place: &Place) -> Result<Engine, Failed> {
    let s = Settings::resolve(place.node.clone()).map_err(|e| usage(e.to_string()))?;
    let targets = s.ship.target_settings().map_err(|e| usage(e.to_string()))?;
    let ec = crate::node::engine_config(&s, targets);
    let dir = ec.data_dir.clone();
    tokio::task::block_in_place(|| Engine::open(ec)).map_err(|e| {
        usage(format!(
            "{e} (to work on a running node, give its --endpoint; data directory {})",
            dir.display()
        ))
    })
}

/// The admin client for `--endpoint`.
fn client(place: &Place, endpoint: &str) -> Result<S3Client, Failed> {
    let s = Settings::resolve(place.node.clone()).map_err(|e| usage(e.to_string()))?;
    let (access_key, secret_key) = match (&s.access_key, &s.secret_key) {
        (Some(a), Some(k)) => (a.clone(), k.clone()),
        _ if s.data_dir.join("credentials.toml").exists() => {
            let c = crate::credentials::resolve(None, None, s.secret_key_file.clone(), &s.data_dir)
                .map_err(|e| usage(e.to_string()))?;
            (c.access_key, c.secret_key)
        }
        _ => {
            return Err(usage(
                "give the node's key with --access-key and --secret-key (or INGOT_ACCESS_KEY \
                 and INGOT_SECRET_KEY)",
            ));
        }
    };
    S3Client::new(S3Settings {
        endpoint: endpoint.to_owned(),
        ca_file: None,
        region: s.region.clone(),
        access_key,
        secret_key,
        timeout: Some(Duration::from_secs(30)),
    })
    .map_err(|e| usage(e.to_string()))
}

/// The error an admin request answered with: the S3 `<Message>`, or the status.
async fn answer_error(resp: hyper::Response<hyper::body::Incoming>) -> String {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match ErrorBody::parse(&body) {
        ErrorBody {
            code: Some(c),
            message: Some(m),
        } => format!("{m} ({c}, HTTP {})", status.as_u16()),
        _ => format!("HTTP {}", status.as_u16()),
    }
}

/// Where export bytes go: standard output, or a temporary file renamed into place
/// (after fsync) only once whole.
enum Sink {
    Stdout(std::io::Stdout),
    File {
        file: std::fs::File,
        tmp: PathBuf,
        dest: PathBuf,
    },
}

impl Sink {
    fn open(out: &Path) -> Result<Self, Failed> {
        if out == Path::new("-") {
            return Ok(Self::Stdout(std::io::stdout()));
        }
        let name = out
            .file_name()
            .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
        let tmp = out.with_file_name(format!(".{name}.partial"));
        let file =
            std::fs::File::create(&tmp).map_err(|e| usage(format!("{}: {e}", tmp.display())))?;
        Ok(Self::File {
            file,
            tmp,
            dest: out.to_owned(),
        })
    }

    fn write(&mut self, b: &[u8]) -> Result<(), Failed> {
        let r = match self {
            Self::Stdout(s) => s.write_all(b),
            Self::File { file, .. } => file.write_all(b),
        };
        r.map_err(|e| failed(format!("writing the export: {e}")))
    }

    fn commit(self) -> Result<(), Failed> {
        match self {
            Self::Stdout(mut s) => s.flush(),
            Self::File { file, tmp, dest } => {
                file.sync_all().and_then(|()| std::fs::rename(&tmp, &dest))
            }
        }
        .map_err(|e| failed(format!("finishing the export: {e}")))
    }
}

async fn run_export(args: ExportArgs) -> Outcome {
    let mut sink = Sink::open(&args.out)?;
    let mut progress = Progress::new(format!("exporting {}", args.bucket));
    let head = match &args.place.endpoint {
        Some(ep) => export_online(&args, ep, &mut sink, &mut progress).await?,
        None => {
            let engine = open_engine(&args.place)?;
            let r = export_offline(&engine, &args, &mut sink, &mut progress).await;
            let _ = engine.shutdown().await;
            r?
        }
    };
    progress.done();
    sink.commit()?;
    Ok(format!(
        "{}: exported {} blocks ({} bytes) at head {head}\n",
        args.bucket, progress.blocks, progress.bytes
    ))
}

async fn export_offline(
    engine: &Engine,
    args: &ExportArgs,
    sink: &mut Sink,
    progress: &mut Progress,
) -> Result<String, Failed> {
    let (head, blocks) = engine
        .export_bucket(&args.bucket, args.history)
        .await
        .map_err(|e| usage(e.to_string()))?;
    let (forward, mut rx) = engine::car_bytes(&head, blocks);
    let task = tokio::spawn(forward);
    // Pieces: the header, then a frame prefix and a block for each block.
    let mut pieces = 0u64;
    while let Some(piece) = rx.recv().await {
        let piece = piece.map_err(|e| failed(format!("export stopped: {e}")))?;
        sink.write(&piece)?;
        pieces += 1;
        let block = pieces > 1 && pieces % 2 == 1;
        progress.add(piece.len() as u64, u64::from(block));
    }
    let _ = task.await;
    Ok(head.commit.to_string())
}

async fn export_online(
    args: &ExportArgs,
    endpoint: &str,
    sink: &mut Sink,
    progress: &mut Progress,
) -> Result<String, Failed> {
    let client = client(&args.place, endpoint)?;
    let history = match args.history {
        History::Count(n) => n.to_string(),
        History::AsFarAsPresent => "all".into(),
    };
    let path = format!("/{}?ingot-export&history={history}", args.bucket);
    let resp = client
        .send_streaming(hyper::Method::GET, &path, &[], body::empty())
        .await
        .map_err(|e| usage(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(answer_error(resp).await));
    }
    let head = resp
        .headers()
        .get("x-ingot-head-commit")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    // The bytes are checked as they arrive: each block against its CID.
    let mut car = CarStream::new();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(format!("export cut short: {e}")))?;
        let Ok(data): Result<Bytes, _> = frame.into_data() else {
            continue;
        };
        sink.write(&data)?;
        car.push(&data);
        let mut blocks = 0;
        while let Some(item) = car.next_item().map_err(|e| failed(e.to_string()))? {
            blocks += u64::from(matches!(item, CarItem::Block { .. }));
        }
        progress.add(data.len() as u64, blocks);
    }
    car.finish()
        .map_err(|e| failed(format!("export cut short: {e}")))?;
    Ok(head)
}

/// The file's bytes in pieces, on a body channel.
fn feed_file(file: &Path) -> Result<(engine::BodyReceiver, tokio::task::JoinHandle<()>), Failed> {
    let mut reader: Box<dyn std::io::Read + Send> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| usage(format!("{}: {e}", file.display())))?)
    };
    let (tx, rx) = engine::body_channel();
    let task = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let piece = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) => Err(engine::EngineError::Body(e.to_string())),
            };
            let stop = piece.is_err();
            if tx.blocking_send(piece).is_err() || stop {
                return;
            }
        }
    });
    Ok((rx, task))
}

async fn run_import(args: ImportArgs) -> Outcome {
    match &args.place.endpoint {
        Some(ep) => import_online(&args, ep).await,
        None => {
            let engine = open_engine(&args.place)?;
            let r = import_offline(&engine, &args).await;
            let closed = engine.shutdown().await;
            let summary = r?;
            closed.map_err(|e| failed(format!("closing the data directory: {e}")))?;
            Ok(summary)
        }
    }
}

async fn import_offline(engine: &Engine, args: &ImportArgs) -> Outcome {
    let (rx, feed) = feed_file(&args.file)?;
    let r = engine.import_bucket(&args.bucket, rx).await;
    let _ = feed.await;
    let r = r.map_err(|e| failed(e.to_string()))?;
    Ok(r.render(&args.bucket))
}

async fn import_online(args: &ImportArgs, endpoint: &str) -> Outcome {
    if args.file == Path::new("-") {
        return Err(usage(
            "an import through --endpoint reads a file, not standard input",
        ));
    }
    let client = client(&args.place, endpoint)?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| usage(format!("{}: {e}", args.file.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| usage(format!("{}: {e}", args.file.display())))?
        .len();
    let path = format!("/{}?ingot-import", args.bucket);
    let resp = client
        .send_streaming(
            hyper::Method::POST,
            &path,
            &[("content-length", len.to_string())],
            body::file(file, len),
        )
        .await
        .map_err(|e| usage(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(answer_error(resp).await));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn run_verify(args: VerifyArgs) -> Outcome {
    let (report, problems) = match &args.place.endpoint {
        Some(ep) => verify_online(&args, ep).await?,
        None => {
            let engine = open_engine(&args.place)?;
            let r = verify_offline(&engine, &args).await;
            let _ = engine.shutdown().await;
            r?
        }
    };
    print!("{report}");
    if problems > 0 {
        return Err(failed(format!("{problems} damaged blocks found")));
    }
    Ok(String::new())
}

async fn verify_offline(engine: &Engine, args: &VerifyArgs) -> Result<(String, u64), Failed> {
    let buckets = match &args.bucket {
        Some(b) => vec![b.clone()],
        None => engine
            .list_buckets()
            .await
            .map_err(|e| usage(e.to_string()))?
            .into_iter()
            .map(|b| b.name)
            .collect(),
    };
    let (mut out, mut problems) = (String::new(), 0);
    for b in buckets {
        let r = engine
            .verify_bucket(&b, CheckOptions::full(args.history))
            .await
            .map_err(|e| usage(e.to_string()))?;
        problems += r.problem_count;
        out.push_str(&r.render(&b));
    }
    Ok((out, problems))
}

async fn verify_online(args: &VerifyArgs, endpoint: &str) -> Result<(String, u64), Failed> {
    let bucket = args
        .bucket
        .as_ref()
        .ok_or_else(|| usage("verify through --endpoint checks one bucket: give --bucket"))?;
    let client = client(&args.place, endpoint)?;
    let history = match args.history {
        History::Count(n) => n.to_string(),
        History::AsFarAsPresent => "all".into(),
    };
    let path = format!("/{bucket}?ingot-verify&history={history}");
    let resp = client
        .send_streaming(hyper::Method::GET, &path, &[], body::empty())
        .await
        .map_err(|e| usage(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(usage(answer_error(resp).await));
    }
    let problems = resp
        .headers()
        .get("x-ingot-problems")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| usage(e.to_string()))?
        .to_bytes();
    Ok((String::from_utf8_lossy(&body).into_owned(), problems))
}
