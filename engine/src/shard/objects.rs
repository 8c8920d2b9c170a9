//! Request handlers: what each engine call does on its shard.

use super::Shard;
use super::op::{CACHE_ON_WRITE_BYTES, OpDone, OpKind};
use crate::api::{
    BodyDigests, BodyReceiver, BodySender, ByteRange, GetOutcome, ListRequest, ListResponse,
    ObjectInfo, ObjectSummary, PutCondition, PutOptions, body_channel, now_ms,
};
use crate::block::cid_dag_cbor;
use crate::block_lookup::{BlockKey, BlockLoc};
use crate::catalog::Catalog;
use crate::chunker::Chunker;
use crate::error::{EngineError, EngineResult};
use crate::format::chunks::Located;
use crate::format::{ChunkIndex, ObjectManifest, build_chunk_index};
use crate::io::Disk;
use crate::mst::{ListItem, ListQuery, Lister, validate_key};
use crate::segment::Plane;
use bytes::Bytes;
use cid::Cid;
use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::oneshot;

/// Manifest reads one LIST page keeps in flight (the io_uring queue takes them at once).
const LIST_READS_IN_FLIGHT: usize = 64;

/// A body whose chunks are appended to the data plane, and what it hashed to.
#[derive(Debug)]
pub(crate) struct Ingested {
    pub size: u64,
    /// The body's chunks, from offset 0 (length 0 for an empty body).
    pub run: crate::format::Run,
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
    /// The chunks of a small body, not yet stored: they go to the meta plane with
    /// the manifest (empty when the chunks went to the data plane).
    pub held: Vec<(Cid, Vec<u8>)>,
}

/// Where [`Shard::ingest`] puts a body's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkSink {
    /// Appended to the data plane as they are cut.
    DataPlane,
    /// Held for the meta plane when the declared length is at most
    /// `meta_body_bytes` (else the data plane).
    CatalogIfSmall,
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(what.to_string())
}

pub(crate) fn check_key(key: &str) -> EngineResult<()> {
    validate_key(key.as_bytes()).map_err(EngineError::InvalidKey)
}

/// Checks a whole body against what the request declared (length, Content-MD5, signed
/// SHA-256) and settles `opts.checksum` from a late checksum.
fn check_body(
    opts: &mut PutOptions,
    size: u64,
    md5: [u8; 16],
    sha256: Option<[u8; 32]>,
) -> EngineResult<()> {
    if let Some(expected) = opts.content_length
        && size != expected
    {
        return Err(EngineError::IncompleteBody {
            got: size,
            expected,
        });
    }
    if opts.content_md5.is_some_and(|m| m != md5) {
        return Err(EngineError::BadDigest);
    }
    if opts.content_sha256.is_some() && opts.content_sha256 != sha256 {
        return Err(EngineError::Sha256Mismatch);
    }
    if opts.checksum.is_none()
        && let Some(slot) = &opts.late_checksum
    {
        opts.checksum = slot.lock().ok().and_then(|c| c.clone());
    }
    Ok(())
}

/// A small PUT made ready on the caller's thread: the body cut into chunks and hashed
/// (chunk CIDs, MD5, SHA-256 when asked), checked, and its chunk index and manifest
/// built. None of it needs the shard, whose thread is the bottleneck of small PUTs
/// (`docs/ARCHITECTURE.md`, engine measurements); the shard only stores the chunks
/// and joins a group commit ([`Shard::put_hashed`]).
#[derive(Debug)]
pub(crate) struct HashedPut {
    pub size: u64,
    /// The body's chunks, in order.
    pub chunks: Vec<(Cid, Vec<u8>)>,
    /// The chunk index blocks, then the manifest.
    pub blocks: Vec<(Cid, Vec<u8>)>,
    pub manifest: ObjectManifest,
    pub manifest_cid: Cid,
    pub condition: Option<PutCondition>,
}

