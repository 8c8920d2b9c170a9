//! The two records a multipart upload keeps in the catalog (`docs/format.md`):
//!
//! - [`UploadTemplate`] `{"/upload/1": {"a"?: algorithm, "m": manifest, "t"?: type}}`:
//!   what the object will carry besides its body, as an encoded manifest with an empty
//!   body, and the checksum the client asked for at creation;
//! - [`PartBody`] `{"/part/1": {"r": [[offset, len, chunk size, digests]…], "ck"?:
//!   checksum}}`: where an uploaded part's bytes are (chunk runs, offsets from the part's
//!   start, chunk digests as one byte string of 32-byte SHA-256s) and its checksum.
//!
//! Neither is content-addressed: both live in the catalog, not in a plane log. They are
//! still canonical DAG-CBOR, decoded strictly (the catalog is a file on disk).

use super::chunks::{MAX_CHUNK_BYTES, Run};
use super::manifest::{decode_checksum, write_checksum};
use super::{Checksum, ChecksumAlgorithm, ChecksumType, ObjectManifest, open_union, write_union};
use crate::block::{CODEC_RAW, cid_from_sha256, sha256_digest};
use crate::cbor::{self, DecodeError, Decoder};

pub const UPLOAD_TAG: &str = "/upload/1";
pub const PART_TAG: &str = "/part/1";

/// An upload's object template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTemplate {
    /// Key, headers and metadata of the object to be; size 0, no body.
    pub manifest: ObjectManifest,
    /// The checksum algorithm and type asked for at creation.
    pub checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
}

impl UploadTemplate {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        write_union(&mut buf, UPLOAD_TAG);
        cbor::write_map(&mut buf, if self.checksum.is_some() { 3 } else { 1 });
        if let Some((a, _)) = self.checksum {
            cbor::write_text(&mut buf, "a");
            cbor::write_text(&mut buf, a.as_str());
        }
        cbor::write_text(&mut buf, "m");
        cbor::write_bytes(&mut buf, &self.manifest.encode());
        if let Some((_, t)) = self.checksum {
            cbor::write_text(&mut buf, "t");
            cbor::write_text(&mut buf, t.as_str());
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        open_union(&mut d, UPLOAD_TAG)?;
        let n = d.map()?;
        let checksum = match n {
            1 => None,
            3 => {
                d.expect_key("a")?;
                let a = d.text()?;
                Some(ChecksumAlgorithm::parse(a).ok_or_else(|| {
                    DecodeError::schema(format!("unknown checksum algorithm {a:?}"))
                })?)
            }
            _ => return Err(DecodeError::schema("upload must hold m, or a, m and t")),
        };
        d.expect_key("m")?;
        let manifest = ObjectManifest::decode(d.bytes()?)?;
        let checksum = match checksum {
            None => None,
            Some(a) => {
                d.expect_key("t")?;
                let t = d.text()?;
                let kind = ChecksumType::parse(t)
                    .ok_or_else(|| DecodeError::schema(format!("unknown checksum type {t:?}")))?;
                Some((a, kind))
            }
        };
        d.finish()?;
        Ok(Self { manifest, checksum })
    }
}

/// Where an uploaded part's bytes are, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartBody {
    /// Chunk runs, contiguous from offset 0 of the part; none for an empty part.
    pub runs: Vec<Run>,
    pub checksum: Option<Checksum>,
}

