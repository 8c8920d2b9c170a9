//! A running node: the S3 endpoint bound first (so health answers during recovery),
//! the engine opened behind it, and an orderly stop.

use crate::config::Settings;
use crate::credentials::Credentials;
use engine::cold::ColdHandle;
use engine::{Engine, EngineConfig};
use frontend::tls::CertStore;
use frontend::{EngineSlot, Frontend, FrontendConfig, Metrics};
use shipper::{ColdReader, ShipperMetrics, ShipperThread};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Frontend(#[from] frontend::FrontendError),
    #[error("storage engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("the engine thread panicked while opening")]
    Panicked,
    #[error("shipping: {0}")]
    Shipping(String),
}

/// The shipper's metrics on `/metrics`.
#[derive(Debug)]
struct ShipMetricsSource(Arc<ShipperMetrics>);

impl frontend::request_metrics::MetricsSource for ShipMetricsSource {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

/// A started node. Dropping it without [`Node::stop`] leaves the engine to its
/// `Drop` (no seal, recovery on the next start).
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
    scheme: &'static str,
    /// The listener's certificate, when it speaks TLS (reloaded on SIGHUP).
    cert_store: Option<Arc<CertStore>>,
    engine: EngineSlot,
    stop_tx: watch::Sender<bool>,
    served: Option<tokio::task::JoinHandle<()>>,
    /// The upload-expiry sweep; it holds the engine only while it sweeps.
    sweeper: Option<tokio::task::JoinHandle<()>>,
    opened: Option<oneshot::Receiver<Result<(), NodeError>>>,
    /// The shipping pipeline, started once the engine has opened (when a plane ships).
    shipper: Arc<std::sync::Mutex<Option<ShipperThread>>>,
    ship_metrics: Arc<ShipperMetrics>,
}

