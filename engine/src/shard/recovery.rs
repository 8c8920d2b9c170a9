//! Opening a shard (ARCHITECTURE.md, recovery path): both plane logs recover their open
//! segments (scan, verify, truncate, seal); the block index is rebuilt from the segment
//! indexes; each bucket's head is the newest commit in log order among the catalog
//! segments written since the last head checkpoint, or the checkpoint itself.

use super::group_commit::GroupCommit;
use super::multipart::Completions;
use super::{BucketState, Shard, ShardConfig};
use crate::api::BucketHead;
use crate::block_lookup::{BlockIndex, BlockKey, BlockLoc};
use crate::catalog::{BucketRecord, Catalog, HeadCheckpoint};
use crate::error::{EngineError, EngineResult};
use crate::format::Commit;
use crate::io::Disk;
use crate::metrics::ShardMetrics;
use crate::mst::Mst;
use crate::plane::{Location, PlaneConfig, PlaneLog};
use crate::segment::frame::read_header;
use crate::segment::{Frames, Plane};
use cid::Cid;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a commit block begins: a one-entry map keyed by the 9-byte text "/commit/1".
pub(crate) const COMMIT_PREFIX: &[u8] = b"\xa1\x69/commit/1";

/// A commit found in the meta plane, with its place in the log.
struct Found {
    seq: u64,
    offset: u64,
    cid: Cid,
    commit: Commit,
}

fn scan_commit(found: &mut Vec<Found>, cid: &Cid, loc: Location, block: &[u8]) {
    if !block.starts_with(COMMIT_PREFIX) {
        return;
    }
    // A block that verified against its CID but does not decode as a commit is some
    // other block that happens to start the same way.
    if let Ok(commit) = Commit::decode(block) {
        found.push(Found {
            seq: loc.seq,
            offset: loc.offset,
            cid: *cid,
            commit,
        });
    }
}

/// What opening a shard found and did.
#[derive(Debug, Clone, Default)]
pub struct ShardRecovery {
    pub buckets: usize,
    pub blocks: usize,
    /// Blocks found in segments that were open at the crash (or before shutdown).
    pub recovered_blocks: usize,
    /// Catalog segments scanned for commits after the last checkpoint.
    pub scanned_segments: usize,
    pub elapsed_ms: u64,
}

/// What the catalog holds for one shard at open: its buckets, their head checkpoints,
/// and the first meta segment to scan for newer commits (recovery steps 2).
struct Recorded {
    buckets: Vec<BucketRecord>,
    checkpoints: HashMap<String, HeadCheckpoint>,
    scan_from: u64,
}

impl Recorded {
    async fn read<C: Catalog>(catalog: &C, shard: u32) -> EngineResult<Self> {
        let buckets: Vec<_> = catalog
            .buckets()
            .await?
            .into_iter()
            .filter(|b| b.shard == shard)
            .collect();
        let names: BTreeSet<&str> = buckets.iter().map(|b| b.name.as_str()).collect();
        let checkpoints: HashMap<String, _> = catalog
            .heads()
            .await?
            .into_iter()
            .filter(|h| names.contains(h.bucket.as_str()))
            .map(|h| (h.bucket.clone(), h))
            .collect();
        let scan_from = checkpoints
            .values()
            .map(|h| h.segment_seq)
            .max()
            .unwrap_or(0);
        Ok(Self {
            buckets,
            checkpoints,
            scan_from,
        })
    }

    /// Each bucket's newest commit in log order (`found` is sorted), if any.
    fn newest<'f>(&self, found: &'f [Found]) -> HashMap<&'f str, &'f Found> {
        let names: BTreeSet<&str> = self.buckets.iter().map(|b| b.name.as_str()).collect();
        let mut newest: HashMap<&str, &Found> = HashMap::new();
        for f in found {
            if names.contains(f.commit.bucket.as_str()) {
                newest.insert(f.commit.bucket.as_str(), f);
            }
        }
        newest
    }
}