impl PartBody {
    /// The part's length in bytes.
    #[cfg(any(test, feature = "testing"))]
    pub fn size(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let chunks: usize = self.runs.iter().map(|r| r.chunks.len()).sum();
        let mut buf = Vec::with_capacity(64 + 33 * chunks);
        write_union(&mut buf, PART_TAG);
        cbor::write_map(&mut buf, 1 + usize::from(self.checksum.is_some()));
        cbor::write_text(&mut buf, "r");
        cbor::write_array(&mut buf, self.runs.len());
        for r in &self.runs {
            cbor::write_array(&mut buf, 4);
            cbor::write_uint(&mut buf, r.offset);
            cbor::write_uint(&mut buf, r.len);
            cbor::write_uint(&mut buf, r.chunk_size);
            let mut digests = Vec::with_capacity(32 * r.chunks.len());
            for c in &r.chunks {
                // Chunk CIDs are raw sha2-256 by construction (the chunker makes them).
                digests.extend_from_slice(&sha256_digest(c).unwrap_or([0; 32]));
            }
            cbor::write_bytes(&mut buf, &digests);
        }
        if let Some(c) = &self.checksum {
            cbor::write_text(&mut buf, "ck");
            write_checksum(&mut buf, c);
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        open_union(&mut d, PART_TAG)?;
        let n = d.map()?;
        if !(1..=2).contains(&n) {
            return Err(DecodeError::schema("part must hold r, and maybe ck"));
        }
        d.expect_key("r")?;
        let count = d.array()?;
        let mut runs = Vec::with_capacity(count.min(1024));
        let mut next = 0u64;
        for _ in 0..count {
            let run = decode_run(&mut d)?;
            if run.offset != next {
                return Err(DecodeError::schema("part runs are not contiguous"));
            }
            next = run.offset + run.len;
            runs.push(run);
        }
        let checksum = if n == 2 {
            d.expect_key("ck")?;
            Some(decode_checksum(&mut d)?)
        } else {
            None
        };
        d.finish()?;
        Ok(Self { runs, checksum })
    }
}

fn decode_run(d: &mut Decoder<'_>) -> Result<Run, DecodeError> {
    if d.array()? != 4 {
        return Err(DecodeError::schema(
            "a part run is [offset, len, chunk size, digests]",
        ));
    }
    let offset = d.uint()?;
    let len = d.uint()?;
    let chunk_size = d.uint()?;
    let digests = d.bytes()?;
    if len == 0 || chunk_size == 0 || chunk_size > MAX_CHUNK_BYTES {
        return Err(DecodeError::schema(
            "part run length or chunk size is out of range",
        ));
    }
    offset
        .checked_add(len)
        .ok_or_else(|| DecodeError::schema("part run overflows"))?;
    if digests.len() % 32 != 0 || (digests.len() / 32) as u64 != len.div_ceil(chunk_size) {
        return Err(DecodeError::schema(
            "part run digests do not match its length",
        ));
    }
    let chunks = digests
        .chunks_exact(32)
        .map(|c| {
            let digest: [u8; 32] = c.try_into().unwrap_or([0; 32]);
            cid_from_sha256(CODEC_RAW, digest)
        })
        .collect();
    Ok(Run {
        offset,
        len,
        chunk_size,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::cid_raw;

    fn run(offset: u64, len: u64, cs: u64) -> Run {
        let chunks = (0..len.div_ceil(cs))
            .map(|i| cid_raw(&(offset + i).to_be_bytes()))
            .collect();
        Run {
            offset,
            len,
            chunk_size: cs,
            chunks,
        }
    }

    #[test]
    fn part_bodies_round_trip_and_refuse_gaps() {
        let body = PartBody {
            runs: vec![run(0, 10, 4), run(10, 3, 1)],
            checksum: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32,
                kind: ChecksumType::FullObject,
                value: vec![1, 2, 3, 4],
            }),
        };
        let bytes = body.encode();
        assert_eq!(PartBody::decode(&bytes).unwrap(), body);
        assert_eq!(body.size(), 13);
        let empty = PartBody::default();
        assert_eq!(PartBody::decode(&empty.encode()).unwrap(), empty);

        let gap = PartBody {
            runs: vec![run(0, 10, 4), run(11, 3, 1)],
            checksum: None,
        };
        assert!(PartBody::decode(&gap.encode()).is_err());
        let mut short = bytes.clone();
        short.truncate(bytes.len() - 3);
        assert!(PartBody::decode(&short).is_err());
    }

    #[test]
    fn templates_round_trip_with_and_without_a_checksum() {
        let mut m = ObjectManifest::new("a/b".into(), 0, [0; 16], 7, None);
        m.headers.content_type = Some("text/plain".into());
        m.headers.meta.insert("k".into(), "v".into());
        for checksum in [
            None,
            Some((ChecksumAlgorithm::Sha256, ChecksumType::Composite)),
        ] {
            let t = UploadTemplate {
                manifest: m.clone(),
                checksum,
            };
            assert_eq!(UploadTemplate::decode(&t.encode()).unwrap(), t);
        }
    }
}
