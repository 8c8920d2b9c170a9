//! The SHA-256 of a segment file, computed on a thread of its own.
//!
//! The digest is recorded when the segment seals (its index and catalog record carry
//! it, and the shipper checks copies against it). Computed on the shard thread it was
//! a second SHA-256 pass over every body byte on the hot path (the first is the chunk
//! CIDs) and ~8 % of the shard thread under 4 KiB PUTs. Here the segment hands over a
//! copy of its bytes, in file order, as they are written; the thread hashes them and
//! answers the digest once the segment has handed over its last byte.
//!
//! Memory handed over but not yet hashed is bounded ([`HASH_QUEUE_KIB`], counted by the
//! vectors' capacity, not only the bytes to hash in them): when the thread falls
//! behind, the segment's next write waits for it.
//!
//! The segment hands over the very vector its bytes were written from (its tail, see
//! [`super::tail`]), not a copy, and the thread hands each vector back once hashed for
//! the next tail: no copy and no allocation per commit (a catalog commit hands over
//! ~100–200 KiB under 4 KiB PUTs).

use super::PlaneError;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::{Semaphore, oneshot};

/// Most memory (in KiB of vector capacity) handed over and not yet hashed.
const HASH_QUEUE_KIB: u32 = 64 << 10;
/// Buffers kept for reuse at most, and the largest kept (bigger ones are freed).
const SPARE_BUFFERS: usize = 4;
const SPARE_BUFFER_MAX_BYTES: usize = 8 << 20;

/// Hashes one segment's bytes, handed over in order, on its own thread (started at
/// the first bytes).
#[derive(Debug, Default)]
pub struct SegmentHasher {
    running: Option<Running>,
}

/// Bytes to hash: `buf[from..]`.
#[derive(Debug)]
struct Piece {
    buf: Vec<u8>,
    from: usize,
}

#[derive(Debug)]
struct Running {
    tx: mpsc::Sender<Piece>,
    /// Hashed buffers coming back for reuse.
    spares: mpsc::Receiver<Vec<u8>>,
    digest: oneshot::Receiver<[u8; 32]>,
    queued_kib: Arc<Semaphore>,
}

fn kib(bytes: usize) -> u32 {
    (bytes.div_ceil(1024) as u32).clamp(1, HASH_QUEUE_KIB)
}

impl SegmentHasher {
    fn start() -> Result<Running, PlaneError> {
        let (tx, rx) = mpsc::channel::<Piece>();
        let (spare_tx, spares) = mpsc::sync_channel::<Vec<u8>>(SPARE_BUFFERS);
        let (digest_tx, digest) = oneshot::channel();
        let queued_kib = Arc::new(Semaphore::new(HASH_QUEUE_KIB as usize));
        let queue = queued_kib.clone();
        crate::threads::spawn_helper("ingot-hash", move || {
            use sha2::{Digest, Sha256};
            let mut sha = Sha256::new();
            // Ends when the segment drops its sender: after its last bytes, or
            // unfinished (a poisoned or discarded segment), when nobody listens.
            for Piece { buf, from } in rx {
                sha.update(&buf[from..]);
                queue.add_permits(kib(buf.capacity()) as usize);
                if buf.capacity() <= SPARE_BUFFER_MAX_BYTES {
                    // Full (the segment has enough spares) or gone: the buffer is freed.
                    let _ = spare_tx.try_send(buf);
                }
            }
            let _ = digest_tx.send(sha.finalize().into());
        })
        .map_err(PlaneError::Io)?;
        Ok(Running {
            tx,
            spares,
            digest,
            queued_kib,
        })
    }

    /// A vector the thread has hashed and handed back, for the next tail.
    pub fn spare(&self) -> Option<Vec<u8>> {
        self.running.as_ref().and_then(|r| r.spares.try_recv().ok())
    }

    /// Hands over the segment's next bytes (waiting while the thread is too far behind).
    pub async fn update(&mut self, bytes: Vec<u8>) -> Result<(), PlaneError> {
        self.update_owned(bytes, 0).await
    }

    /// Hands over `buf[from..]`, the segment's next bytes, with the vector holding them.
    pub async fn update_owned(&mut self, buf: Vec<u8>, from: usize) -> Result<(), PlaneError> {
        let len = buf.len().saturating_sub(from);
        if len == 0 {
            return Ok(());
        }
        if self.running.is_none() {
            self.running = Some(Self::start()?);
        }
        let Some(r) = &self.running else {
            return Err(hasher_gone());
        };
        // A tail's vector is charged whole: many small commits must not queue many
        // large vectors.
        r.queued_kib
            .acquire_many(kib(buf.capacity()))
            .await
            .map_err(|_| hasher_gone())?
            .forget();
        r.tx.send(Piece { buf, from }).map_err(|_| hasher_gone())
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
            // Whole vectors and vectors with leading bytes not to hash, interleaved.
            for (i, p) in pieces.into_iter().enumerate() {
                if i % 3 == 0 {
                    h.update(p).await.expect("update");
                } else {
                    let mut buf = h.spare().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(&[0xee; 100][..i]);
                    buf.extend_from_slice(&p);
                    h.update_owned(buf, i).await.expect("update_owned");
                }
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
