//! The additional checksums of S3 (CRC32, CRC32C, SHA1, SHA256, CRC64NVME): computing
//! one over a body, and the two ways a multipart object's checksum is made from its
//! parts' — a composite (the checksum of the concatenated part checksums, shown with a
//! `-N` suffix) or, for the CRCs, the full-object value combined from the parts' CRCs
//! and lengths without reading a byte.

use crate::format::{Checksum, ChecksumAlgorithm, ChecksumType};
use crc_fast::CrcAlgorithm;
use sha2::Digest as _;

/// A running checksum of one algorithm.
pub struct ChecksumHasher {
    algorithm: ChecksumAlgorithm,
    state: State,
}

enum State {
    Crc(crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn crc_algorithm(a: ChecksumAlgorithm) -> Option<CrcAlgorithm> {
    match a {
        ChecksumAlgorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// A CRC's value as S3 shows it: big-endian, 4 or 8 bytes.
fn crc_bytes(a: ChecksumAlgorithm, v: u64) -> Vec<u8> {
    match a.value_len() {
        4 => (v as u32).to_be_bytes().to_vec(),
        _ => v.to_be_bytes().to_vec(),
    }
}

fn crc_value(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

impl ChecksumHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match (algorithm, crc_algorithm(algorithm)) {
            (_, Some(crc)) => State::Crc(crc_fast::Digest::new(crc)),
            (ChecksumAlgorithm::Sha1, None) => State::Sha1(sha1::Sha1::new()),
            _ => State::Sha256(sha2::Sha256::new()),
        };
        Self { algorithm, state }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc(d) => d.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// The raw checksum value (big-endian for the CRCs).
    pub fn finalize(self) -> Vec<u8> {
        match self.state {
            State::Crc(d) => crc_bytes(self.algorithm, d.finalize()),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        }
    }

    /// The checksum of `data` in one call.
    pub fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut h = Self::new(algorithm);
        h.update(data);
        h.finalize()
    }
}

/// Whether an algorithm can give a full-object checksum of a multipart object (only
/// the CRCs combine).
pub fn supports_full_object(a: ChecksumAlgorithm) -> bool {
    crc_algorithm(a).is_some()
}

/// A multipart object's checksum from its parts' checksums and lengths, in part order.
/// `None` when a part value has the wrong length or the algorithm cannot make a
/// full-object checksum.
pub fn combine_parts(
    algorithm: ChecksumAlgorithm,
    kind: ChecksumType,
    parts: &[(&[u8], u64)],
) -> Option<Checksum> {
    if parts.iter().any(|(v, _)| v.len() != algorithm.value_len()) {
        return None;
    }
    let value = match kind {
        ChecksumType::Composite => {
            let mut h = ChecksumHasher::new(algorithm);
            for (v, _) in parts {
                h.update(v);
            }
            h.finalize()
        }
        ChecksumType::FullObject => {
            let crc = crc_algorithm(algorithm)?;
            let mut acc: Option<u64> = None;
            for (v, len) in parts {
                let part = crc_value(v)?;
                acc = Some(match acc {
                    None => part,
                    Some(a) => crc_fast::checksum_combine(crc, a, part, *len),
                });
            }
            // No parts: the CRC of the empty body.
            crc_bytes(
                algorithm,
                acc.unwrap_or_else(|| crc_fast::checksum(crc, b"")),
            )
        }
    };
    Some(Checksum {
        algorithm,
        kind,
        value,
    })
}

/// The MD5 a manifest records: of the whole body, or of the part MD5s of a multipart
/// body (fed the body's bytes in order, split at the part sizes).
pub(crate) struct PartMd5s {
    whole: md5::Md5,
    /// Part sizes still to come (the first is the current part's remaining length).
    parts: Option<std::collections::VecDeque<u64>>,
    digests: Vec<u8>,
}

impl PartMd5s {
    pub(crate) fn new(parts: Option<Vec<u64>>) -> Self {
        Self {
            whole: md5::Md5::new(),
            parts: parts.map(Into::into),
            digests: Vec::new(),
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        let Some(parts) = &mut self.parts else {
            self.whole.update(data);
            return;
        };
        while let Some(left) = parts.front_mut() {
            let take = (*left).min(data.len() as u64) as usize;
            self.whole.update(&data[..take]);
            *left -= take as u64;
            data = &data[take..];
            if *left > 0 {
                return;
            }
            parts.pop_front();
            let part = std::mem::take(&mut self.whole);
            self.digests.extend_from_slice(&part.finalize());
        }
        // Bytes past the last part: fold them in so the result cannot match.
        self.whole.update(data);
        if !data.is_empty() {
            self.digests.push(0);
        }
    }

    pub(crate) fn finish(mut self) -> [u8; 16] {
        match self.parts.take() {
            None => self.whole.finalize().into(),
            Some(rest) => {
                // Parts the bytes never reached (empty ones, or a short body).
                for _ in rest {
                    let part = std::mem::take(&mut self.whole);
                    self.digests.extend_from_slice(&part.finalize());
                }
                md5::Md5::digest(&self.digests).into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    #[test]
    fn known_values_of_hello() {
        assert_eq!(
            ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"hello"),
            0x3610_a686u32.to_be_bytes()
        );
        assert_eq!(
            ChecksumHasher::digest(ChecksumAlgorithm::Crc32c, b"hello"),
            0x9a71_bb4cu32.to_be_bytes()
        );
        let sha1 = ChecksumHasher::digest(ChecksumAlgorithm::Sha1, b"hello");
        assert_eq!(sha1[..4], [0xaa, 0xf4, 0xc6, 0x1d]);
        for a in ALL {
            assert_eq!(ChecksumHasher::digest(a, b"hello").len(), a.value_len());
        }
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_the_whole_body() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let cuts = [0usize, 1, 40_000, 40_001, 99_999, 100_000];
        for a in ALL.into_iter().filter(|a| supports_full_object(*a)) {
            let values: Vec<(Vec<u8>, u64)> = cuts
                .windows(2)
                .map(|w| {
                    let piece = &body[w[0]..w[1]];
                    (ChecksumHasher::digest(a, piece), piece.len() as u64)
                })
                .collect();
            let parts: Vec<(&[u8], u64)> = values.iter().map(|(v, n)| (&v[..], *n)).collect();
            let c = combine_parts(a, ChecksumType::FullObject, &parts).unwrap();
            assert_eq!(c.value, ChecksumHasher::digest(a, &body), "{a:?}");
        }
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        let a = ChecksumAlgorithm::Sha256;
        let p1 = ChecksumHasher::digest(a, b"part one");
        let p2 = ChecksumHasher::digest(a, b"part two");
        let c = combine_parts(a, ChecksumType::Composite, &[(&p1, 8), (&p2, 8)]).unwrap();
        assert_eq!(c.value, ChecksumHasher::digest(a, &[p1, p2].concat()));
        assert_eq!(c.kind, ChecksumType::Composite);
    }

    #[test]
    fn sha_cannot_be_full_object_and_wrong_lengths_are_refused() {
        let v = ChecksumHasher::digest(ChecksumAlgorithm::Sha1, b"x");
        assert!(
            combine_parts(
                ChecksumAlgorithm::Sha1,
                ChecksumType::FullObject,
                &[(&v, 1)]
            )
            .is_none()
        );
        assert!(
            combine_parts(
                ChecksumAlgorithm::Crc32,
                ChecksumType::Composite,
                &[(&v, 1)]
            )
            .is_none()
        );
    }
}
