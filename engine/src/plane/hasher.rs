//! The SHA-256 of a segment file, computed on a thread of its own.
//!
//! The digest is recorded when the segment seals (its index and catalog record carry
//! it, and the shipper checks copies against it). Computed on the shard thread it was
//! a second SHA-256 pass over every body byte on the hot path (the first is the chunk
//! CIDs) and ~8 % of the shard thread under 4 KiB PUTs. Here the segment hands over a
//! copy of its bytes, in file order, as they are written; the thread hashes them and
//! answers the digest once the segment has handed over its last byte.
//!
//! Bytes handed over but not yet hashed are bounded ([`HASH_QUEUE_KIB`]): when the
//! thread falls behind, the segment's next write waits for it.

use super::PlaneError;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::{Semaphore, oneshot};

/// Most bytes (in KiB) handed over and not yet hashed.
const HASH_QUEUE_KIB: u32 = 64 << 10;

/// Hashes one segment's bytes, handed over in order, on its own thread (started at
/// the first bytes).
#[derive(Debug, Default)]
pub struct SegmentHasher {
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    tx: mpsc::Sender<Vec<u8>>,
    digest: oneshot::Receiver<[u8; 32]>,
    queued_kib: Arc<Semaphore>,
}

fn kib(bytes: usize) -> u32 {
    (bytes.div_ceil(1024) as u32).clamp(1, HASH_QUEUE_KIB)
}

impl SegmentHasher {
    fn start() -> Result<Running, PlaneError> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let (digest_tx, digest) = oneshot::channel();
        let queued_kib = Arc::new(Semaphore::new(HASH_QUEUE_KIB as usize));
        let queue = queued_kib.clone();
        crate::threads::spawn_helper("ingot-hash", move || {
            use sha2::{Digest, Sha256};
            let mut sha = Sha256::new();
            // Ends when the segment drops its sender: after its last bytes, or
            // unfinished (a poisoned or discarded segment), when nobody listens.
            for bytes in rx {
                sha.update(&bytes);
                queue.add_permits(kib(bytes.len()) as usize);
            }
            let _ = digest_tx.send(sha.finalize().into());
        })
        .map_err(PlaneError::Io)?;
        Ok(Running {
            tx,
            digest,
            queued_kib,
        })
    }

    /// Hands over the segment's next bytes (waiting while the thread is too far behind).
    pub async fn update(&mut self, bytes: Vec<u8>) -> Result<(), PlaneError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.running.is_none() {
            self.running = Some(Self::start()?);
        }
        let Some(r) = &self.running else {
            return Err(hasher_gone());
        };
        r.queued_kib
            .acquire_many(kib(bytes.len()))
            .await
            .map_err(|_| hasher_gone())?
            .forget();
        r.tx.send(bytes).map_err(|_| hasher_gone())
    }

    /// The SHA-256 of every byte handed over.
    pub async fn finish(self) -> Result<[u8; 32], PlaneError> {
        let Some(Running { tx, digest, .. }) = self.running else {
            use sha2::{Digest, Sha256};
            return Ok(Sha256::digest([]).into());
        };
        drop(tx);
        digest.await.map_err(|_| hasher_gone())
    }
}

fn hasher_gone() -> PlaneError {
    PlaneError::Corrupt("the segment hashing thread stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn digest_is_the_sha256_of_every_piece_in_order() {
        let pieces: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
        let whole: Vec<u8> = pieces.concat();
        let got = block_on(async {
            let mut h = SegmentHasher::default();
            for p in pieces {
                h.update(p).await.expect("update");
            }
            h.finish().await.expect("finish")
        });
        assert_eq!(got, <[u8; 32]>::from(Sha256::digest(&whole)));
    }

    #[test]
    fn pieces_larger_than_the_queue_pass_and_nothing_handed_over_is_the_empty_digest() {
        let big = vec![7u8; (HASH_QUEUE_KIB as usize + 3) * 1024];
        let got = block_on(async {
            let mut h = SegmentHasher::default();
            h.update(big.clone()).await.expect("big");
            h.update(big.clone()).await.expect("big again");
            h.finish().await.expect("finish")
        });
        assert_eq!(
            got,
            <[u8; 32]>::from(Sha256::digest([big.clone(), big].concat()))
        );
        let empty = block_on(SegmentHasher::default().finish()).expect("empty");
        assert_eq!(empty, <[u8; 32]>::from(Sha256::digest([])));
    }
}
