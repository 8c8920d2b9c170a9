//! Per-shard block lookup: the block index (where each block is in the plane logs) and
//! the block cache (recently read or written blocks, bounded in bytes).
//!
//! Memory: an index entry is a 32-byte SHA-256 digest and a 16-byte location, 48 bytes
//! in hash tables kept at most 7/8 full with one control byte per slot — about 56
//! bytes per block at best and 110 just after a table doubles. One million 1 MiB
//! chunks (1 TiB of bodies) cost 56–110 MB; one million 4 KiB objects (each a chunk,
//! a chunk index and a manifest, plus their share of MST nodes) about 3.5 million
//! entries, 200–390 MB.

use crate::mst::node::DigestHasher;
// Eviction work per insert is bounded the same way as the node cache's.
use crate::mst::store::MAX_EVICTION_STEPS;
use crate::plane::Location;
use crate::segment::Plane;
use bytes::Bytes;
use cid::Cid;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A block's SHA-256 digest: the key of the index and the cache. Raw and DAG-CBOR
/// blocks with the same digest have the same bytes, so one entry serves both CIDs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockKey(pub [u8; 32]);

impl BlockKey {
    /// The key of a SHA-256 CID (`None` for any other hash).
    pub fn of(cid: &Cid) -> Option<Self> {
        crate::block::sha256_digest(cid).map(Self)
    }
}

impl Hash for BlockKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(w));
    }
}

/// Where a block is: plane, segment, offset and length, packed in 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockLoc {
    seq: u32,
    offset: u32,
    len: u32,
    plane: Plane,
}

impl BlockLoc {
    /// Packs a plane-log location. Segments are at most 4 GiB and a shard's planes
    /// hold fewer than 2^32 segments each (the shard checks `seal_bytes` at start).
    pub fn new(plane: Plane, loc: Location) -> Self {
        Self {
            seq: loc.seq as u32,
            offset: loc.offset as u32,
            len: loc.len,
            plane,
        }
    }

    pub fn plane(&self) -> Plane {
        self.plane
    }

    pub fn location(&self) -> Location {
        Location {
            seq: u64::from(self.seq),
            offset: u64::from(self.offset),
            len: self.len,
        }
    }
}

/// Tables the block index is split into, by the digest's last two bytes.
const INDEX_PARTS: usize = 4096;

/// Block → location, for every block in the shard's local segments.
///
/// Split into [`INDEX_PARTS`] hash tables so that growing never stops the shard for
/// long: a hash table doubles by moving every entry into fresh memory, and one table
/// of 500,000 entries took ~300 ms of the shard thread to double (measured under
/// 4 KiB PUTs), a stall every write of the shard waited through. With 64 parts a
/// part's doubling still took ~6–7 ms at ~1 million blocks (fresh pages are costly on
/// this VM); with 4,096 each part holds 1/4,096 of the blocks, so 100 million blocks
/// double ~25,000 entries at a time. The parts double one after another. The last two
/// digest bytes pick the part; the table hash uses the first eight, so they stay
/// independent. An empty part costs 48 bytes (~200 KB per shard in all).
#[derive(Debug)]
pub struct BlockIndex {
    parts: Vec<HashMap<BlockKey, BlockLoc, DigestHasher>>,
}

impl Default for BlockIndex {
    fn default() -> Self {
        Self {
            parts: (0..INDEX_PARTS).map(|_| HashMap::default()).collect(),
        }
    }
}

impl BlockIndex {
    fn part_of(key: &BlockKey) -> usize {
        usize::from(u16::from_le_bytes([key.0[30], key.0[31]])) % INDEX_PARTS
    }

    fn part(&self, key: &BlockKey) -> &HashMap<BlockKey, BlockLoc, DigestHasher> {
        &self.parts[Self::part_of(key)]
    }

    fn part_mut(&mut self, key: &BlockKey) -> &mut HashMap<BlockKey, BlockLoc, DigestHasher> {
        &mut self.parts[Self::part_of(key)]
    }

    pub fn get(&self, key: &BlockKey) -> Option<BlockLoc> {
        self.part(key).get(key).copied()
    }

    pub fn contains(&self, key: &BlockKey) -> bool {
        self.part(key).contains_key(key)
    }

    /// Records a block's location; a block written again keeps its first location.
    pub fn insert(&mut self, key: BlockKey, loc: BlockLoc) {
        self.part_mut(&key).entry(key).or_insert(loc);
    }