/// Both plane logs recovered, with the commits found in the meta plane since the last
/// checkpoint, in log order (recovery steps 3–4).
struct Recovered<D: Disk, C: Catalog> {
    data: PlaneLog<D, C>,
    meta: PlaneLog<D, C>,
    found: Vec<Found>,
}

impl<D: Disk + 'static, C: Catalog + 'static> Recovered<D, C> {
    async fn open(
        id: u32,
        disk: Rc<D>,
        catalog: &Arc<C>,
        config: &ShardConfig,
        scan_from: u64,
        report: &mut ShardRecovery,
    ) -> EngineResult<Self> {
        let plane = PlaneConfig {
            seal_bytes: config.seal_bytes,
        };
        let (data, data_rec) =
            PlaneLog::open(disk.clone(), catalog.clone(), Plane::Data, id, plane).await?;
        let mut found = Vec::new();
        let (meta, meta_rec) = PlaneLog::open_with(
            disk,
            catalog.clone(),
            Plane::Meta,
            id,
            plane,
            &mut |cid, loc, block| scan_commit(&mut found, cid, loc, block),
        )
        .await?;
        report.recovered_blocks = data_rec.recovered_blocks.len() + meta_rec.recovered_blocks.len();
        // Catalog segments sealed before this start but after the last checkpoint. A
        // retired segment is skipped: it was retired only after a checkpoint covered
        // every commit in it (`Shard::retire_segment`).
        let older: Vec<u64> = meta
            .sealed_indexes()
            .map(|(seq, _)| seq)
            .filter(|seq| *seq >= scan_from && !meta_rec.sealed.contains(seq))
            .filter(|seq| meta.is_local(*seq))
            .collect();
        for seq in older {
            let car = meta.read_segment(seq).await?;
            scan_segment(&mut found, seq, &car)?;
            report.scanned_segments += 1;
        }
        report.scanned_segments += meta_rec.sealed.len();
        found.sort_by_key(|f| (f.seq, f.offset));
        Ok(Self { data, meta, found })
    }

