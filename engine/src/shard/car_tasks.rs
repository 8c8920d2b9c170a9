//! A bucket as one CAR file, on its shard (`docs/ARCHITECTURE.md`, "Export, import,
//! verify"):
//!
//! - export: a task of the shard walks the bucket from the head it had when the export
//!   began and sends each block down a bounded channel (the caller writes the file);
//!   requests go on being served between its reads;
//! - import: every block of the file is verified against its CID as it arrives and
//!   appended to the planes (not yet reachable from anything), then the whole bucket is
//!   walked and checked from the file's head commit using only the file's blocks; only
//!   if nothing is wrong does one group commit create the bucket on that tree;
//! - verify: the same walk over a bucket's stored blocks.

use super::Shard;
use super::op::OpKind;
use crate::api::BodyReceiver;
use crate::archive::{
    BlockGetter, CarItem, CarStream, CheckOptions, CheckReport, Emit, History, ImportReport,
    NoEmit, check_bucket,
};
use crate::block::{CODEC_DAG_CBOR, CODEC_RAW};
use crate::block_lookup::{BlockKey, BlockLoc};
use crate::catalog::Catalog;
use crate::error::{EngineError, EngineResult};
use crate::io::Disk;
use crate::mst::Mst;
use crate::segment::Plane;
use bytes::Bytes;
use cid::Cid;
use std::collections::HashSet;
use std::rc::Rc;
use tokio::sync::mpsc;

/// Blocks an export keeps in flight between the shard and the writer.
pub const EXPORT_CHANNEL_BLOCKS: usize = 8;

/// An export's blocks, in file order; an `Err` ends it (the file is incomplete).
pub type ExportReceiver = mpsc::Receiver<EngineResult<(Cid, Bytes)>>;

/// The shard's blocks as the walk sees them; `only` restricts them to those of a file
/// being imported (a block the shard holds but the file lacks counts as missing).
struct ShardBlocks<'a, D: Disk, C: Catalog> {
    shard: &'a Shard<D, C>,
    only: Option<&'a HashSet<BlockKey>>,
}

impl<D: Disk + 'static, C: Catalog + 'static> ShardBlocks<'_, D, C> {
    fn key(&self, cid: &Cid) -> Option<BlockKey> {
        let key = BlockKey::of(cid)?;
        if self.only.is_some_and(|only| !only.contains(&key)) {
            return None;
        }
        Some(key)
    }
}

impl<D: Disk + 'static, C: Catalog + 'static> BlockGetter for ShardBlocks<'_, D, C> {
    async fn get(&self, cid: &Cid, chunk: bool) -> EngineResult<Option<Bytes>> {
        let Some(key) = self.key(cid) else {
            return Ok(None);
        };
        if !self.shard.blocks.index.borrow().contains(&key) {
            return Ok(None);
        }
        let bytes = if chunk {
            self.shard.read_block_uncached(cid).await?
        } else {
            self.shard.read_block(cid).await?
        };
        Ok(Some(bytes))
    }

    fn stat(&self, cid: &Cid) -> Option<u64> {
        let key = self.key(cid)?;
        let loc = self.shard.blocks.index.borrow().get(&key)?;
        Some(u64::from(loc.location().len))
    }
}

/// Sends each block down the export channel.
struct ChannelEmit(mpsc::Sender<EngineResult<(Cid, Bytes)>>);

impl Emit for ChannelEmit {
    async fn emit(&mut self, cid: &Cid, bytes: &Bytes) -> Result<(), ()> {
        self.0.send(Ok((*cid, bytes.clone()))).await.map_err(|_| ())
    }
}

fn refused(why: impl std::fmt::Display) -> EngineError {
    EngineError::ImportRefused(why.to_string())
}

