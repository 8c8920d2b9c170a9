//! The DAG-CBOR blocks of a bucket besides MST nodes (`docs/format.md`):
//! - [`manifest`]: the object manifest, the value of an MST entry;
//! - [`chunks`]: the chunk index of an object body;
//! - [`commit`]: the bucket commit;
//! - [`upload`]: a multipart upload's template and part records (catalog, not planes).
//!
//! Each block is a one-entry keyed union naming its version (`{"/commit/1": {...}}`), so
//! a format can change without a migration. Encoders emit canonical DAG-CBOR by
//! construction; decoders are strict (unknown fields, missing fields, wrong types and
//! non-canonical bytes are all refused) because blocks may arrive from an import or the
//! cold tier.

#[cfg(feature = "testing")]
pub mod chunks;
#[cfg(not(feature = "testing"))]
pub(crate) mod chunks;
#[cfg(feature = "testing")]
pub mod commit;
#[cfg(not(feature = "testing"))]
pub(crate) mod commit;
mod manifest;
mod upload;

// What the engine's API carries: a stored object's manifest and headers, its checksum,
// a multipart upload's template.
pub use manifest::{Checksum, ChecksumAlgorithm, ChecksumType, ObjectHeaders, ObjectManifest};
pub use upload::UploadTemplate;
// The engine's own blocks: public only to tests and fuzzers.
#[cfg(feature = "testing")]
pub use {
    chunks::{ChunkIndex, ChunkRef, Run, build_chunk_index},
    commit::Commit,
    upload::PartBody,
};
#[cfg(not(feature = "testing"))]
pub(crate) use {
    chunks::{ChunkIndex, ChunkRef, Run, build_chunk_index},
    commit::Commit,
    upload::PartBody,
};

use crate::block::{CODEC_DAG_CBOR, MH_SHA2_256};
use crate::cbor::{DecodeError, Decoder};
use cid::Cid;

/// Opens the keyed union `{tag: ...}`, leaving the decoder at the inner value.
pub(crate) fn open_union(d: &mut Decoder<'_>, tag: &'static str) -> Result<(), DecodeError> {
    if d.map()? != 1 {
        return Err(DecodeError::schema(format!(
            "expected a one-entry map {{{tag:?}: …}}"
        )));
    }
    let at = d.position();
    let got = d.text()?;
    if got != tag {
        return Err(DecodeError::schema(format!(
            "expected {tag:?} at byte {at}, found {got:?}"
        )));
    }
    Ok(())
}

/// Writes the head of the keyed union `{tag: ...}`.
pub(crate) fn write_union(buf: &mut Vec<u8>, tag: &str) {
    crate::cbor::write_map(buf, 1);
    crate::cbor::write_text(buf, tag);
}

/// Checks that a link points at a DAG-CBOR block hashed with sha2-256 (CIDv1).
pub(crate) fn check_cbor_link(cid: &Cid, field: &str) -> Result<(), DecodeError> {
    let ok = cid.version() == cid::Version::V1
        && cid.codec() == CODEC_DAG_CBOR
        && cid.hash().code() == MH_SHA2_256
        && cid.hash().size() == 32;
    if ok {
        Ok(())
    } else {
        Err(DecodeError::schema(format!(
            "{field}: {cid} is not a CIDv1 dag-cbor sha2-256 link"
        )))
    }
}

/// Fails when a required field was not seen.
pub(crate) fn required<T>(v: Option<T>, what: &str) -> Result<T, DecodeError> {
    v.ok_or_else(|| DecodeError::schema(format!("missing field {what}")))
}