    /// The block index from every sealed segment's index (recovery step 5).
    fn block_index(&self) -> BlockIndex {
        let mut index = BlockIndex::default();
        for (log, plane) in [(&self.data, Plane::Data), (&self.meta, Plane::Meta)] {
            for (seq, ix) in log.sealed_indexes() {
                for e in ix.entries() {
                    let loc = Location {
                        seq,
                        offset: e.offset,
                        len: e.len,
                    };
                    index.insert(BlockKey(e.digest), BlockLoc::new(plane, loc));
                }
            }
        }
        index
    }
}

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Opens (recovering) shard `id` on `disk`.
    pub async fn open(
        id: u32,
        disk: Rc<D>,
        catalog: Arc<C>,
        config: ShardConfig,
    ) -> EngineResult<(Rc<Self>, ShardRecovery)> {
        config.check()?;
        let started = Instant::now();
        let recorded = Recorded::read(&*catalog, id).await?;
        let mut report = ShardRecovery::default();
        let recovered =
            Recovered::open(id, disk, &catalog, &config, recorded.scan_from, &mut report).await?;
        let index = recovered.block_index();
        let Recovered {
            mut data,
            mut meta,
            found,
        } = recovered;
        let metrics = Arc::new(ShardMetrics::default());
        data.count_seals_in(metrics.segments_sealed.clone());
        meta.count_seals_in(metrics.segments_sealed.clone());
        let shard = Rc::new(Self {
            id,
            catalog,
            planes: super::Planes::new(data, meta),
            blocks: super::BlockStores::new(index, &config),
            buckets: RefCell::new(HashMap::new()),
            commit: GroupCommit::default(),
            completions: Completions::default(),
            no_space_warned_at: Cell::new(None),
            metrics,
            config,
        });
        shard.load_buckets(&recorded, &found).await?;
        // Record what recovery derived, so the next start scans only newer segments.
        shard.checkpoint_if_rolled().await?;
        report.buckets = recorded.buckets.len();
        report.blocks = shard.blocks.index.borrow().len();
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            shard = id,
            buckets = report.buckets,
            blocks = report.blocks,
            recovered_blocks = report.recovered_blocks,
            scanned_segments = report.scanned_segments,
            elapsed_ms = report.elapsed_ms,
            "shard open"
        );
        Ok((shard, report))
    }

    /// Loads every bucket's head and tree (recovery step 6): the newest commit in log
    /// order, else the checkpoint. Heads derived from the log are dirty (step 7).
    async fn load_buckets(&self, recorded: &Recorded, found: &[Found]) -> EngineResult<()> {
        let newest = recorded.newest(found);
        for b in &recorded.buckets {
            let found = newest.get(b.name.as_str()).copied();
            let checkpoint = recorded.checkpoints.get(&b.name);
            let (head, from_scan, tree) =
                self.load_head_waiting(&b.name, found, checkpoint).await?;
            self.buckets.borrow_mut().insert(
                b.name.clone(),
                BucketState {
                    working: tree.clone(),
                    published: tree,
                    head,
                },
            );
            if from_scan {
                self.commit.mark_dirty(&b.name);
            }
        }
        Ok(())
    }

    /// [`Shard::load_head`], waiting for the cold tier when the head lives in a retired
    /// segment and the cold tier does not answer: the node stays "recovering" rather
    /// than fail the start, up to [`COLD_RECOVERY_WAIT`].
    async fn load_head_waiting(
        &self,
        bucket: &str,
        found: Option<&Found>,
        checkpoint: Option<&HeadCheckpoint>,
    ) -> EngineResult<(BucketHead, bool, Mst)> {
        let mut waited = Duration::ZERO;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.load_head(bucket, found, checkpoint).await {
                Err(EngineError::ColdTier(why)) if waited < COLD_RECOVERY_WAIT => {
                    tracing::warn!(shard = self.id, bucket, error = %why,
                        retry_in_ms = delay.as_millis() as u64,
                        "bucket head is on the cold tier, which does not answer; waiting");
                    monoio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

/// How long opening a shard waits for the cold tier when a bucket's head is only there.
const COLD_RECOVERY_WAIT: Duration = Duration::from_secs(300);

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// A bucket's head (the newest commit found in the log, else its checkpoint) and
    /// its tree, with whether it came from the log.
    async fn load_head(
        &self,
        bucket: &str,
        found: Option<&Found>,
        checkpoint: Option<&HeadCheckpoint>,
    ) -> EngineResult<(BucketHead, bool, Mst)> {
        let (head, from_scan) = match found {
            Some(f) => (
                BucketHead {
                    commit: f.cid,
                    seq: f.commit.seq,
                    root: f.commit.root,
                },
                true,
            ),
            None => {
                let ck = checkpoint
                    .ok_or_else(|| EngineError::Corrupt(format!("bucket {bucket} has no head")))?;
                let bytes = self.read_block(&ck.commit).await?;
                let c = Commit::decode(&bytes)
                    .map_err(|e| EngineError::Corrupt(format!("head commit of {bucket}: {e}")))?;
                let head = BucketHead {
                    commit: ck.commit,
                    seq: c.seq,
                    root: c.root,
                };
                (head, false)
            }
        };
        let tree = self.with_nodes(|n| Mst::open(&head.root, n)).await?;
        Ok((head, from_scan, tree))
    }
}

/// Finds the commits in a whole sealed catalog segment.
fn scan_segment(found: &mut Vec<Found>, seq: u64, car: &[u8]) -> EngineResult<()> {
    let (_, header_len) = read_header(car)
        .map_err(|e| EngineError::Corrupt(format!("catalog segment {seq}: {e}")))?;
    for f in Frames::new(&car[header_len..]) {
        let (at, frame) =
            f.map_err(|e| EngineError::Corrupt(format!("catalog segment {seq}: {e}")))?;
        let loc = Location {
            seq,
            offset: (header_len + at + frame.block_offset) as u64,
            len: frame.block.len() as u32,
        };
        scan_commit(found, &frame.cid, loc, frame.block);
    }
    Ok(())
}
