//! The object manifest: `{"/objectmanifest/1": {...}}`, the value under each key.

use super::{check_cbor_link, open_union, required, write_union};
use crate::block::cid_dag_cbor;
use crate::cbor::{self, DecodeError, Decoder};
use crate::mst::validate_key;
use cid::Cid;
use std::collections::BTreeMap;

pub const MANIFEST_TAG: &str = "/objectmanifest/1";

/// An additional checksum algorithm (`x-amz-checksum-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Crc64Nvme => "CRC64NVME",
        }
    }

    /// Length of the raw checksum value in bytes.
    pub fn value_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Crc64Nvme => 8,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Crc32,
            Self::Crc32c,
            Self::Sha1,
            Self::Sha256,
            Self::Crc64Nvme,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// Whether a checksum covers the whole object or is a checksum of part checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullObject => "FULL_OBJECT",
            Self::Composite => "COMPOSITE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FULL_OBJECT" => Some(Self::FullObject),
            "COMPOSITE" => Some(Self::Composite),
            _ => None,
        }
    }
}

/// The additional checksum a client sent, as it will be echoed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub kind: ChecksumType,
    /// The raw checksum bytes (S3 shows them base64-encoded).
    pub value: Vec<u8>,
}

/// The headers and user metadata an object is stored with and served back with: what
/// a PUT sets, a multipart upload fixes at creation, and a copy keeps or replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub website_redirect: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-cased, without the prefix.
    pub meta: BTreeMap<String, String>,
}

/// Everything S3 knows about an object except its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectManifest {
    pub key: String,
    /// Body length in bytes.
    pub size: u64,
    /// The ETag as served, without quotes: hex MD5, or hex MD5 of part MD5s + `-N`.
    pub etag: String,
    /// MD5 of the whole body.
    pub md5: [u8; 16],
    /// SHA-256 of the whole body, when it was computed anyway.
    pub sha256: Option<[u8; 32]>,
    /// Last-modified, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    pub headers: ObjectHeaders,
    pub checksum: Option<Checksum>,
    /// The chunk index; `None` exactly when the body is empty.
    pub body: Option<Cid>,
    /// Part sizes of a multipart object, in order.
    pub parts: Option<Vec<u64>>,
    /// The multipart upload that made this object (lets a repeated Complete of the
    /// same upload be answered with it).
    pub upload_id: Option<String>,
}

fn opt_text(buf: &mut Vec<u8>, n: &mut usize, name: &str, v: &Option<String>) {
    if let Some(s) = v {
        cbor::write_text(buf, name);
        cbor::write_text(buf, s);
        *n += 1;
    }
}

impl ObjectManifest {
    /// A single-part object without system headers, metadata or checksum: the ETag is
    /// the hex MD5 of the body.
    pub fn new(key: String, size: u64, md5: [u8; 16], mtime_ms: u64, body: Option<Cid>) -> Self {
        Self {
            key,
            size,
            etag: crate::hex::encode(&md5),
            md5,
            sha256: None,
            mtime_ms,
            headers: ObjectHeaders::default(),
            checksum: None,
            body,
            parts: None,
            upload_id: None,
        }
    }