    /// Points a block at a new copy (a later copy that must be used from now on).
    pub fn relocate(&mut self, key: BlockKey, loc: BlockLoc) {
        self.part_mut(&key).insert(key, loc);
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(HashMap::len).sum()
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(HashMap::is_empty)
    }
}

/// Bookkeeping charged per cached block besides its bytes.
const SLOT_OVERHEAD_BYTES: usize = 96;
/// The cache's tables are made at start for a budget full of blocks this large (a
/// 4 KiB object's three blocks average ~1.5 KiB): growing a table of ~100,000
/// entries stopped the shard for 7–35 ms each time, measured under 4 KiB PUTs. Smaller
/// blocks grow the tables past this once or twice. For the default 256 MiB that is
/// ~23 MB of address space, the size the tables reach anyway once the cache is full
/// of small blocks; with large chunks most of it is never touched (no memory).
const PRESIZE_BLOCK_BYTES: usize = 2048;

#[derive(Debug)]
struct Slot {
    bytes: Bytes,
    touched: bool,
    /// The block decoded (a manifest, a chunk index), once a reader asked for it.
    decoded: Option<Decoded>,
}

/// A block's decoded form and the heap bytes it is charged.
struct Decoded {
    value: Arc<dyn Any + Send + Sync>,
    charge_bytes: usize,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoded({} bytes)", self.charge_bytes)
    }
}

impl Slot {
    /// What the slot counts against the budget.
    fn size(&self) -> usize {
        self.bytes.len() + SLOT_OVERHEAD_BYTES + self.decoded.as_ref().map_or(0, |d| d.charge_bytes)
    }
}

/// A CLOCK cache of verified blocks, bounded in bytes. Blocks larger than an eighth of
/// the budget are not cached (one big body must not flush everything else).
///
/// A cached block can also hold its decoded form ([`BlockCache::decoded`]): a GET of a
/// small object reads its manifest and chunk index every time, and decoding them (with
/// the manifest's canonical-form check, an encode) was ~10 % of the shard thread under
/// 4 KiB GETs from cache.
#[derive(Debug)]
pub struct BlockCache {
    map: HashMap<BlockKey, Slot, DigestHasher>,
    clock: VecDeque<BlockKey>,
    bytes: usize,
    capacity_bytes: usize,
}

impl BlockCache {
    pub fn new(capacity_bytes: usize) -> Self {
        let slots = capacity_bytes / (PRESIZE_BLOCK_BYTES + SLOT_OVERHEAD_BYTES);
        Self {
            map: HashMap::with_capacity_and_hasher(slots, DigestHasher::default()),
            clock: VecDeque::with_capacity(slots),
            bytes: 0,
            capacity_bytes,
        }
    }

    pub fn get(&mut self, key: &BlockKey) -> Option<Bytes> {
        let slot = self.map.get_mut(key)?;
        slot.touched = true;
        Some(slot.bytes.clone())
    }

    /// The block's decoded form, if a reader kept one as a `T` (which counts as a use
    /// of the block).
    pub fn decoded<T: Any + Send + Sync>(&mut self, key: &BlockKey) -> Option<Arc<T>> {
        let slot = self.map.get_mut(key)?;
        let value = slot.decoded.as_ref()?.value.clone().downcast::<T>().ok()?;
        slot.touched = true;
        Some(value)
    }

    /// Keeps `value`, the decoded form of a cached block, charged `charge_bytes` on
    /// top of the block. Does nothing if the block is not cached or already holds one.
    pub fn keep_decoded<T: Any + Send + Sync>(
        &mut self,
        key: &BlockKey,
        value: Arc<T>,
        charge_bytes: usize,
    ) {
        let Some(slot) = self.map.get_mut(key) else {
            return;
        };
        if slot.decoded.is_some() {
            return;
        }
        slot.decoded = Some(Decoded {
            value,
            charge_bytes,
        });
        self.bytes += charge_bytes;
        self.evict();
    }

    pub fn insert(&mut self, key: BlockKey, bytes: Bytes) {
        let slot = Slot {
            bytes,
            touched: false,
            decoded: None,
        };
        let size = slot.size();
        if size > self.capacity_bytes / 8 {
            return;
        }
        match self.map.insert(key, slot) {
            Some(old) => self.bytes -= old.size(),
            None => self.clock.push_back(key),
        }
        self.bytes += size;
        self.evict();
    }

    /// Moves the clock hand (a bounded number of steps) until the cache is within budget.
    fn evict(&mut self) {
        for _ in 0..MAX_EVICTION_STEPS {
            if self.bytes <= self.capacity_bytes {
                return;
            }
            let Some(k) = self.clock.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get_mut(&k) else {
                continue;
            };
            if std::mem::take(&mut slot.touched) {
                self.clock.push_back(k);
            } else if let Some(gone) = self.map.remove(&k) {
                self.bytes -= gone.size();
            }
        }
    }