impl HashedPut {
    /// Cuts, hashes and checks `data` (the whole body) as a PUT of `key` with `opts`.
    pub(crate) fn new(
        key: &str,
        mut opts: PutOptions,
        data: &[u8],
        config: &super::ShardConfig,
    ) -> EngineResult<Self> {
        check_key(key)?;
        if data.len() as u64 > config.max_put_bytes {
            return Err(EngineError::EntityTooLarge {
                limit: config.max_put_bytes,
            });
        }
        let want_sha = opts.want_sha256 || opts.content_sha256.is_some();
        let mut chunker = Chunker::new(config.chunk_bytes, want_sha);
        chunker.set_size_hint(data.len() as u64);
        let mut chunks = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            rest = &rest[chunker.push(rest)..];
            chunks.extend(chunker.take_chunk().map(|c| (c.cid, c.data)));
        }
        let size = chunker.size();
        let body = chunker.finish();
        chunks.extend(body.last_chunk.map(|c| (c.cid, c.data)));
        check_body(&mut opts, size, body.md5, body.sha256)?;
        let mut blocks = Vec::with_capacity(2);
        let root = build_chunk_index(vec![body.run], &mut blocks);
        let manifest = opts.manifest(key.to_owned(), size, body.md5, body.sha256, now_ms(), root);
        let bytes = manifest.encode();
        let manifest_cid = cid_dag_cbor(&bytes);
        blocks.push((manifest_cid, bytes));
        Ok(Self {
            size,
            chunks,
            blocks,
            manifest,
            manifest_cid,
            condition: opts.condition,
        })
    }
}

impl<D: Disk + 'static, C: Catalog + 'static> Shard<D, C> {
    /// Creates a bucket on this shard (its genesis commit is durable before its record).
    pub async fn create_bucket(&self, name: &str) -> EngineResult<()> {
        crate::error::validate_bucket_name(name)?;
        if self.catalog.bucket(name).await?.is_some() {
            return Err(EngineError::BucketAlreadyExists(name.to_owned()));
        }
        self.submit(name, OpKind::CreateBucket).await.map(|_| ())
    }

    /// Deletes a bucket if it holds no object.
    pub async fn delete_bucket(&self, name: &str) -> EngineResult<()> {
        self.published(name)?;
        self.submit(name, OpKind::DeleteBucket).await.map(|_| ())
    }

