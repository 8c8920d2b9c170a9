//! The additional checksums of S3 (CRC32, CRC32C, SHA1, SHA256, CRC64NVME): which one
//! a PUT carries (a header, or a trailer after an aws-chunked body), computing it over
//! the body, and checking it before the body is accepted.

use engine::checksum::ChecksumHasher;
use engine::format::{Checksum, ChecksumAlgorithm, ChecksumType};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};

/// Where the client's value for the checksum comes from.
enum Expected {
    /// A request header, already decoded.
    Value(Vec<u8>),
    /// A trailer after the body (`x-amz-trailer`), read once the body has ended.
    Trailer(TrailingHeaders, String),
    /// Only an algorithm was named: compute and store, nothing to check.
    Compute,
}

/// The checksum a PUT must match, computed while the body streams.
pub struct ExpectedChecksum {
    algorithm: ChecksumAlgorithm,
    hasher: ChecksumHasher,
    expected: Expected,
    /// The value once verified, to be stored with the object.
    shared: std::sync::Arc<std::sync::Mutex<Option<Checksum>>>,
}

impl std::fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedChecksum")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The header that carries an algorithm's value.
pub fn header_name(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
    }
}

const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
    ChecksumAlgorithm::Crc64Nvme,
];

fn invalid(msg: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg)
}

/// Decodes a base64 checksum value of the algorithm's length.
pub fn decode_value(a: ChecksumAlgorithm, v: &str) -> S3Result<Vec<u8>> {
    let bytes = base64_simd::STANDARD
        .decode_to_vec(v.trim())
        .map_err(|_| invalid(format!("Value for {} header is invalid.", header_name(a))))?;
    if bytes.len() != a.value_len() {
        return Err(invalid(format!(
            "Value for {} header is invalid.",
            header_name(a)
        )));
    }
    Ok(bytes)
}

pub fn encode_value(v: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(v)
}

/// A stored checksum as S3 shows it: base64, and for a composite checksum of a
/// multipart object the part count after a dash.
pub fn checksum_text(c: &Checksum, parts: Option<usize>) -> String {
    match (c.kind, parts) {
        (ChecksumType::Composite, Some(n)) => format!("{}-{n}", encode_value(&c.value)),
        _ => encode_value(&c.value),
    }
}

impl ExpectedChecksum {
    /// What the request asks for: at most one checksum header, or a trailer, or an
    /// algorithm alone. `None` when the client sent no checksum at all.
    pub fn from_request(
        headers: &hyper::HeaderMap,
        trailers: Option<&TrailingHeaders>,
    ) -> S3Result<Option<Self>> {
        let mut found = None;
        for a in ALGORITHMS {
            if let Some(v) = headers.get(header_name(a)) {
                if found.is_some() {
                    return Err(invalid(
                        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.".into(),
                    ));
                }
                let v = v
                    .to_str()
                    .map_err(|_| invalid("bad checksum header".into()))?;
                found = Some((a, Expected::Value(decode_value(a, v)?)));
            }
        }
        if found.is_none()
            && let Some(t) = headers.get("x-amz-trailer")
        {
            let name = t.to_str().unwrap_or_default().trim().to_ascii_lowercase();
            let a = ALGORITHMS
                .into_iter()
                .find(|a| header_name(*a) == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "The value specified in the x-amz-trailer header is not supported: {name}"
                    ))
                })?;
            let trailers = trailers
                .cloned()
                .ok_or_else(|| invalid("x-amz-trailer needs an aws-chunked body".into()))?;
            found = Some((a, Expected::Trailer(trailers, name)));
        }
        if found.is_none() {
            let algo = headers
                .get("x-amz-sdk-checksum-algorithm")
                .or_else(|| headers.get("x-amz-checksum-algorithm"));
            if let Some(v) = algo {
                let v = v.to_str().unwrap_or_default();
                let a = ChecksumAlgorithm::parse(&v.to_ascii_uppercase())
                    .ok_or_else(|| invalid(format!("Checksum algorithm {v} is not supported.")))?;
                found = Some((a, Expected::Compute));
            }
        }
        Ok(found.map(|(algorithm, expected)| Self {
            algorithm,
            hasher: ChecksumHasher::new(algorithm),
            expected,
            shared: Default::default(),
        }))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// The algorithm the client chose.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// A handle that holds the verified checksum once [`Self::verify`] succeeded.
    pub fn result(&self) -> std::sync::Arc<std::sync::Mutex<Option<Checksum>>> {
        self.shared.clone()
    }

    /// Checks the computed value against the client's; `BadDigest` when they differ.
    pub fn verify(self) -> S3Result<()> {
        let got = self.hasher.finalize();
        let expected = match self.expected {
            Expected::Value(v) => Some(v),
            Expected::Compute => None,
            Expected::Trailer(t, name) => {
                let v = t
                    .read(|h| {
                        h.get(name.as_str())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .flatten()
                    .ok_or_else(|| invalid(format!("The trailer {name} was not sent.")))?;
                Some(decode_value(self.algorithm, &v)?)
            }
        };
        if expected.is_some_and(|e| e != got) {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    self.algorithm.as_str()
                ),
            ));
        }
        if let Ok(mut slot) = self.shared.lock() {
            *slot = Some(Checksum {
                algorithm: self.algorithm,
                kind: ChecksumType::FullObject,
                value: got,
            });
        }
        Ok(())
    }
}

/// Sets the response field of a checksum's algorithm on any S3 output that has the
/// five `checksum_*` fields (PutObject, GetObject, HeadObject, CopyObjectResult, the
/// multipart outputs); `$parts` is the part count of a multipart object.
macro_rules! echo_checksum {
    ($out:expr, $c:expr, $parts:expr) => {{
        let c: &engine::format::Checksum = $c;
        let v = Some($crate::checksum::checksum_text(c, $parts));
        match c.algorithm {
            engine::format::ChecksumAlgorithm::Crc32 => $out.checksum_crc32 = v,
            engine::format::ChecksumAlgorithm::Crc32c => $out.checksum_crc32c = v,
            engine::format::ChecksumAlgorithm::Sha1 => $out.checksum_sha1 = v,
            engine::format::ChecksumAlgorithm::Sha256 => $out.checksum_sha256 = v,
            engine::format::ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64nvme = v,
        }
    }};
}
pub(crate) use echo_checksum;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(name: &str, value: &str) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_matching_crc32_verifies_and_a_wrong_one_is_bad_digest() {
        // CRC32 of "hello" is 0x3610a686.
        let ok = encode_value(&0x3610_a686u32.to_be_bytes());
        let mut c = ExpectedChecksum::from_request(&with_header("x-amz-checksum-crc32", &ok), None)
            .unwrap()
            .unwrap();
        let result = c.result();
        c.update(b"hel");
        c.update(b"lo");
        c.verify().unwrap();
        assert_eq!(
            result.lock().unwrap().as_ref().unwrap().value,
            0x3610_a686u32.to_be_bytes()
        );

        let mut c = ExpectedChecksum::from_request(&with_header("x-amz-checksum-crc32", &ok), None)
            .unwrap()
            .unwrap();
        c.update(b"hellO");
        assert_eq!(c.verify().unwrap_err().code(), &S3ErrorCode::BadDigest);
    }

    #[test]
    fn malformed_values_are_invalid_requests() {
        let e = ExpectedChecksum::from_request(&with_header("x-amz-checksum-sha256", "AAAA"), None)
            .unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::InvalidRequest);
    }
}
