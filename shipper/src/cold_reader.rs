//! Reads of retired blocks: the engine's [`ColdStore`] on a tokio runtime.

use crate::target::{Target, TargetSettings};
use engine::cold::ColdStore;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Serves the shards' ranged reads of shipped segments on a tokio runtime (the node's,
/// not the shipping thread's: reads answer clients and must not wait behind uploads).
#[derive(Debug, Clone)]
pub struct ColdReader {
    runtime: Handle,
    settings: TargetSettings,
}

impl ColdReader {
    pub fn new(runtime: Handle, settings: TargetSettings) -> Self {
        Self { runtime, settings }
    }
}

impl ColdStore for ColdReader {
    fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u32,
        reply: oneshot::Sender<std::io::Result<Vec<u8>>>,
    ) {
        let (location, settings) = (location.to_owned(), self.settings.clone());
        self.runtime.spawn(async move {
            let r = match Target::for_location(&location, &settings) {
                Ok(t) => t
                    .read_range(&location, offset, u64::from(len))
                    .await
                    .map(|b| b.to_vec())
                    .map_err(std::io::Error::other),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let _ = reply.send(r);
        });
    }
}