/// Aborts multipart uploads older than `expiry`: once the engine has opened, then every
/// hour (or a quarter of `expiry`, when shorter), until the node stops.
async fn expire_uploads(
    slot: EngineSlot,
    mut ready: watch::Receiver<bool>,
    expiry: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        r = ready.wait_for(|r| *r) => if r.is_err() { return },
        _ = stop.wait_for(|s| *s) => return,
    }
    let every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        if let Some(engine) = slot.get() {
            let cutoff_ms = engine::now_ms().saturating_sub(expiry.as_millis() as u64);
            match engine.expire_uploads(cutoff_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(uploads = n, "expired multipart uploads aborted"),
                Err(e) => tracing::warn!(error = %e, "expiring multipart uploads failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

impl Node {
    /// Binds the endpoint and starts opening the engine (recovery runs in the
    /// background; S3 requests get 503 and `/health/ready` says "recovering" until
    /// it is done). Must run inside a tokio runtime.
    pub async fn start(s: &Settings, creds: &Credentials) -> Result<Self, NodeError> {
        let engine: EngineSlot = Arc::new(OnceLock::new());
        let metrics = Arc::new(Metrics::default());
        let invalid = |e: crate::config::ConfigError| NodeError::Shipping(e.to_string());
        let targets = s.ship.target_settings().map_err(invalid)?;
        let ship_config = s.ship.shipper_config(&targets).map_err(invalid)?;
        let ship_metrics = Arc::new(ShipperMetrics::default());
        if ship_config.ships() {
            metrics.add_source(Arc::new(ShipMetricsSource(ship_metrics.clone())));
        }
        let mut fc =
            FrontendConfig::new(s.listen, creds.access_key.clone(), creds.secret_key.clone());
        fc.region = s.region.clone();
        fc.domain = s.domain.clone();
        fc.header_read_timeout = s.header_read_timeout;
        fc.drain_timeout = s.drain_timeout;
        fc.tls = s.tls.clone();
        fc.limits = s.limits;
        let frontend = Frontend::bind(fc, engine.clone(), metrics).await?;
        let addr = frontend
            .local_addr()
            .map_err(|e| frontend::FrontendError::Bind {
                addr: s.listen,
                source: e,
            })?;
        let (scheme, cert_store) = (frontend.scheme(), frontend.cert_store());
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let served = tokio::spawn(frontend.serve(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }));
        let ec = engine_config(s, targets);
        let (opened_tx, opened) = oneshot::channel();
        let (ready_tx, ready_rx) = watch::channel(false);
        let slot = engine.clone();
        let shipper = Arc::new(std::sync::Mutex::new(None));
        let (ship_slot, ship_m) = (shipper.clone(), ship_metrics.clone());
        tokio::task::spawn_blocking(move || {
            let r = match Engine::open(ec) {
                Ok(e) => {
                    let e = Arc::new(e);
                    let _ = slot.set(e.clone());
                    let _ = ready_tx.send(true);
                    start_shipper(e, ship_config, ship_m, &ship_slot)
                }
                Err(e) => Err(NodeError::Engine(e)),
            };
            let _ = opened_tx.send(r);
        });
        let sweeper = tokio::spawn(expire_uploads(
            engine.clone(),
            ready_rx,
            s.upload_expiry,
            stop_tx.subscribe(),
        ));
        Ok(Self {
            addr,
            scheme,
            cert_store,
            engine,
            stop_tx,
            served: Some(served),
            sweeper: Some(sweeper),
            opened: Some(opened),
            shipper,
            ship_metrics,
        })
    }

    /// The shipping pipeline's metrics.
    pub fn ship_metrics(&self) -> &Arc<ShipperMetrics> {
        &self.ship_metrics
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` when the endpoint speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The endpoint's certificate store (to reload on SIGHUP), when it speaks TLS.
    pub fn cert_store(&self) -> Option<Arc<CertStore>> {
        self.cert_store.clone()
    }

    /// Waits until the engine has recovered and serves (or failed to open).
    pub async fn ready(&mut self) -> Result<(), NodeError> {
        match self.opened.take() {
            Some(rx) => rx.await.unwrap_or(Err(NodeError::Panicked)),
            None => Ok(()),
        }
    }

    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.get()
    }

    /// Stops accepting, drains in-flight requests, then commits, seals and
    /// checkpoints every shard.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        let _ = self.stop_tx.send(true);
        if let Some(s) = self.served.take() {
            let _ = s.await;
        }
        if let Some(s) = self.sweeper.take() {
            let _ = s.await;
        }
        // A stop during recovery waits for it: the engine must close cleanly.
        let opened = self.ready().await;
        let shipper = self.shipper.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = shipper {
            s.stop().await;
        }
        if let Some(e) = self.engine.get() {
            e.shutdown().await?;
        }
        opened
    }
}

/// The engine's settings, its cold-tier reads on the current tokio runtime (also
/// while recovering). Must run inside a tokio runtime.
pub fn engine_config(s: &Settings, targets: shipper::TargetSettings) -> EngineConfig {
    let mut ec = EngineConfig::new(&s.data_dir);
    ec.cores = s.cores;
    ec.io = s.io_mode;
    ec.shard = s.engine.clone();
    ec.pin_cores = s.pin_cores;
    let reader = ColdReader::new(tokio::runtime::Handle::current(), targets);
    ec.shard.cold = Some(ColdHandle::new(Arc::new(reader)));
    ec
}

fn start_shipper(
    engine: Arc<Engine>,
    config: shipper::ShipperConfig,
    metrics: Arc<ShipperMetrics>,
    slot: &std::sync::Mutex<Option<ShipperThread>>,
) -> Result<(), NodeError> {
    if !config.ships() {
        return Ok(());
    }
    let t = ShipperThread::spawn(engine, config, metrics)
        .map_err(|e| NodeError::Shipping(format!("cannot start the shipping thread: {e}")))?;
    if let Ok(mut s) = slot.lock() {
        *s = Some(t);
    }
    Ok(())
}