/// Counts of an import's file.
#[derive(Default)]
struct Staged {
    blocks: u64,
    already: u64,
    bytes: u64,
    keys: HashSet<BlockKey>,
}

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Starts exporting `bucket` at its current head: returns the head commit (the
    /// file's root) and the channel its blocks arrive on. A damaged block ends the
    /// stream with an error naming it and its object.
    pub fn export_bucket(
        self: &Rc<Self>,
        bucket: &str,
        history: History,
    ) -> EngineResult<(crate::api::BucketHead, ExportReceiver)> {
        let head = self.head(bucket)?;
        let (tx, rx) = mpsc::channel(EXPORT_CHANNEL_BLOCKS);
        let shard = self.clone();
        let name = bucket.to_owned();
        monoio::spawn(async move {
            let blocks = ShardBlocks {
                shard: &shard,
                only: None,
            };
            let mut emit = ChannelEmit(tx.clone());
            let opts = CheckOptions::export(history);
            let report = check_bucket(&blocks, &mut emit, head.commit, opts).await;
            if let Some(p) = report.problems.first() {
                tracing::error!(shard = shard.id, bucket = %name, problem = %p, "export stopped");
                let _ = tx.send(Err(EngineError::Corrupt(p.to_string()))).await;
            }
        });
        Ok((head, rx))
    }

    /// Walks `bucket` from its head and checks every reachable block.
    pub async fn verify_bucket(
        &self,
        bucket: &str,
        opts: CheckOptions,
    ) -> EngineResult<CheckReport> {
        let head = self.head(bucket)?;
        let blocks = ShardBlocks {
            shard: self,
            only: None,
        };
        Ok(check_bucket(&blocks, &mut NoEmit, head.commit, opts).await)
    }

    /// Imports a bucket export as the new bucket `name` (which must not exist): all or
    /// nothing — a damaged or forged file is refused with
    /// [`EngineError::ImportRefused`] and no bucket appears.
    pub async fn import_bucket(
        &self,
        name: &str,
        mut car: BodyReceiver,
    ) -> EngineResult<ImportReport> {
        crate::error::validate_bucket_name(name)?;
        self.check_writable()?;
        if self.buckets.borrow().contains_key(name) || self.catalog.bucket(name).await?.is_some() {
            return Err(EngineError::BucketAlreadyExists(name.to_owned()));
        }
        let result = self.import_checked(name, &mut car).await;
        if let Err(EngineError::ImportRefused(why)) = &result {
            tracing::warn!(shard = self.id, bucket = name, error = %why, "import refused");
        }
        result
    }

    async fn import_checked(
        &self,
        name: &str,
        car: &mut BodyReceiver,
    ) -> EngineResult<ImportReport> {
        let mut reader = CarStream::new();
        let mut root = None;
        let mut staged = Staged::default();
        while let Some(piece) = car.recv().await {
            reader.push(&piece?);
            while let Some(item) = reader.next_item().map_err(refused)? {
                match item {
                    CarItem::Root(c) => root = Some(c),
                    CarItem::Block { cid, block, at } => {
                        self.stage_block(&cid, &block, at, &mut staged).await?;
                    }
                }
            }
        }
        reader.finish().map_err(refused)?;
        let root = root.ok_or_else(|| refused("the file has no header"))?;
        let blocks = ShardBlocks {
            shard: self,
            only: Some(&staged.keys),
        };
        let opts = CheckOptions::full(History::AsFarAsPresent);
        let check = check_bucket(&blocks, &mut NoEmit, root, opts).await;
        if let Some(first) = check.problems.first() {
            let more = match check.problem_count {
                1 => String::new(),
                n => format!(" (and {} more problems)", n - 1),
            };
            return Err(refused(format!("the file is damaged: {first}{more}")));
        }
        let tree_root = check
            .root
            .ok_or_else(|| refused("the file's head commit could not be read"))?;
        let tree = self.with_nodes(|n| Mst::open(&tree_root, n)).await?;
        self.submit(
            name,
            OpKind::Import {
                tree,
                root: tree_root,
                prev: root,
                seq: check.seq + 1,
            },
        )
        .await?;
        Ok(ImportReport {
            head: self.head(name)?,
            imported_commit: root,
            blocks: staged.blocks,
            blocks_already_stored: staged.already,
            bytes: staged.bytes,
            check,
        })
    }

    /// Appends one verified block of an import to its plane, unless the shard holds it.
    /// Commit blocks go to the data plane: recovery takes bucket heads from commits in
    /// the meta plane, and a file's commits must never be mistaken for one.
    async fn stage_block(
        &self,
        cid: &Cid,
        block: &[u8],
        at: u64,
        staged: &mut Staged,
    ) -> EngineResult<()> {
        let key = BlockKey::of(cid).ok_or_else(|| {
            refused(format!(
                "block {cid} at byte {at} is not hashed with sha2-256"
            ))
        })?;
        let plane = match cid.codec() {
            CODEC_RAW => Plane::Data,
            CODEC_DAG_CBOR if block.starts_with(super::recovery::COMMIT_PREFIX) => Plane::Data,
            CODEC_DAG_CBOR => Plane::Meta,
            other => {
                return Err(refused(format!(
                    "block {cid} at byte {at} has codec {other:#x}; an export holds only raw \
                     and dag-cbor blocks"
                )));
            }
        };
        staged.blocks += 1;
        staged.bytes += block.len() as u64;
        if !staged.keys.insert(key) {
            return Ok(()); // the file repeats a block
        }
        if self.blocks.index.borrow().contains(&key) {
            staged.already += 1;
            return Ok(());
        }
        self.check_writable()?;
        let mut log = self.plane(plane).lock().await;
        let appended = match log.append(cid, block).await {
            Ok(loc) => {
                self.blocks
                    .index
                    .borrow_mut()
                    .insert(key, BlockLoc::new(plane, loc));
                log.write_behind(self.config.write_behind_bytes).await
            }
            Err(e) => Err(e),
        };
        appended.map_err(|e| {
            let e = EngineError::from(e);
            self.write_failed(&e);
            e
        })
    }
}
