//! The seam to the cold tier: where the blocks of retired segments are read from.
//!
//! A shard thread cannot run the network client (it lives on tokio), so a read is a
//! request handed to a [`ColdStore`] with a oneshot for the answer; the shard awaits the
//! answer and verifies the bytes against the block's CID like any other read.

use std::fmt;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Reads byte ranges of shipped segments. Implemented on the tokio side (the shipper).
pub trait ColdStore: Send + Sync + 'static {
    /// Reads `len` bytes at `offset` of the segment shipped to `location` and sends them
    /// (exactly `len` bytes, or an error) to `reply`. Must not block: it is called on a
    /// shard thread, and should hand the work to another runtime.
    fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u32,
        reply: oneshot::Sender<std::io::Result<Vec<u8>>>,
    );
}

/// A shared [`ColdStore`], as the engine's configuration holds it.
#[derive(Clone)]
pub struct ColdHandle(Arc<dyn ColdStore>);

impl ColdHandle {
    pub fn new(store: Arc<dyn ColdStore>) -> Self {
        Self(store)
    }

    /// Reads a range of a shipped segment.
    pub async fn read(&self, location: &str, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.0.read_range(location, offset, len, tx);
        let bytes = rx
            .await
            .map_err(|_| std::io::Error::other("the cold tier reader stopped"))??;
        if bytes.len() != len as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("cold tier answered {} of {len} bytes", bytes.len()),
            ));
        }
        Ok(bytes)
    }
}

impl fmt::Debug for ColdHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ColdHandle")
    }
}
