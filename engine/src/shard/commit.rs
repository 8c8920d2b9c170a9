//! The group-commit loop (ARCHITECTURE.md, write path steps 3–6):
//!
//! 3. take the whole pending batch; fdatasync the data segment — it covers every chunk
//!    the batch references, because a request joins the batch only after its chunks
//!    were appended;
//! 4. apply the batch to the buckets' working trees, encode the changed nodes, append
//!    manifests, chunk indexes, nodes and one commit per changed bucket to the meta
//!    segment; fdatasync the meta segment;
//! 5. change the bucket records (only once the blocks they rely on are durable);
//! 6. publish the new trees to readers, then answer every request of the batch.
//!
//! Where each batch is, and when a head checkpoint may be taken, is kept by
//! [`GroupCommit`](super::group_commit::GroupCommit); this file drives it.
//!
//! Requests keep arriving while a batch syncs; they form the next batch. Any failed
//! write or sync poisons the shard and fails the whole batch: nothing after the last
//! successful catalog sync is ever acknowledged. A full disk is not a failure: the
//! segments a batch needs are made before any of its blocks is appended, and when the
//! disk has no room for them the batch is refused whole (`EngineError::NoSpace`) and
//! its trees go back to what readers see.

use super::group_commit::{CheckpointPermit, Unpublished};
use super::op::{Blocks, CACHE_ON_WRITE_BYTES, Op, OpDone, OpKind};
use super::{BucketState, Shard};
use crate::api::{BucketHead, PutCondition, now_ms};
use crate::block_lookup::{BlockKey, BlockLoc};
use crate::catalog::{BucketRecord, Catalog, HeadCheckpoint};
use crate::error::{EngineError, EngineResult};
use crate::format::{Commit, ObjectManifest};
use crate::io::Disk;
use crate::mst::{Mst, NodeCid};
use crate::plane::{PlaneError, PlaneLog};
use crate::segment::Plane;
use crate::segment::frame::frame_len;
use bytes::Bytes;
use cid::Cid;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::oneshot;

/// A snapshot of a shard's state, for health and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg(any(test, feature = "testing"))]
pub struct ShardStats {
    pub buckets: usize,
    pub blocks: usize,
    pub poisoned: bool,
}

