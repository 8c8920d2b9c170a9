//! Content-addressed blocks: CID construction and verification, and the block source /
//! sink seams the MST and the formats read from and write to.
//!
//! Every CID the engine makes is CIDv1 with a sha2-256 multihash: codec raw (0x55) for body
//! chunks, dag-cbor (0x71) for everything else.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};
#[cfg(any(test, feature = "testing"))]
use std::collections::HashMap;

/// Multicodec of DAG-CBOR blocks (MST nodes, manifests, chunk indexes, commits).
pub const CODEC_DAG_CBOR: u64 = 0x71;
/// Multicodec of raw blocks (body chunks).
pub const CODEC_RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const MH_SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the digest is the data itself).
pub const MH_IDENTITY: u64 = 0x00;

/// Builds a CIDv1 from a codec and a sha2-256 digest.
pub fn cid_from_sha256(codec: u64, digest: [u8; 32]) -> Cid {
    // A 32-byte digest always fits the 64-byte multihash buffer.
    let mh = Multihash::<64>::wrap(MH_SHA2_256, &digest).expect("32-byte digest fits");
    Cid::new_v1(codec, mh)
}

/// CID of a DAG-CBOR block.
pub fn cid_dag_cbor(block: &[u8]) -> Cid {
    cid_from_sha256(CODEC_DAG_CBOR, Sha256::digest(block).into())
}

/// CID of a raw block.
pub fn cid_raw(block: &[u8]) -> Cid {
    cid_from_sha256(CODEC_RAW, Sha256::digest(block).into())
}

/// The sha2-256 digest of a CIDv1 with a sha2-256 multihash, else `None`.
pub fn sha256_digest(cid: &Cid) -> Option<[u8; 32]> {
    if cid.version() != cid::Version::V1 || cid.hash().code() != MH_SHA2_256 {
        return None;
    }
    cid.hash().digest().try_into().ok()
}

/// Why a block does not match the CID it was fetched under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("block {cid} uses an unsupported hash function (code {code:#x})")]
    UnsupportedHash { cid: Cid, code: u64 },
    #[error("block does not hash to {cid}")]
    Mismatch { cid: Cid },
}

/// Checks that `block` hashes to `cid`. Identity CIDs carry their block inline.
pub fn verify_block(cid: &Cid, block: &[u8]) -> Result<(), VerifyError> {
    let mh = cid.hash();
    let ok = match mh.code() {
        MH_SHA2_256 => Sha256::digest(block).as_slice() == mh.digest(),
        MH_IDENTITY => mh.digest() == block,
        code => return Err(VerifyError::UnsupportedHash { cid: *cid, code }),
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch { cid: *cid })
    }
}

/// A failure of the storage behind a [`BlockSource`].
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where blocks are read from. `Ok(None)` means "not here": a caller on an async
/// runtime fetches the block itself and retries (see `mst::NodeStore::insert_block`).
pub trait BlockSource {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, SourceError>;
}

/// Where newly made blocks go. Infallible: sinks buffer in memory, and the commit path
/// that drains them owns the I/O and its errors.
pub trait BlockSink {
    fn put_block(&mut self, cid: Cid, block: Vec<u8>);
}

impl BlockSink for Vec<(Cid, Vec<u8>)> {
    fn put_block(&mut self, cid: Cid, block: Vec<u8>) {
        self.push((cid, block));
    }
}

impl<T: BlockSource + ?Sized> BlockSource for &T {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, SourceError> {
        (**self).get_block(cid)
    }
}

/// A source that has nothing: every lookup misses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlocks;

impl BlockSource for NoBlocks {
    fn get_block(&self, _: &Cid) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(None)
    }
}

/// An in-memory block store, for tests, benchmarks and staging.
#[derive(Debug, Default, Clone)]
#[cfg(any(test, feature = "testing"))]
pub struct MemoryBlocks {
    blocks: HashMap<Cid, Vec<u8>>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryBlocks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks.get(cid).map(Vec::as_slice)
    }

    pub fn remove(&mut self, cid: &Cid) -> Option<Vec<u8>> {
        self.blocks.remove(cid)
    }

    pub fn insert(&mut self, cid: Cid, block: Vec<u8>) {
        self.blocks.insert(cid, block);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.blocks.iter().map(|(c, b)| (c, b.as_slice()))
    }
}

#[cfg(any(test, feature = "testing"))]
impl BlockSource for MemoryBlocks {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.blocks.get(cid).cloned())
    }
}

#[cfg(any(test, feature = "testing"))]
impl BlockSink for MemoryBlocks {
    fn put_block(&mut self, cid: Cid, block: Vec<u8>) {
        self.blocks.insert(cid, block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_mst_node_has_the_spec_cid() {
        let cid = cid_dag_cbor(&[0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6]);
        assert_eq!(
            cid.to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
    }

    #[test]
    fn verify_detects_a_flipped_bit() {
        let block = b"hello".to_vec();
        let cid = cid_raw(&block);
        assert_eq!(verify_block(&cid, &block), Ok(()));
        assert!(verify_block(&cid, b"hellp").is_err());
    }
}