    /// Bytes held, bookkeeping included.
    #[cfg(any(test, feature = "testing"))]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> BlockKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        BlockKey(k)
    }

    #[test]
    fn cache_stays_within_budget_and_keeps_touched_blocks() {
        let mut c = BlockCache::new(64 * 1024);
        c.insert(key(0), Bytes::from(vec![7u8; 1000]));
        for i in 1..1000 {
            assert!(c.get(&key(0)).is_some(), "touched block evicted at {i}");
            c.insert(key(i), Bytes::from(vec![1u8; 1000]));
            assert!(c.bytes() <= 64 * 1024 + 1000 + SLOT_OVERHEAD_BYTES);
        }
        assert!(c.len() < 70);
    }

    #[test]
    fn decoded_forms_are_kept_charged_and_dropped_with_their_block() {
        let mut c = BlockCache::new(64 * 1024);
        c.insert(key(0), Bytes::from(vec![7u8; 1000]));
        assert!(c.decoded::<String>(&key(0)).is_none());
        let before = c.bytes();
        c.keep_decoded(&key(0), Arc::new("decoded".to_owned()), 500);
        assert_eq!(c.bytes(), before + 500);
        assert_eq!(
            c.decoded::<String>(&key(0)).as_deref().map(String::as_str),
            Some("decoded")
        );
        // Asked for as another type: not there (and nothing is replaced).
        assert!(c.decoded::<u64>(&key(0)).is_none());
        c.keep_decoded(&key(0), Arc::new(5u64), 100);
        assert_eq!(c.bytes(), before + 500);
        // A block that is not cached keeps nothing.
        c.keep_decoded(&key(1), Arc::new(1u64), 100);
        assert!(c.decoded::<u64>(&key(1)).is_none());
        // The budget counts decoded forms: blocks go to make room for them.
        for i in 2..200 {
            c.insert(key(i), Bytes::from(vec![1u8; 100]));
            c.keep_decoded(&key(i), Arc::new(i), 1000);
            assert!(c.bytes() <= 64 * 1024 + 1000 + 100 + SLOT_OVERHEAD_BYTES);
        }
        // Replacing a block's bytes drops its decoded form and its charge.
        let total = c.bytes();
        c.insert(key(199), Bytes::from(vec![2u8; 100]));
        assert!(c.decoded::<u32>(&key(199)).is_none());
        assert_eq!(c.bytes(), total - 1000);
    }

    #[test]
    fn large_blocks_are_not_cached() {
        let mut c = BlockCache::new(64 * 1024);
        c.insert(key(1), Bytes::from(vec![0u8; 9000]));
        assert!(c.get(&key(1)).is_none());
    }

    #[test]
    fn index_keeps_first_location_until_relocated() {
        let mut ix = BlockIndex::default();
        let at = |seq| {
            BlockLoc::new(
                Plane::Data,
                Location {
                    seq,
                    offset: 10,
                    len: 5,
                },
            )
        };
        ix.insert(key(1), at(1));
        ix.insert(key(1), at(2));
        assert_eq!(ix.get(&key(1)).map(|l| l.location().seq), Some(1));
        ix.relocate(key(1), at(3));
        assert_eq!(ix.get(&key(1)).map(|l| l.location().seq), Some(3));
        assert_eq!(std::mem::size_of::<BlockLoc>(), 16);
    }

    #[test]
    fn index_finds_every_block_across_its_parts() {
        let mut ix = BlockIndex::default();
        let mut keys = Vec::new();
        for i in 0..10_000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            let spread = (i.wrapping_mul(2_654_435_761) >> 16) as u16;
            k[30..].copy_from_slice(&spread.to_le_bytes());
            keys.push(BlockKey(k));
        }
        for (i, k) in keys.iter().enumerate() {
            let loc = Location {
                seq: i as u64,
                offset: 0,
                len: 1,
            };
            ix.insert(*k, BlockLoc::new(Plane::Meta, loc));
        }
        assert_eq!(ix.len(), keys.len());
        assert!(ix.parts.iter().filter(|p| !p.is_empty()).count() > INDEX_PARTS / 2);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(ix.get(k).map(|l| l.location().seq), Some(i as u64));
        }
        let mut absent = keys[0];
        absent.0[31] ^= 1;
        assert!(!ix.contains(&absent));
        assert!(BlockIndex::default().is_empty());
    }
}
