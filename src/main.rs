//! `ingot-engine`: wires the command line, configuration, logging and signals to a
//! [`ingot_engine::node::Node`]. Serving is the default command.

use clap::{Parser, Subcommand};
use ingot_engine::config::{DEFAULT_CONFIG, ServeArgs, Settings};
use ingot_engine::credentials::{self, Source};
use ingot_engine::node::Node;
use std::process::ExitCode;

// Requests allocate many small, short-lived buffers on many threads: glibc malloc spent
// ~15% of the load generator's CPU in its own bookkeeping (perf, 4 KiB PUTs), and
// fragments under the shards' caches. mimalloc's thread-local free lists avoid both.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ingot-engine",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the S3 server (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Load-test an S3 endpoint (this server or any other): put, get, stat, delete,
    /// list, mixed or multipart, reporting ops/s, MB/s and latency percentiles.
    Bench(Box<client::load::BenchArgs>),
    /// Write a bucket as one CAR file (its head commit, tree, manifests and chunks),
    /// from a running node (--endpoint) or a stopped node's data directory.
    Export(Box<ingot_engine::archive_cli::ExportArgs>),
    /// Create a bucket from a CAR file written by export, checking every block first:
    /// a damaged or forged file is refused and nothing is imported.
    Import(Box<ingot_engine::archive_cli::ImportArgs>),
    /// Check that every block reachable from each bucket's head is present and intact;
    /// names the objects of missing or damaged blocks. Exit code 1 when damage is found.
    Verify(Box<ingot_engine::archive_cli::VerifyArgs>),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print a fully commented configuration file with every default.
    PrintDefault,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Config {
            action: ConfigAction::PrintDefault,
        }) => {
            print!("{DEFAULT_CONFIG}");
            return ExitCode::SUCCESS;
        }
        Some(Command::Serve(a)) => *a,
        Some(Command::Bench(a)) => return bench(*a),
        Some(Command::Export(a)) => return ingot_engine::archive_cli::export(*a),
        Some(Command::Import(a)) => return ingot_engine::archive_cli::import(*a),
        Some(Command::Verify(a)) => return ingot_engine::archive_cli::verify(*a),
        None => cli.serve,
    };
    let settings = match Settings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ingot-engine: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.frontend_threads)
        .thread_name("ingot-http")
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP runtime");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(settings))
}

/// `ingot-engine bench`: the load generator on a runtime of its own (`--threads`).
fn bench(args: client::load::BenchArgs) -> ExitCode {
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json;
    let plan = match args.plan(progress) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ingot-engine bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .thread_name("ingot-bench")
        .enable_all()
        .build();
    let report = match rt.map(|rt| rt.block_on(client::load::run(plan))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("ingot-engine bench: setting up the run failed: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("ingot-engine bench: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    ExitCode::SUCCESS
}

/// `INGOT_LOG`/`--log` sets the filter; s3s's own request dumps stay off unless named,
/// because they would print signatures. Whatever the filter says, s3s's signature
/// checks never log below info: on a mismatch they log the signature the node
/// computed, a valid signature for whatever the client sent, so a log reader could
/// sign requests with it.
fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = if filter.contains("s3s") {
        filter.to_owned()
    } else {
        format!("{filter},s3s=off")
    };
    let env = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    let no_signatures = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with(S3S_SIGNATURE_TARGET) && *meta.level() > tracing::Level::INFO)
    });
    tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(no_signatures)
        .init();
}

/// The module of s3s whose debug lines carry computed signatures.
const S3S_SIGNATURE_TARGET: &str = "s3s::ops::signature";

async fn serve(settings: Settings) -> ExitCode {
    // Installed first: from here on a SIGHUP never ends the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let creds = match credentials::resolve(
        settings.access_key.clone(),
        settings.secret_key.clone(),
        settings.secret_key_file.clone(),
        &settings.data_dir,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "credentials");
            return ExitCode::from(2);
        }
    };
    let mut node = match Node::start(&settings, &creds).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    banner(&settings, &creds, node.addr(), node.scheme());
    tokio::spawn(reload_on_sighup(hangup, node.cert_store()));
    let stop = tokio::select! {
        r = node.ready() => match r {
            Ok(()) => {
                tracing::info!("storage recovered; ready");
                wait_for_signal().await
            }
            Err(e) => {
                tracing::error!(error = %e, "storage engine failed to open");
                return ExitCode::FAILURE;
            }
        },
        s = wait_for_signal() => s,
    };
    tracing::info!(
        signal = stop,
        "shutting down: draining requests, then commit and seal"
    );
    // A second signal skips the orderly stop (acknowledged data is durable anyway).
    tokio::spawn(async {
        let s = wait_for_signal().await;
        tracing::warn!(signal = s, "second signal: exiting without sealing");
        std::process::exit(130);
    });
    match node.stop().await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "shutdown was not clean; the next start recovers");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// SIGHUP re-reads the TLS certificate and key. A bad pair is logged and the one in
/// use stays; connections already open are not touched either way. Without TLS the
/// signal is logged and ignored (rather than ending the process, its default).
async fn reload_on_sighup(
    hangup: std::io::Result<tokio::signal::unix::Signal>,
    store: Option<std::sync::Arc<frontend::tls::CertStore>>,
) {
    let Ok(mut hup) = hangup else {
        tracing::error!("cannot install the SIGHUP handler");
        return;
    };
    while hup.recv().await.is_some() {
        let Some(store) = &store else {
            tracing::info!("SIGHUP: the listener has no TLS certificate to reload");
            continue;
        };
        let files = store.files();
        match store.reload() {
            Ok(()) => tracing::info!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                "SIGHUP: TLS certificate reloaded; new connections use it"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP: TLS certificate not reloaded; still serving the previous one"
            ),
        }
    }
}

fn banner(s: &Settings, c: &credentials::Credentials, addr: std::net::SocketAddr, scheme: &str) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let creds = match &c.source {
        Source::Given => "given on the command line or environment".to_owned(),
        Source::SecretFile(p) => format!("secret key from {}", p.display()),
        Source::Stored(p) if c.generated => {
            format!("generated, stored in {} (mode 0600)", p.display())
        }
        Source::Stored(p) => format!("stored in {}", p.display()),
    };
    eprintln!(
        "ingot-engine {version}\n  S3 endpoint:  {scheme}://{host}  (listening on {addr}, region {region}{vhost})\n  cores:        {cores} shards, {threads} HTTP threads\n  data dir:     {dir}\n  access key:   {key}\n  credentials:  {creds}\n  health:       {scheme}://{host}/health/ready   metrics: {scheme}://{host}/metrics{tls}",
        version = env!("CARGO_PKG_VERSION"),
        region = s.region,
        vhost = s
            .domain
            .as_ref()
            .map(|d| format!(", virtual hosts *.{d}"))
            .unwrap_or_default(),
        cores = s.cores,
        threads = s.frontend_threads,
        dir = s.data_dir.display(),
        key = c.access_key,
        tls = s
            .tls
            .as_ref()
            .map(|t| format!(
                "\n  TLS:          {} (key {}); SIGHUP reloads both",
                t.cert.display(),
                t.key.display()
            ))
            .unwrap_or_default(),
    );
}