    /// Stores an object from a streamed body. The body is chunked, hashed and appended
    /// as it arrives; the object becomes visible, and the call returns, only after the
    /// group commit that includes it is durable.
    #[cfg(any(test, feature = "testing"))]
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        body: BodyReceiver,
    ) -> EngineResult<ObjectInfo> {
        self.put_object_with(bucket, key, opts, body, None).await
    }

    /// [`Shard::put_object`] for a caller that hashes the whole body itself and sends
    /// the digests on `digests` once the body has ended.
    pub async fn put_object_with(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        body: BodyReceiver,
        digests: Option<oneshot::Receiver<BodyDigests>>,
    ) -> EngineResult<ObjectInfo> {
        let mut opts = opts;
        check_key(key)?;
        self.published(bucket)?;
        let body = self
            .ingest(&mut opts, body, digests, ChunkSink::CatalogIfSmall)
            .await?;
        let mut blocks = body.held;
        let root = build_chunk_index(vec![body.run], &mut blocks);
        let manifest = opts.manifest(
            key.to_owned(),
            body.size,
            body.md5,
            body.sha256,
            now_ms(),
            root,
        );
        let info = self
            .commit_manifest(bucket, manifest, blocks, opts.condition)
            .await?;
        self.metrics.puts.fetch_add(1, Relaxed);
        self.metrics.put_bytes.fetch_add(body.size, Relaxed);
        Ok(info)
    }

    /// Stores a PUT the caller made ready ([`HashedPut`]): a body of at most
    /// `meta_body_bytes` rides in the meta plane with its manifest, a larger one
    /// is appended to the data plane; then the manifest joins the next group commit.
    pub(crate) async fn put_hashed(
        &self,
        bucket: &str,
        put: HashedPut,
    ) -> EngineResult<ObjectInfo> {
        self.check_writable()?;
        if !self.buckets.borrow().contains_key(bucket) {
            return Err(EngineError::NoSuchBucket(bucket.to_owned()));
        }
        let mut blocks = if put.size <= self.config.meta_body_bytes {
            put.chunks
        } else {
            for (cid, data) in &put.chunks {
                self.store_chunk(cid, data).await?;
            }
            Vec::new()
        };
        blocks.extend(put.blocks);
        let kind = OpKind::Put {
            key: put.manifest.key.clone(),
            manifest: put.manifest_cid,
            blocks,
            condition: put.condition,
        };
        self.submit(bucket, kind).await?;
        self.metrics.puts.fetch_add(1, Relaxed);
        self.metrics.put_bytes.fetch_add(put.size, Relaxed);
        Ok(ObjectInfo {
            manifest: Arc::new(put.manifest),
            manifest_cid: put.manifest_cid,
        })
    }

    /// Chunks and hashes a body, and appends its chunks to the data plane (not yet
    /// durable) or holds them (`sink`); checks it against `opts` (length, Content-MD5,
    /// signed SHA-256) and settles `opts.checksum` from a late checksum.
    pub(crate) async fn ingest(
        &self,
        opts: &mut PutOptions,
        mut body: BodyReceiver,
        digests: Option<oneshot::Receiver<BodyDigests>>,
        sink: ChunkSink,
    ) -> EngineResult<Ingested> {
        self.check_writable()?;
        let limit = opts.content_length.map_or(self.config.max_put_bytes, |n| {
            n.min(self.config.max_put_bytes)
        });
        if opts
            .content_length
            .is_some_and(|n| n > self.config.max_put_bytes)
        {
            return Err(EngineError::EntityTooLarge {
                limit: self.config.max_put_bytes,
            });
        }
        let want_sha = opts.want_sha256 || opts.content_sha256.is_some();
        let mut chunker = match digests {
            Some(_) => Chunker::chunks_only(self.config.chunk_bytes),
            None => Chunker::new(self.config.chunk_bytes, want_sha),
        };
        if let Some(n) = opts.content_length {
            chunker.set_size_hint(n);
        }
        // The limit is the declared length, so a held body stays this small.
        let hold = sink == ChunkSink::CatalogIfSmall
            && opts
                .content_length
                .is_some_and(|n| n <= self.config.meta_body_bytes);
        let mut held = Vec::new();
        while let Some(piece) = body.recv().await {
            let piece = piece?;
            if chunker.size() + piece.len() as u64 > limit {
                return Err(EngineError::EntityTooLarge { limit });
            }
            let mut rest = &piece[..];
            while !rest.is_empty() {
                rest = &rest[chunker.push(rest)..];
                if let Some(chunk) = chunker.take_chunk() {
                    if hold {
                        held.push((chunk.cid, chunk.data));
                    } else {
                        self.store_chunk(&chunk.cid, &chunk.data).await?;
                        chunker.recycle(chunk.data);
                    }
                }
            }
        }
        let size = chunker.size();
        let mut body_hashes = chunker.finish();
        if let Some(last) = body_hashes.last_chunk.take() {
            if hold {
                held.push((last.cid, last.data));
            } else {
                self.store_chunk(&last.cid, &last.data).await?;
            }
        }
        let (md5, sha256) = match digests {
            Some(rx) => {
                let d = rx
                    .await
                    .map_err(|_| EngineError::Body("body digests never arrived".into()))?;
                (d.md5, d.sha256)
            }
            None => (body_hashes.md5, body_hashes.sha256),
        };
        check_body(opts, size, md5, sha256)?;
        Ok(Ingested {
            size,
            run: body_hashes.run,
            md5,
            sha256,
            held,
        })
    }

    /// Joins the next group commit with a manifest (and the blocks it needs).
    pub(crate) async fn commit_manifest(
        &self,
        bucket: &str,
        manifest: ObjectManifest,
        mut blocks: Vec<(Cid, Vec<u8>)>,
        condition: Option<PutCondition>,
    ) -> EngineResult<ObjectInfo> {
        let bytes = manifest.encode();
        let cid = cid_dag_cbor(&bytes);
        blocks.push((cid, bytes));
        let key = manifest.key.clone();
        let kind = OpKind::Put {
            key,
            manifest: cid,
            blocks,
            condition,
        };
        self.submit(bucket, kind).await?;
        Ok(ObjectInfo {
            manifest: Arc::new(manifest),
            manifest_cid: cid,
        })
    }

    /// Appends a body chunk to the data plane unless the shard already holds it.
    pub(crate) async fn store_chunk(&self, cid: &Cid, data: &[u8]) -> EngineResult<()> {
        let key = BlockKey::of(cid).ok_or_else(|| corrupt("chunk CID is not SHA-256"))?;
        if self.blocks.index.borrow().contains(&key) {
            return Ok(());
        }
        let mut log = self.planes.data.lock().await;
        self.check_writable()?;
        let appended = log.append(cid, data).await;
        let loc = match appended {
            Ok(loc) => loc,
            Err(e) => {
                let e = EngineError::from(e);
                self.write_failed(&e);
                return Err(e);
            }
        };
        self.blocks
            .index
            .borrow_mut()
            .insert(key, BlockLoc::new(Plane::Data, loc));
        self.metrics
            .chunk_bytes_written
            .fetch_add(data.len() as u64, Relaxed);
        if data.len() <= CACHE_ON_WRITE_BYTES {
            self.blocks
                .cache
                .borrow_mut()
                .insert(key, Bytes::copy_from_slice(data));
        }
        if let Err(e) = log.write_behind(self.config.write_behind_bytes).await {
            let e = EngineError::from(e);
            self.write_failed(&e);
            return Err(e);
        }
        Ok(())
    }

    /// An object's manifest, from the bucket's committed tree.
    pub async fn head_object(&self, bucket: &str, key: &str) -> EngineResult<ObjectInfo> {
        check_key(key)?;
        let tree = self.published(bucket)?;
        let found = self.with_nodes(|n| tree.get(key.as_bytes(), n)).await?;
        let cid = found.ok_or(EngineError::NoSuchKey)?;
        let manifest = self.manifest(&cid).await?;
        Ok(ObjectInfo {
            manifest,
            manifest_cid: cid,
        })
    }

    pub(crate) async fn manifest(&self, cid: &Cid) -> EngineResult<Arc<ObjectManifest>> {
        self.decoded_block(cid, |bytes| {
            ObjectManifest::decode(bytes).map_err(|e| corrupt(format!("manifest {cid}: {e}")))
        })
        .await
    }

    /// An object's bytes (all, or a range), streamed by a task of this shard; every
    /// block is verified against its CID before it is sent.
    pub async fn get_object(
        self: &Rc<Self>,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> EngineResult<GetOutcome> {
        let info = self.head_object(bucket, key).await?;
        self.read_object(info, range)
    }

    /// The bytes of an object the caller already looked up (after checking conditions
    /// on it), so the bytes sent belong to exactly that object even if the key has
    /// changed since. Dead chunks are kept until compaction copies them out of a
    /// segment, and compaction keeps chunks that a running read holds.
    pub fn read_object(
        self: &Rc<Self>,
        info: ObjectInfo,
        range: Option<ByteRange>,
    ) -> EngineResult<GetOutcome> {
        let size = info.manifest.size;
        let (start, end) = match range {
            Some(r) => r.resolve(size)?,
            None => (0, size),
        };
        let (tx, rx) = body_channel();
        if let Some(root) = info.manifest.body
            && end > start
            && !self.send_cached_piece(&root, start, end, &tx)
        {
            let shard = self.clone();
            monoio::spawn(async move { shard.stream_body(root, start, end, tx).await });
        }
        self.metrics.gets.fetch_add(1, Relaxed);
        self.metrics.get_bytes.fetch_add(end - start, Relaxed);
        Ok(GetOutcome {
            info,
            range: (start, end),
            body: rx,
        })
    }

    /// Sends `[start, end)` now, as the body's only piece, when it lies in one chunk
    /// and the block cache holds both the decoded chunk index and that chunk: the
    /// answer then leaves with its bytes already in the channel, and the caller needs
    /// no second wake-up for them. Returns false, having sent nothing, otherwise (the
    /// streaming task then reads, verifies and reports as usual).
    fn send_cached_piece(&self, root: &Cid, start: u64, end: u64, tx: &BodySender) -> bool {
        let Ok(index_key) = super::block_key(root) else {
            return false;
        };
        let mut cache = self.blocks.cache.borrow_mut();
        let Some(index) = cache.decoded::<ChunkIndex>(&index_key) else {
            return false;
        };
        let Located::Chunks(refs) = index.locate(start, end) else {
            return false;
        };
        let [chunk] = refs.as_slice() else {
            return false;
        };
        let Some(data) = super::block_key(&chunk.cid)
            .ok()
            .and_then(|k| cache.get(&k))
        else {
            return false;
        };
        if data.len() as u64 != chunk.len {
            return false;
        }
        let from = (start.max(chunk.offset) - chunk.offset) as usize;
        let to = (end.min(chunk.offset + chunk.len) - chunk.offset) as usize;
        let sent = tx.try_send(Ok(data.slice(from..to))).is_ok();
        if sent {
            self.metrics.block_cache_hits.fetch_add(2, Relaxed);
        }
        sent
    }

    async fn stream_body(&self, root: Cid, start: u64, end: u64, tx: BodySender) {
        if let Err(e) = self.send_range(root, start, end, &tx).await {
            tracing::error!(shard = self.id, error = %e, "GET body failed");
            let _ = tx.send(Err(e)).await;
        }
    }

    /// Sends the bytes `[start, end)` of the body indexed by `root`, in order.
    async fn send_range(
        &self,
        root: Cid,
        start: u64,
        end: u64,
        tx: &BodySender,
    ) -> EngineResult<()> {
        let mut stack = vec![root];
        while let Some(refs) = self.next_chunks(&mut stack, start, end).await? {
            for r in refs {
                let data = self.read_block(&r.cid).await?;
                if data.len() as u64 != r.len {
                    return Err(corrupt(format!("chunk {} has the wrong length", r.cid)));
                }
                let from = (start.max(r.offset) - r.offset) as usize;
                let to = (end.min(r.offset + r.len) - r.offset) as usize;
                if tx.send(Ok(data.slice(from..to))).await.is_err() {
                    return Ok(()); // the reader went away
                }
            }
        }
        Ok(())
    }

    /// Walks a chunk index depth-first (start with `stack = [root]`): the chunks of the
    /// next leaf that overlap `[start, end)`, in body order, or `None` at the end. Reads
    /// index blocks only.
    pub(crate) async fn next_chunks(
        &self,
        stack: &mut Vec<Cid>,
        start: u64,
        end: u64,
    ) -> EngineResult<Option<Vec<crate::format::ChunkRef>>> {
        while let Some(cid) = stack.pop() {
            let index = self
                .decoded_block(&cid, |bytes| {
                    ChunkIndex::decode(bytes).map_err(|e| corrupt(format!("{cid}: {e}")))
                })
                .await?;
            match index.locate(start, end) {
                Located::Children(children) => stack.extend(children.iter().rev().map(|c| c.link)),
                Located::Chunks(refs) => return Ok(Some(refs)),
            }
        }
        Ok(None)
    }

    /// Deletes a key (succeeds whether or not it existed); returns the manifest it had.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> EngineResult<Option<Cid>> {
        check_key(key)?;
        self.published(bucket)?;
        self.metrics.deletes.fetch_add(1, Relaxed);
        match self
            .submit(
                bucket,
                OpKind::Delete {
                    key: key.to_owned(),
                },
            )
            .await?
        {
            OpDone::Deleted(old) => Ok(old),
            _ => Ok(None),
        }
    }

    /// One LIST page from the bucket's committed tree.
    pub async fn list_objects(&self, bucket: &str, req: ListRequest) -> EngineResult<ListResponse> {
        let tree = self.published(bucket)?;
        self.metrics.lists.fetch_add(1, Relaxed);
        let query = ListQuery {
            prefix: req.prefix.into_bytes(),
            delimiter: req
                .delimiter
                .filter(|d| !d.is_empty())
                .map(String::into_bytes),
            start_after: req.start_after.map(String::into_bytes),
            max_keys: req.max_keys,
        };
        let from = match &query.start_after {
            Some(s) if *s > query.prefix => s.clone(),
            _ => query.prefix.clone(),
        };
        let mut lister = Lister::new(&tree, query);
        let page = self.with_nodes_from(&from, |n| lister.run(n)).await?;
        let text =
            |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt("key is not UTF-8"));
        let mut out = ListResponse {
            truncated: page.truncated,
            ..ListResponse::default()
        };
        if page.truncated {
            out.next_marker = page.items.last().map(|i| text(i.marker())).transpose()?;
        }
        // A page needs every listed object's manifest: fetch them concurrently (in key
        // order), so a page of cache misses costs a few disk round trips, not 1,000.
        let mut manifests = stream::iter(page.items.iter().filter_map(|item| match item {
            ListItem::Object { value, .. } => Some(self.manifest(value)),
            ListItem::CommonPrefix(_) => None,
        }))
        .buffered(LIST_READS_IN_FLIGHT);
        for item in &page.items {
            match item {
                ListItem::Object { key, .. } => {
                    let m = manifests
                        .next()
                        .await
                        .ok_or_else(|| corrupt("listed object without a manifest"))??;
                    out.objects.push(ObjectSummary {
                        key: text(key)?,
                        size: m.size,
                        etag: m.etag.clone(),
                        mtime_ms: m.mtime_ms,
                    });
                }
                ListItem::CommonPrefix(p) => out.common_prefixes.push(text(p)?),
            }
        }
        Ok(out)
    }

    /// Copies an object within this shard: a new manifest over the same chunks, so no
    /// body byte is read or written. `replace` sets new metadata (REPLACE directive);
    /// `None` keeps the source's (COPY directive).
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> EngineResult<ObjectInfo> {
        check_key(dst_key)?;
        self.published(dst_bucket)?;
        let src = self.head_object(src_bucket, src_key).await?;
        let m = &src.manifest;
        let mut copy = match replace {
            Some(opts) => {
                let mut c = opts.manifest(dst_key.to_owned(), m.size, m.md5, m.sha256, 0, m.body);
                if c.checksum.is_none() {
                    c.checksum = m.checksum.clone();
                }
                c
            }
            None => ObjectManifest::clone(m),
        };
        copy.key = dst_key.to_owned();
        copy.etag = m.etag.clone();
        copy.parts = m.parts.clone();
        copy.upload_id = None;
        copy.mtime_ms = now_ms();
        self.commit_manifest(dst_bucket, copy, Vec::new(), None)
            .await
    }

    /// Checks every block of an object (manifest, chunk indexes, chunks) against its
    /// CID and the body against its MD5 (a multipart body: each part's MD5, then the MD5
    /// of those); returns the body size.
    pub async fn verify_object(&self, bucket: &str, key: &str) -> EngineResult<u64> {
        let info = self.head_object(bucket, key).await?;
        let (tx, mut rx) = body_channel();
        let mut md5 = crate::checksum::PartMd5s::new(info.manifest.parts.clone());
        let mut sha = Sha256::new();
        let mut n = 0u64;
        if let Some(root) = info.manifest.body {
            let size = info.manifest.size;
            let send = async move {
                let r = self.send_range(root, 0, size, &tx).await;
                drop(tx);
                r
            };
            let recv = async {
                while let Some(p) = rx.recv().await {
                    let p = p?;
                    n += p.len() as u64;
                    md5.update(&p);
                    sha.update(&p);
                }
                Ok::<_, EngineError>(())
            };
            let (a, b) = super::join(send, recv).await;
            a?;
            b?;
        }
        if n != info.manifest.size || md5.finish() != info.manifest.md5 {
            return Err(corrupt(format!("object {key} does not match its manifest")));
        }
        if let Some(want) = info.manifest.sha256
            && <[u8; 32]>::from(sha.finalize()) != want
        {
            return Err(corrupt(format!("object {key} does not match its SHA-256")));
        }
        Ok(n)
    }
}
