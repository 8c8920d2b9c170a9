//! CAR segments: the files a shard's plane logs are made of (`docs/format.md`).
//!
//! - [`frame`]: CARv1 header and frames.
//! - [`index`]: the binary segment index written at seal.

pub mod frame;
pub mod index;

pub use frame::{FrameError, Frames, write_header};
pub use index::{SegmentIndex, SegmentIndexBuilder};
// Reached by tests, benchmarks and fuzzers only.
#[cfg(feature = "testing")]
pub use {
    frame::{read_frame, read_header, write_frame},
    index::{IndexEntry, IndexError},
};

use crate::block::{CODEC_DAG_CBOR, MH_IDENTITY};
use crate::cbor;
use cid::Cid;
use multihash::Multihash;

/// Which log of a shard a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plane {
    /// Raw body chunks.
    Data,
    /// MST nodes, manifests, chunk indexes, bucket commits.
    Meta,
}

impl Plane {
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Data => "data",
            Plane::Meta => "catalog",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Plane::Data => 0,
            Plane::Meta => 1,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Plane::Data),
            1 => Some(Plane::Meta),
            _ => None,
        }
    }
}

/// Names one segment: plane, shard and per-plane sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId {
    pub plane: Plane,
    pub shard: u32,
    pub seq: u64,
}

impl SegmentId {
    /// The segment's CAR root: an identity CID (dag-cbor) whose "digest" is the block
    /// `{"seq": n, "plane": "data"|"catalog", "shard": n}`. It names the segment inside
    /// the file, so a file can never be mistaken for another segment, and it is fixed when
    /// the segment opens, so the header never changes size.
    pub fn header_root(&self) -> Cid {
        let mut b = Vec::with_capacity(40);
        cbor::write_map(&mut b, 3);
        cbor::write_text(&mut b, "seq");
        cbor::write_uint(&mut b, self.seq);
        cbor::write_text(&mut b, "plane");
        cbor::write_text(&mut b, self.plane.as_str());
        cbor::write_text(&mut b, "shard");
        cbor::write_uint(&mut b, u64::from(self.shard));
        // At most 39 bytes: always fits the 64-byte multihash.
        let mh = Multihash::<64>::wrap(MH_IDENTITY, &b).expect("segment id fits 64 bytes");
        Cid::new_v1(CODEC_DAG_CBOR, mh)
    }

    /// The segment named by a CAR root made by [`SegmentId::header_root`].
    pub fn from_header_root(root: &Cid) -> Option<Self> {
        if root.hash().code() != MH_IDENTITY || root.codec() != CODEC_DAG_CBOR {
            return None;
        }
        let mut d = cbor::Decoder::new(root.hash().digest());
        if d.map().ok()? != 3 {
            return None;
        }
        d.expect_key("seq").ok()?;
        let seq = d.uint().ok()?;
        d.expect_key("plane").ok()?;
        let plane = match d.text().ok()? {
            "data" => Plane::Data,
            "catalog" => Plane::Meta,
            _ => return None,
        };
        d.expect_key("shard").ok()?;
        let shard = u32::try_from(d.uint().ok()?).ok()?;
        d.finish().ok()?;
        Some(Self { plane, shard, seq })
    }

    /// The CAR header this segment starts with.
    pub fn header(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        write_header(&mut b, &[self.header_root()]);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_root_names_the_segment() {
        for id in [
            SegmentId {
                plane: Plane::Data,
                shard: 0,
                seq: 0,
            },
            SegmentId {
                plane: Plane::Meta,
                shard: u32::MAX,
                seq: u64::MAX,
            },
        ] {
            assert_eq!(SegmentId::from_header_root(&id.header_root()), Some(id));
            let (roots, len) = read_header(&id.header()).unwrap();
            assert_eq!((roots, len), (vec![id.header_root()], id.header().len()));
        }
    }
}