    /// Canonical encoding. Keys in DAG-CBOR order: b e h k m p s t u, then
    /// cc cd ce ck cl ct ex md wr. Absent optional fields are omitted.
    pub fn encode(&self) -> Vec<u8> {
        let mut fields = Vec::with_capacity(256);
        let mut n = 0;
        cbor::write_text(&mut fields, "b");
        cbor::write_opt_link(&mut fields, self.body.as_ref());
        cbor::write_text(&mut fields, "e");
        cbor::write_text(&mut fields, &self.etag);
        n += 2;
        if let Some(h) = &self.sha256 {
            cbor::write_text(&mut fields, "h");
            cbor::write_bytes(&mut fields, h);
            n += 1;
        }
        cbor::write_text(&mut fields, "k");
        cbor::write_text(&mut fields, &self.key);
        cbor::write_text(&mut fields, "m");
        cbor::write_bytes(&mut fields, &self.md5);
        n += 2;
        if let Some(parts) = &self.parts {
            cbor::write_text(&mut fields, "p");
            cbor::write_array(&mut fields, parts.len());
            for p in parts {
                cbor::write_uint(&mut fields, *p);
            }
            n += 1;
        }
        cbor::write_text(&mut fields, "s");
        cbor::write_uint(&mut fields, self.size);
        cbor::write_text(&mut fields, "t");
        cbor::write_uint(&mut fields, self.mtime_ms);
        n += 2;
        if let Some(u) = &self.upload_id {
            cbor::write_text(&mut fields, "u");
            cbor::write_text(&mut fields, u);
            n += 1;
        }
        let h = &self.headers;
        opt_text(&mut fields, &mut n, "cc", &h.cache_control);
        opt_text(&mut fields, &mut n, "cd", &h.content_disposition);
        opt_text(&mut fields, &mut n, "ce", &h.content_encoding);
        if let Some(c) = &self.checksum {
            cbor::write_text(&mut fields, "ck");
            write_checksum(&mut fields, c);
            n += 1;
        }
        opt_text(&mut fields, &mut n, "cl", &h.content_language);
        opt_text(&mut fields, &mut n, "ct", &h.content_type);
        opt_text(&mut fields, &mut n, "ex", &h.expires);
        if !h.meta.is_empty() {
            cbor::write_text(&mut fields, "md");
            cbor::write_map(&mut fields, h.meta.len());
            let mut names: Vec<&String> = h.meta.keys().collect();
            names.sort_by(|a, b| cbor::canonical_key_cmp(a, b));
            for name in names {
                cbor::write_text(&mut fields, name);
                cbor::write_text(&mut fields, &h.meta[name]);
            }
            n += 1;
        }
        opt_text(&mut fields, &mut n, "wr", &h.website_redirect);

        let mut buf = Vec::with_capacity(fields.len() + 24);
        write_union(&mut buf, MANIFEST_TAG);
        cbor::write_map(&mut buf, n);
        buf.extend_from_slice(&fields);
        buf
    }

    /// The block's CID.
    pub fn cid(&self) -> Cid {
        cid_dag_cbor(&self.encode())
    }

    /// Strict decoding of an untrusted manifest block.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        open_union(&mut d, MANIFEST_TAG)?;
        let n = d.map()?;
        let mut prev = None;
        let mut m = Partial::default();
        for _ in 0..n {
            let k = d.key(&mut prev)?;
            m.field(k, &mut d)?;
        }
        d.finish()?;
        let manifest = m.finish()?;
        if manifest.encode() != bytes {
            return Err(DecodeError::schema("manifest is not in canonical form"));
        }
        Ok(manifest)
    }
}

#[derive(Default)]
struct Partial {
    body: Option<Option<Cid>>,
    etag: Option<String>,
    sha256: Option<[u8; 32]>,
    key: Option<String>,
    md5: Option<[u8; 16]>,
    parts: Option<Vec<u64>>,
    size: Option<u64>,
    mtime_ms: Option<u64>,
    upload_id: Option<String>,
    texts: BTreeMap<&'static str, String>,
    checksum: Option<Checksum>,
    meta: BTreeMap<String, String>,
}

fn fixed<const N: usize>(d: &mut Decoder<'_>, what: &str) -> Result<[u8; N], DecodeError> {
    d.bytes()?
        .try_into()
        .map_err(|_| DecodeError::schema(format!("{what} must be {N} bytes")))
}

fn non_empty_text(d: &mut Decoder<'_>, what: &str) -> Result<String, DecodeError> {
    let s = d.text()?;
    if s.is_empty() {
        return Err(DecodeError::schema(format!("{what} is present but empty")));
    }
    Ok(s.to_owned())
}