/// What step 4 prepares: blocks to append and the heads they make.
#[derive(Default)]
struct Prepared {
    /// The requests' blocks (body chunks, chunk indexes, manifests), appended first and
    /// kept in the block cache.
    blocks: Blocks,
    /// Tree nodes, then each changed bucket's commit, appended after `blocks` (a
    /// commit after everything it refers to) and not put in the block cache: the node
    /// cache holds the nodes decoded, and most are replaced by the next batch.
    tree_blocks: Blocks,
    trees: HashMap<String, Mst>,
    heads: BTreeMap<String, BucketHead>,
    created: Vec<String>,
    /// Trees of buckets created by an import (others start empty).
    imported: HashMap<String, Mst>,
    deleted: Vec<String>,
    replies: Vec<(oneshot::Sender<EngineResult<OpDone>>, EngineResult<OpDone>)>,
}

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Queues a change for the next group commit and waits for its outcome.
    pub(crate) async fn submit(&self, bucket: &str, kind: OpKind) -> EngineResult<OpDone> {
        self.check_writable()?;
        let (reply, rx) = oneshot::channel();
        self.commit.enqueue(Op {
            bucket: bucket.to_owned(),
            kind,
            reply,
        });
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// The commit loop: runs until the shard closes (after committing what is queued).
    ///
    /// Two stages, so two batches are in flight at once: this task takes a batch and
    /// makes its chunks durable (step 3) while the catalog stage applies, writes and
    /// syncs the batch before it (steps 4–6). Batches reach the catalog stage in order,
    /// and each one's data sync completes before its catalog sync starts.
    pub async fn run_commits(self: Rc<Self>) {
        let meta_stage = monoio::spawn(self.clone().run_meta_stage());
        loop {
            self.ensure_spares();
            let ops = self.commit.take_batch(self.config.max_batch_ops);
            if ops.is_empty() {
                if self.commit.is_closing() {
                    break;
                }
                let wait = self.config.seal_age.min(std::time::Duration::from_secs(1));
                self.commit.wait_for_requests(wait).await;
                if let Err(e) = self.seal_if_due().await {
                    self.write_failed(&e);
                }
                continue;
            }
            self.metrics.batches.fetch_add(1, Relaxed);
            self.metrics.batch_ops.fetch_add(ops.len() as u64, Relaxed);
            match self.sync_data(ops).await {
                Some(ops) => self.commit.data_synced(ops),
                None => self.commit.data_failed(),
            }
            // At most one synced batch waits for the meta stage.
            self.commit.wait_for_meta_room().await;
        }
        self.commit.data_stage_stopped();
        meta_stage.await;
        self.wait_for_spares().await;
        self.commit.loop_stopped();
    }

    /// Waits until no spare segment is being made: a stopping shard leaves no job
    /// behind that still holds its files or the catalog.
    async fn wait_for_spares(&self) {
        loop {
            let pending = self.planes.data.lock().await.spare_pending()
                || self.planes.meta.lock().await.spare_pending();
            if !pending {
                return;
            }
            // No await between the check and registering: the job cannot finish unseen.
            self.planes.spares_done.notified().await;
        }
    }

    /// Keeps a pre-written spare segment ready in each plane, made by a task of its
    /// own, so a roll does not stall appends while `seal_bytes` of zeros are written.
    fn ensure_spares(self: &Rc<Self>) {
        if self.commit.is_closing() {
            return;
        }
        for plane in [Plane::Data, Plane::Meta] {
            let log = self.plane(plane);
            let Ok(mut guard) = log.try_lock() else {
                continue;
            };
            let Some(job) = guard.begin_spare() else {
                continue;
            };
            drop(guard);
            let shard = self.clone();
            monoio::spawn(async move {
                let made = job.run().await;
                let installed = shard.plane(plane).lock().await.install_spare(made).await;
                match installed {
                    Ok(()) => {}
                    // No request was refused: the next roll or batch tries again.
                    Err(PlaneError::NoSpace(e)) => {
                        tracing::debug!(shard = shard.id, error = %e, "no room for a spare segment");
                    }
                    Err(e) => shard.write_failed(&e.into()),
                }
                shard.planes.spares_done.notify_waiters();
            });
        }
    }

    async fn run_meta_stage(self: Rc<Self>) {
        loop {
            self.ensure_spares();
            let Some((ops, batches)) = self.commit.take_synced(self.config.max_batch_ops) else {
                if self.commit.meta_stage_finished() {
                    return;
                }
                self.commit.wait_for_synced().await;
                continue;
            };
            if let Err(e) = self.meta_batch(ops).await {
                self.write_failed(&e);
            }
            if let Err(e) = self.seal_if_due().await {
                self.write_failed(&e);
            }
            self.commit.answered(batches);
        }
    }

    /// Step 3: the chunks every request of the batch references become durable.
    /// Returns the batch, or `None` after failing it.
    async fn sync_data(&self, ops: Vec<Op>) -> Option<Vec<Op>> {
        if self.is_poisoned() {
            fail_all(ops, &EngineError::Poisoned(self.id));
            return None;
        }
        let synced = commit_plane(&self.planes.data).await;
        if let Ok(Some(took)) = synced {
            self.metrics.data_fsync.record(took);
        }
        match synced {
            Ok(_) => Some(ops),
            Err(e) => {
                let e = EngineError::from(e);
                self.write_failed(&e);
                fail_all(ops, &e);
                None
            }
        }
    }

    /// Steps 4–6 for a batch whose chunks are durable.
    async fn meta_batch(&self, ops: Vec<Op>) -> EngineResult<()> {
        if self.is_poisoned() {
            fail_all(ops, &EngineError::Poisoned(self.id));
            return Ok(());
        }
        // Step 4: the batch's tree changes and commits, then the catalog sync.
        let [blocks, tree_blocks] = self.commit.take_block_buffers();
        let mut prep = Prepared {
            blocks,
            tree_blocks,
            ..Prepared::default()
        };
        for op in ops {
            let result = self.apply(&op.bucket, op.kind, &mut prep).await;
            prep.replies.push((op.reply, result));
        }
        self.finish_trees(&mut prep).await?;
        // From the append to the publication no head checkpoint may be taken (see
        // `checkpoint_if_rolled`); a failure drops `unpublished`, which keeps it so.
        let unpublished = self.commit.begin_append();
        let written = self
            .write_meta(&mut prep.blocks, &mut prep.tree_blocks)
            .await;
        // The emptied buffers serve the next batch (no regrowing them every batch).
        prep.blocks.clear();
        prep.tree_blocks.clear();
        self.commit.keep_block_buffers([
            std::mem::take(&mut prep.blocks),
            std::mem::take(&mut prep.tree_blocks),
        ]);
        if let Err(e) = written {
            if let EngineError::NoSpace(_) = e {
                // Refused before any block was appended: as if the batch never ran.
                self.discard_trees(&mut prep);
                unpublished.refused();
            }
            fail_replies(prep.replies, &e);
            return Err(e);
        }
        unpublished.meta_synced();
        // Bucket records change only after the blocks they rely on are durable.
        if let Err(e) = self.record_buckets(&unpublished, &prep).await {
            fail_replies(prep.replies, &e);
            return Err(e);
        }
        // Step 6: publish, then acknowledge.
        self.publish(&mut prep);
        unpublished.published();
        for (reply, result) in prep.replies {
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// After a batch was refused before anything of it was appended: the working trees
    /// it took go back to the published ones (new nodes it encoded stay in the node
    /// cache unreferenced until evicted; stored nodes it replaced are read again).
    fn discard_trees(&self, prep: &mut Prepared) {
        let mut map = self.buckets.borrow_mut();
        for (name, _) in prep.trees.drain() {
            if let Some(st) = map.get_mut(&name) {
                st.working = st.published.clone();
            }
        }
    }

    /// The bucket's working tree for this batch (taken out of the map until published).
    fn tree<'p>(&self, bucket: &str, prep: &'p mut Prepared) -> EngineResult<&'p mut Mst> {
        if prep.deleted.iter().any(|b| b == bucket) {
            return Err(EngineError::NoSuchBucket(bucket.to_owned()));
        }
        if !prep.trees.contains_key(bucket) {
            let mut map = self.buckets.borrow_mut();
            let st = map
                .get_mut(bucket)
                .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))?;
            prep.trees
                .insert(bucket.to_owned(), std::mem::take(&mut st.working));
        }
        prep.trees
            .get_mut(bucket)
            .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))
    }

    /// Checks a conditional write against the key's object as of this point in the
    /// batch (an earlier write in the same batch counts).
    async fn check_condition(
        &self,
        tree: &Mst,
        key: &str,
        condition: &PutCondition,
        prep: &Prepared,
    ) -> EngineResult<()> {
        let current = self.with_nodes(|n| tree.get(key.as_bytes(), n)).await?;
        let etag = match (condition, current) {
            (PutCondition::IfNoneMatchAny, None) => return Ok(()),
            (PutCondition::IfNoneMatchAny, Some(_)) => return Err(EngineError::PreconditionFailed),
            (PutCondition::IfMatch(_), None) => return Err(EngineError::NoSuchKey),
            (PutCondition::IfMatch(etag), Some(_)) => etag,
        };
        let cid = current.unwrap_or_else(|| unreachable!("matched Some above"));
        // The manifest may have been written by this very batch and not be on disk yet.
        let bytes = match prep.blocks.iter().rev().find(|(c, _)| *c == cid) {
            Some((_, b)) => Bytes::copy_from_slice(b),
            None => self.read_block(&cid).await?,
        };
        let m = ObjectManifest::decode(&bytes)
            .map_err(|e| EngineError::Corrupt(format!("manifest {cid}: {e}")))?;
        if m.etag == *etag {
            Ok(())
        } else {
            Err(EngineError::PreconditionFailed)
        }
    }

    /// Refuses to create `bucket` if it exists or this batch already creates it.
    fn refuse_existing(&self, bucket: &str, prep: &Prepared) -> EngineResult<()> {
        if self.buckets.borrow().contains_key(bucket) || prep.created.iter().any(|b| b == bucket) {
            return Err(EngineError::BucketAlreadyExists(bucket.to_owned()));
        }
        Ok(())
    }

    async fn apply(&self, bucket: &str, kind: OpKind, prep: &mut Prepared) -> EngineResult<OpDone> {
        match kind {
            OpKind::Put {
                key,
                manifest,
                blocks,
                condition,
            } => {
                let mut tree = std::mem::take(self.tree(bucket, prep)?);
                let r = match condition {
                    Some(c) => self.check_condition(&tree, &key, &c, prep).await,
                    None => Ok(()),
                };
                let r = match r {
                    Ok(()) => {
                        self.with_nodes(|n| tree.insert(key.as_bytes(), manifest, n))
                            .await
                    }
                    Err(e) => Err(e),
                };
                prep.trees.insert(bucket.to_owned(), tree);
                r?;
                prep.blocks.extend(blocks);
                Ok(OpDone::Put)
            }
            OpKind::Delete { key } => {
                let mut tree = std::mem::take(self.tree(bucket, prep)?);
                let r = self.with_nodes(|n| tree.remove(key.as_bytes(), n)).await;
                prep.trees.insert(bucket.to_owned(), tree);
                Ok(OpDone::Deleted(r?))
            }
            OpKind::CreateBucket => {
                self.refuse_existing(bucket, prep)?;
                // The genesis commit: an empty tree. Written before the bucket's record,
                // so recovery never finds a record whose head is missing, and a bucket
                // created again after a delete starts from its own genesis.
                let empty = crate::mst::node::EMPTY_NODE_BYTES.to_vec();
                let root = crate::block::cid_dag_cbor(&empty);
                debug_assert_eq!(root, NodeCid::empty_tree().to_cid());
                prep.blocks.push((root, empty));
                add_bucket(bucket, prep, root, None, 1);
                Ok(OpDone::BucketCreated)
            }
            OpKind::Import {
                tree,
                root,
                prev,
                seq,
            } => {
                self.refuse_existing(bucket, prep)?;
                add_bucket(bucket, prep, root, Some(prev), seq);
                prep.imported.insert(bucket.to_owned(), tree);
                Ok(OpDone::BucketCreated)
            }
            OpKind::DeleteBucket => {
                if !self.tree(bucket, prep)?.is_empty() {
                    return Err(EngineError::BucketNotEmpty(bucket.to_owned()));
                }
                prep.deleted.push(bucket.to_owned());
                Ok(OpDone::BucketDeleted)
            }
            OpKind::Sync => Ok(OpDone::Synced),
        }
    }

    /// Encodes every changed tree and appends one commit per changed bucket.
    async fn finish_trees(&self, prep: &mut Prepared) -> EngineResult<()> {
        let names: Vec<String> = prep.trees.keys().cloned().collect();
        for name in names {
            if prep.deleted.contains(&name) {
                continue;
            }
            let Some(tree) = prep.trees.get_mut(&name) else {
                continue;
            };
            let old = self.buckets.borrow().get(&name).map(|b| b.head);
            let Some(old) = old else { continue };
            let before = prep.tree_blocks.len();
            let root = tree.commit(&mut *self.blocks.nodes.borrow_mut(), &mut prep.tree_blocks);
            if root == old.root {
                prep.tree_blocks.truncate(before);
                continue; // nothing changed (deletes of absent keys)
            }
            let commit = Commit {
                bucket: name.clone(),
                root,
                prev: Some(old.commit),
                seq: old.seq + 1,
                time_ms: now_ms(),
            };
            let bytes = commit.encode();
            let cid = crate::block::cid_dag_cbor(&bytes);
            prep.tree_blocks.push((cid, bytes));
            prep.heads.insert(
                name,
                BucketHead {
                    commit: cid,
                    seq: commit.seq,
                    root,
                },
            );
        }
        Ok(())
    }

    /// Appends the blocks not already stored (`blocks`, then `tree_blocks`), then one
    /// fdatasync. Leaves both vectors empty when it succeeds.
    ///
    /// The segments the appends will fill are made first, with the log held until the
    /// last append: a full disk refuses the batch before any block of it is in the log.
    /// (A bucket commit appended and then abandoned would be written by the next commit
    /// and taken as the bucket's head by recovery: a refused write would come back.)
    async fn write_meta(&self, blocks: &mut Blocks, tree_blocks: &mut Blocks) -> EngineResult<()> {
        {
            let mut log = self.planes.meta.lock().await;
            let frames = blocks.iter().chain(tree_blocks.iter());
            log.reserve(frames.map(|(cid, b)| frame_len(cid, b.len()) as u64))
                .await?;
            self.append_meta(&mut log, blocks, true).await?;
            self.append_meta(&mut log, tree_blocks, false).await?;
        }
        if let Some(took) = commit_plane(&self.planes.meta).await? {
            self.metrics.meta_fsync.record(took);
        }
        Ok(())
    }

    /// Appends `blocks` (emptying the vector), keeping the small ones in the block
    /// cache if `cache`.
    async fn append_meta(
        &self,
        log: &mut PlaneLog<D, C>,
        blocks: &mut Blocks,
        cache: bool,
    ) -> EngineResult<()> {
        for (cid, bytes) in blocks.drain(..) {
            let key = BlockKey::of(&cid)
                .ok_or_else(|| EngineError::Corrupt(format!("{cid} is not SHA-256")))?;
            // Reuse only a meta-plane copy: it was synced by an earlier batch. A
            // data-plane copy with the same bytes may not be durable yet.
            let stored = self.blocks.index.borrow().get(&key);
            if stored.is_some_and(|l| l.plane() == Plane::Meta) {
                continue;
            }
            let loc = log.append(&cid, &bytes).await?;
            self.blocks
                .index
                .borrow_mut()
                .relocate(key, BlockLoc::new(Plane::Meta, loc));
            if cache && bytes.len() <= CACHE_ON_WRITE_BYTES {
                // The batch's own buffer becomes the cached copy.
                self.blocks
                    .cache
                    .borrow_mut()
                    .insert(key, Bytes::from(bytes));
            }
        }
        Ok(())
    }

    async fn record_buckets(&self, batch: &Unpublished<'_>, prep: &Prepared) -> EngineResult<()> {
        assert!(
            batch.is_durable(),
            "a bucket record before its blocks are durable"
        );
        for name in &prep.created {
            let rec = BucketRecord {
                name: name.clone(),
                shard: self.id,
                created_ms: now_ms(),
            };
            self.catalog.create_bucket(rec).await?;
        }
        for name in &prep.deleted {
            self.catalog.delete_bucket(name).await?;
        }
        Ok(())
    }

    fn publish(&self, prep: &mut Prepared) {
        let mut map = self.buckets.borrow_mut();
        for name in &prep.deleted {
            map.remove(name);
            prep.trees.remove(name);
            self.commit.forget_head(name);
        }
        for name in &prep.created {
            let head = prep.heads[name];
            let tree = prep.imported.remove(name).unwrap_or_default();
            map.insert(
                name.clone(),
                BucketState {
                    working: tree.clone(),
                    published: tree,
                    head,
                },
            );
        }
        for (name, tree) in prep.trees.drain() {
            if let Some(st) = map.get_mut(&name) {
                st.published = tree.clone();
                st.working = tree;
            }
        }
        for (name, head) in &prep.heads {
            if let Some(st) = map.get_mut(name) {
                st.head = *head;
                self.commit.mark_dirty(name);
            }
        }
    }

    /// Seals segments open longer than `seal_age`; after the meta plane rolls, the
    /// heads are checkpointed so recovery reads only the newer segments.
    pub(crate) async fn seal_if_due(&self) -> EngineResult<()> {
        if self.is_poisoned() || self.commit.is_closing() {
            return Ok(());
        }
        let Some(_sealing) = self.commit.begin_seal() else {
            return Ok(());
        };
        self.seal_due_segments().await
    }

    async fn seal_due_segments(&self) -> EngineResult<()> {
        let age = self.config.seal_age;
        for plane in [Plane::Data, Plane::Meta] {
            let mut log = self.plane(plane).lock().await;
            if log.is_due_for_seal(age) {
                // A seal by age comes when the log is quiet: wait for it, so the
                // segment is recorded `Sealed` (and can ship) now, not at the next
                // append.
                match log.roll().await {
                    Ok(()) => log.finish_sealing().await?,
                    // No room for the next segment: this one stays open (what it holds
                    // is durable as committed) and is sealed once there is.
                    Err(PlaneError::NoSpace(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                // A roll by size seals in the background: record it if it has ended.
                log.harvest_sealing().await?;
            }
        }
        self.checkpoint_if_rolled().await
    }

    /// Checkpoints every changed head once the meta plane has moved to a new segment
    /// (by `seal_age`, or because the last one filled up).
    pub(crate) async fn checkpoint_if_rolled(&self) -> EngineResult<()> {
        // Not while a batch is between its append and its publication (a seal started
        // by the data stage's timer can come then): that batch's commits may sit in a
        // segment below the one the checkpoint would name, and its heads are not
        // dirty yet, so a restart would scan past them. The meta stage checkpoints
        // after the batch.
        if self.commit.checkpoint_permit().is_none() {
            return Ok(());
        }
        let open_seq = self.planes.meta.lock().await.open_seq().unwrap_or(0);
        if open_seq == self.commit.checkpoint_seq() {
            return Ok(());
        }
        // Asked again after the await: a batch may have started appending meanwhile.
        let Some(permit) = self.commit.checkpoint_permit() else {
            return Ok(());
        };
        self.checkpoint_dirty(permit, open_seq).await?;
        self.commit.set_checkpoint_seq(open_seq);
        Ok(())
    }

    /// Records the heads that moved since the last checkpoint. Every commit after this
    /// call lands in a catalog segment numbered `segment_seq` or later: recovery scans
    /// from the highest `segment_seq` recorded.
    async fn checkpoint_dirty(
        &self,
        permit: CheckpointPermit<'_>,
        segment_seq: u64,
    ) -> EngineResult<()> {
        let names = self.commit.take_dirty(permit);
        let heads: Vec<HeadCheckpoint> = {
            let map = self.buckets.borrow();
            names
                .iter()
                .filter_map(|n| {
                    map.get(n).map(|st| HeadCheckpoint {
                        bucket: n.clone(),
                        commit: st.head.commit,
                        seq: st.head.seq,
                        segment_seq,
                        offset: 0,
                    })
                })
                .collect()
        };
        if heads.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.catalog.checkpoint_heads(&heads).await {
            // Not recorded: keep them dirty so a later checkpoint covers them.
            self.commit.restore_dirty(names);
            return Err(e.into());
        }
        Ok(())
    }

    /// Stops taking writes; the commit loop finishes the queued batches and returns.
    /// Open segments stay open (recovery seals them): for a clean stop use
    /// [`Shard::close`].
    pub fn stop(&self) {
        self.commit.close();
    }

    /// Clean shutdown: refuse new writes, commit what is queued, seal both planes and
    /// checkpoint every changed head.
    pub async fn close(&self) -> EngineResult<()> {
        self.commit.close();
        self.commit.wait_drained().await;
        if self.is_poisoned() {
            return Err(EngineError::Poisoned(self.id));
        }
        self.wait_for_spares().await;
        self.planes.data.lock().await.close().await?;
        let next_seq = {
            let mut meta = self.planes.meta.lock().await;
            meta.close().await?;
            meta.next_seq()
        };
        self.checkpoint_dirty(self.commit.drained_permit(), next_seq)
            .await
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn stats(&self) -> ShardStats {
        ShardStats {
            buckets: self.buckets.borrow().len(),
            blocks: self.blocks.index.borrow().len(),
            poisoned: self.is_poisoned(),
        }
    }
}

/// Makes `bucket` new in this batch: a commit of tree `root` (after `prev`, numbered
/// `seq`), its head, and its name among those created.
fn add_bucket(bucket: &str, prep: &mut Prepared, root: Cid, prev: Option<Cid>, seq: u64) {
    let commit = Commit {
        bucket: bucket.to_owned(),
        root,
        prev,
        seq,
        time_ms: now_ms(),
    };
    let bytes = commit.encode();
    let cid = crate::block::cid_dag_cbor(&bytes);
    prep.blocks.push((cid, bytes));
    prep.heads.insert(
        bucket.to_owned(),
        BucketHead {
            commit: cid,
            seq,
            root,
        },
    );
    prep.created.push(bucket.to_owned());
}

/// Commits a plane without holding it across the fdatasync: appends (and reads) go on
/// while the disk syncs. Returns how long the write and fdatasync took, or `None` when
/// nothing was appended since the last commit (no I/O at all).
async fn commit_plane<D: Disk + 'static, C: Catalog>(
    log: &tokio::sync::Mutex<crate::plane::PlaneLog<D, C>>,
) -> Result<Option<std::time::Duration>, crate::plane::PlaneError> {
    let started = Instant::now();
    let Some(job) = log.lock().await.start_commit().await? else {
        return Ok(None);
    };
    let synced = job.sync().await;
    log.lock().await.finish_commit(job, synced)?;
    Ok(Some(started.elapsed()))
}

fn fail_all(ops: Vec<Op>, e: &EngineError) {
    for op in ops {
        let _ = op.reply.send(Err(e.clone()));
    }
}

fn fail_replies(
    replies: Vec<(oneshot::Sender<EngineResult<OpDone>>, EngineResult<OpDone>)>,
    e: &EngineError,
) {
    for (reply, _) in replies {
        let _ = reply.send(Err(e.clone()));
    }
}
