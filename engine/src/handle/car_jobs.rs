//! Bucket export, import and verify through the engine handle: each runs on the
//! bucket's shard; bytes cross runtimes through bounded channels.

use super::{Engine, placement_shard};
use crate::api::{BodyReceiver, BucketHead, body_channel};
use crate::archive::{CheckOptions, CheckReport, History, ImportReport};
use crate::catalog::Catalog;
use crate::error::{EngineError, EngineResult, validate_bucket_name};
use crate::shard::ExportReceiver;
use bytes::Bytes;
use std::future::Future;

impl<C: Catalog + 'static> Engine<C> {
    /// Starts exporting `bucket` at its current head with `history` past commits: the
    /// head (the file's root) and its blocks in file order (see [`car_bytes`]). The
    /// bucket keeps taking requests; the export is of the head it had when it began.
    pub async fn export_bucket(
        &self,
        bucket: &str,
        history: History,
    ) -> EngineResult<(BucketHead, ExportReceiver)> {
        let id = self.shard_of(bucket)?;
        let b = bucket.to_owned();
        self.call(id, move |s| async move { s.export_bucket(&b, history) })
            .await
    }

    /// Imports a bucket export (the CAR file's bytes on `car`) as the new bucket
    /// `bucket`. All or nothing: see [`crate::Shard::import_bucket`].
    pub async fn import_bucket(
        &self,
        bucket: &str,
        car: BodyReceiver,
    ) -> EngineResult<ImportReport> {
        validate_bucket_name(bucket)?;
        if self.shard_of(bucket).is_ok() {
            return Err(EngineError::BucketAlreadyExists(bucket.to_owned()));
        }
        let id = placement_shard(bucket, self.cores);
        let b = bucket.to_owned();
        let report = self
            .call(id, move |s| async move { s.import_bucket(&b, car).await })
            .await?;
        if let Ok(mut p) = self.placement.write() {
            p.insert(bucket.to_owned(), id);
        }
        Ok(report)
    }

    /// Walks `bucket` from its head and checks every reachable block.
    pub async fn verify_bucket(
        &self,
        bucket: &str,
        opts: CheckOptions,
    ) -> EngineResult<CheckReport> {
        let id = self.shard_of(bucket)?;
        let b = bucket.to_owned();
        self.call(id, move |s| async move { s.verify_bucket(&b, opts).await })
            .await
    }
}

/// The bytes of a CAR file for an export: the header naming `head.commit`, then one
/// frame per block. Run the returned future (on any runtime) while reading the bytes;
/// an export that fails part-way ends the bytes with the error.
pub fn car_bytes(
    head: &BucketHead,
    mut blocks: ExportReceiver,
) -> (impl Future<Output = ()> + Send + 'static, BodyReceiver) {
    let (tx, rx) = body_channel();
    let mut header = Vec::with_capacity(64);
    crate::segment::frame::write_header(&mut header, &[head.commit]);
    let forward = async move {
        if tx.send(Ok(Bytes::from(header))).await.is_err() {
            return;
        }
        while let Some(item) = blocks.recv().await {
            let pieces = match item {
                Ok((cid, block)) => {
                    let mut prefix = Vec::with_capacity(48);
                    let len = crate::cbor::cid_encoded_len(&cid) + block.len();
                    crate::cbor::write_varint(&mut prefix, len as u64);
                    crate::cbor::write_cid(&mut prefix, &cid);
                    vec![Ok(Bytes::from(prefix)), Ok(block)]
                }
                Err(e) => vec![Err(e)],
            };
            for p in pieces {
                if tx.send(p).await.is_err() {
                    return; // the reader went away: dropping `blocks` stops the walk
                }
            }
        }
    };
    (forward, rx)
}