impl Partial {
    fn field(&mut self, k: &str, d: &mut Decoder<'_>) -> Result<(), DecodeError> {
        const TEXTS: [&str; 7] = ["cc", "cd", "ce", "cl", "ct", "ex", "wr"];
        match k {
            "b" => {
                let b = d.opt_link()?;
                if let Some(c) = &b {
                    check_cbor_link(c, "manifest body")?;
                }
                self.body = Some(b);
            }
            "e" => self.etag = Some(non_empty_text(d, "etag")?),
            "h" => self.sha256 = Some(fixed(d, "sha256")?),
            "k" => self.key = Some(d.text()?.to_owned()),
            "m" => self.md5 = Some(fixed(d, "md5")?),
            "p" => {
                let n = d.array()?;
                if n == 0 {
                    return Err(DecodeError::schema("parts is present but empty"));
                }
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(d.uint()?);
                }
                self.parts = Some(parts);
            }
            "s" => self.size = Some(d.uint()?),
            "t" => self.mtime_ms = Some(d.uint()?),
            "u" => self.upload_id = Some(non_empty_text(d, "upload id")?),
            "ck" => self.checksum = Some(decode_checksum(d)?),
            "md" => {
                let n = d.map()?;
                if n == 0 {
                    return Err(DecodeError::schema("meta is present but empty"));
                }
                let mut prev = None;
                for _ in 0..n {
                    let name = d.key(&mut prev)?.to_owned();
                    let value = d.text()?.to_owned();
                    self.meta.insert(name, value);
                }
            }
            other => match TEXTS.iter().find(|t| **t == other) {
                Some(t) => {
                    let v = non_empty_text(d, t)?;
                    self.texts.insert(t, v);
                }
                None => {
                    return Err(DecodeError::schema(format!(
                        "unknown manifest field {other:?}"
                    )));
                }
            },
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ObjectManifest, DecodeError> {
        let key = required(self.key, "k (key)")?;
        validate_key(key.as_bytes())
            .map_err(|e| DecodeError::schema(format!("manifest key: {e}")))?;
        let size = required(self.size, "s (size)")?;
        let body = required(self.body, "b (body)")?;
        if body.is_none() != (size == 0) {
            return Err(DecodeError::schema(
                "body must be null exactly when size is 0",
            ));
        }
        if let Some(parts) = &self.parts {
            let total = parts.iter().try_fold(0u64, |a, p| a.checked_add(*p));
            if total != Some(size) {
                return Err(DecodeError::schema("part sizes do not add up to the size"));
            }
        }
        let mut text = |k: &str| self.texts.remove(k);
        Ok(ObjectManifest {
            key,
            size,
            etag: required(self.etag, "e (etag)")?,
            md5: required(self.md5, "m (md5)")?,
            sha256: self.sha256,
            mtime_ms: required(self.mtime_ms, "t (mtime)")?,
            headers: ObjectHeaders {
                cache_control: text("cc"),
                content_disposition: text("cd"),
                content_encoding: text("ce"),
                content_language: text("cl"),
                content_type: text("ct"),
                expires: text("ex"),
                website_redirect: text("wr"),
                meta: self.meta,
            },
            checksum: self.checksum,
            body,
            parts: self.parts,
            upload_id: self.upload_id,
        })
    }
}

/// `{"a": algorithm, "t": type, "v": bytes}`.
pub(crate) fn write_checksum(buf: &mut Vec<u8>, c: &Checksum) {
    cbor::write_map(buf, 3);
    cbor::write_text(buf, "a");
    cbor::write_text(buf, c.algorithm.as_str());
    cbor::write_text(buf, "t");
    cbor::write_text(buf, c.kind.as_str());
    cbor::write_text(buf, "v");
    cbor::write_bytes(buf, &c.value);
}

pub(crate) fn decode_checksum(d: &mut Decoder<'_>) -> Result<Checksum, DecodeError> {
    if d.map()? != 3 {
        return Err(DecodeError::schema(
            "checksum must be a map of exactly a, t, v",
        ));
    }
    d.expect_key("a")?;
    let a = d.text()?;
    let algorithm = ChecksumAlgorithm::parse(a)
        .ok_or_else(|| DecodeError::schema(format!("unknown checksum algorithm {a:?}")))?;
    d.expect_key("t")?;
    let t = d.text()?;
    let kind = ChecksumType::parse(t)
        .ok_or_else(|| DecodeError::schema(format!("unknown checksum type {t:?}")))?;
    d.expect_key("v")?;
    let value = d.bytes()?.to_vec();
    if value.len() != algorithm.value_len() {
        return Err(DecodeError::schema(format!(
            "{} checksum must be {} bytes",
            algorithm.as_str(),
            algorithm.value_len()
        )));
    }
    Ok(Checksum {
        algorithm,
        kind,
        value,
    })
}
