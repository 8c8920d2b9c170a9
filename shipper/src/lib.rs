//! The cold tier (`docs/ARCHITECTURE.md`, shipping): sealed segments leave the node for a
//! target, and blocks of retired segments are read back from it with ranged reads.
//!
//! This crate runs on the tokio side and has no global setup: a [`Target`] is built from
//! a URL, a [`Shipper`] runs the pipeline for one engine, a [`ColdReader`] serves the
//! shards' reads of retired blocks.

pub mod cold_reader;
pub mod pipeline;
pub mod ship_metrics;
pub mod target;

pub use cold_reader::ColdReader;
pub use pipeline::{PlanePolicy, ShipError, ShipStep, Shipper, ShipperConfig};
pub use ship_metrics::ShipperMetrics;
pub use target::{Target, TargetError, TargetSettings};

use engine::Engine;
use engine::catalog::Catalog;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Nice value of the shipping thread: under load, the frontend's and the shards'
/// threads get the CPU first (CFS weight 15 against 1024 for nice 0).
pub const SHIPPER_NICE: i32 = 19;

/// A pipeline running on its own low-priority thread.
#[derive(Debug)]
pub struct ShipperThread {
    stop: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
}

impl ShipperThread {
    /// Starts `Shipper::run` on a new thread (`ingot-shipper`) with a current-thread
    /// tokio runtime, lowered to [`SHIPPER_NICE`]. Threads it spawns for blocking file
    /// work inherit the nice value.
    pub fn spawn<C: Catalog + 'static>(
        engine: Arc<Engine<C>>,
        config: ShipperConfig,
        metrics: Arc<ShipperMetrics>,
    ) -> std::io::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("ingot-shipper".into())
            .spawn(move || {
                if let Err(e) = rustix::process::setpriority_process(
                    Some(rustix::thread::gettid()),
                    SHIPPER_NICE,
                ) {
                    tracing::warn!(error = %e, "cannot lower the shipping thread's priority");
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(Shipper::new(engine, config, metrics).run(stop_rx)),
                    Err(e) => tracing::error!(error = %e, "cannot start the shipping runtime"),
                }
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            stop,
            done: Some(done),
        })
    }

    /// Stops the pipeline and waits for its thread to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}
