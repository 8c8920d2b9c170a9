//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts and ListMultipartUploads.

use crate::checksum::{ExpectedChecksum, decode_value, echo_checksum};
use crate::conditions::Conditions;
use crate::handler::{IngotS3, engine_err, invalid_argument, timestamp};
use crate::objects::{
    MAX_PUT_BYTES, declared_length, decode_md5_header, signed_sha256, stored_headers,
    write_condition,
};
use crate::settings::{check_storage, object_acl, object_storage, refuse_tags};
use engine::checksum::supports_full_object;
use engine::format::{Checksum, ChecksumAlgorithm as Algo, ChecksumType as Kind};
use engine::{CompleteOptions, CompletePart, MAX_PARTS, PartInfo, PutOptions, UploadListing};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

/// Parts or uploads one listing page holds at most.
const MAX_PAGE: usize = 1000;

fn invalid_request(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg.into())
}

fn malformed_xml() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// The checksum algorithm and type an upload is created with (`None`: no checksum).
fn upload_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(Algo, Kind)>> {
    let Some(a) = algorithm else {
        return match kind {
            Some(_) => Err(invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
            )),
            None => Ok(None),
        };
    };
    let a = Algo::parse(&a.as_str().to_ascii_uppercase()).ok_or_else(|| {
        invalid_request(format!(
            "Checksum algorithm {} is not supported.",
            a.as_str()
        ))
    })?;
    let kind = match kind {
        None if a == Algo::Crc64Nvme => Kind::FullObject,
        None => Kind::Composite,
        Some(k) => Kind::parse(&k.as_str().to_ascii_uppercase()).ok_or_else(|| {
            invalid_request(format!("Checksum type {} is not supported.", k.as_str()))
        })?,
    };
    let ok = match kind {
        Kind::FullObject => supports_full_object(a),
        Kind::Composite => a != Algo::Crc64Nvme,
    };
    if !ok {
        return Err(invalid_request(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.as_str(),
            a.as_str().to_ascii_lowercase()
        )));
    }
    Ok(Some((a, kind)))
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            invalid_argument(format!(
                "Part number must be an integer between 1 and {MAX_PARTS}, inclusive"
            ))
        })
}

/// `bytes=first-last` of a copy source of `size` bytes, as `[start, end)`.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(r) = range else {
        if size > MAX_PUT_BYTES {
            return Err(invalid_request(format!(
                "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PUT_BYTES}"
            )));
        }
        return Ok((0, size));
    };
    let bad = || {
        invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (first, last) = r
        .trim()
        .strip_prefix("bytes=")
        .and_then(|v| v.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(invalid_argument(format!(
            "Range specified is not valid for source object of size: {size}"
        )));
    }
    if last - first + 1 > MAX_PUT_BYTES {
        return Err(invalid_argument("A part may be at most 5 GiB"));
    }
    Ok((first, last + 1))
}

/// The checksum fields of a part, an object, or a Complete request, by algorithm.
struct ChecksumFields<'a> {
    crc32: Option<&'a String>,
    crc32c: Option<&'a String>,
    crc64nvme: Option<&'a String>,
    sha1: Option<&'a String>,
    sha256: Option<&'a String>,
}

macro_rules! checksum_fields {
    ($x:expr) => {
        ChecksumFields {
            crc32: $x.checksum_crc32.as_ref(),
            crc32c: $x.checksum_crc32c.as_ref(),
            crc64nvme: $x.checksum_crc64nvme.as_ref(),
            sha1: $x.checksum_sha1.as_ref(),
            sha256: $x.checksum_sha256.as_ref(),
        }
    };
}

impl ChecksumFields<'_> {
    /// The one value given, with its algorithm.
    fn one(&self) -> S3Result<Option<(Algo, &str)>> {
        let all = [
            (Algo::Crc32, self.crc32),
            (Algo::Crc32c, self.crc32c),
            (Algo::Crc64Nvme, self.crc64nvme),
            (Algo::Sha1, self.sha1),
            (Algo::Sha256, self.sha256),
        ];
        let mut given = all
            .into_iter()
            .filter_map(|(a, v)| v.map(|v| (a, v.as_str())));
        let first = given.next();
        if given.next().is_some() {
            return Err(invalid_request(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
        Ok(first)
    }
}

/// The object checksum a Complete request names: `value` for a full-object checksum,
/// `value-N` for a composite one.
fn expected_checksum(
    fields: ChecksumFields<'_>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<Checksum>> {
    let Some((algorithm, text)) = fields.one()? else {
        return Ok(None);
    };
    let (value, composite) = match text.rsplit_once('-') {
        Some((v, n)) if n.parse::<u32>().is_ok() => (v, true),
        _ => (text, false),
    };
    let kind = match kind.map(|k| k.as_str().to_ascii_uppercase()) {
        Some(k) => Kind::parse(&k)
            .ok_or_else(|| invalid_request(format!("Checksum type {k} is not supported.")))?,
        None if composite => Kind::Composite,
        None => Kind::FullObject,
    };
    Ok(Some(Checksum {
        algorithm,
        kind,
        value: decode_value(algorithm, value)?,
    }))
}

fn wire_algorithm(a: Algo) -> ChecksumAlgorithm {
    ChecksumAlgorithm::from(a.as_str().to_owned())
}

fn wire_kind(k: Kind) -> ChecksumType {
    ChecksumType::from(k.as_str().to_owned())
}

impl IngotS3 {
    fn initiator(&self) -> Initiator {
        let o = self.owner();
        Initiator {
            display_name: o.display_name,
            id: o.id,
        }
    }

    pub(crate) async fn create_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let mut input = req.input;
        self.check_write_acl(&object_acl!(input))?;
        refuse_tags(input.tagging.as_deref())?;
        check_storage(&object_storage!(input))?;
        let checksum = upload_checksum(
            input.checksum_algorithm.as_ref(),
            input.checksum_type.as_ref(),
        )?;
        let opts = PutOptions {
            headers: stored_headers!(input),
            ..PutOptions::default()
        };
        let up = self
            .engine()?
            .create_upload(&input.bucket, &input.key, &opts, checksum)
            .await
            .map_err(engine_err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(up.upload_id),
            checksum_algorithm: checksum.map(|(a, _)| wire_algorithm(a)),
            checksum_type: checksum.map(|(_, k)| wire_kind(k)),
            ..Default::default()
        }))
    }

    pub(crate) async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let engine = self.engine()?.clone();
        let mut input = req.input;
        let n = part_number(input.part_number)?;
        let length = declared_length(input.content_length, &req.headers)?;
        let up = engine
            .upload(&input.bucket, Some(&input.key), &input.upload_id)
            .await
            .map_err(engine_err)?;
        let checksum = ExpectedChecksum::from_request(&req.headers, req.trailing_headers.as_ref())?;
        if let (Some(c), Some((a, _))) = (&checksum, up.template.checksum)
            && c.algorithm() != a
        {
            return Err(invalid_request(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                a.as_str().to_ascii_lowercase(),
                c.algorithm().as_str().to_ascii_lowercase()
            )));
        }
        let opts = PutOptions {
            content_length: Some(length),
            content_md5: decode_md5_header(input.content_md5.as_deref())?,
            content_sha256: signed_sha256(&req.headers)?,
            late_checksum: checksum.as_ref().map(ExpectedChecksum::result),
            ..PutOptions::default()
        };
        let (b, k, id) = (&input.bucket, &input.key, &input.upload_id);
        let part = self
            .with_body(input.body.take(), checksum, |rx| {
                engine.upload_part(b, k, id, n, opts, rx)
            })
            .await?;
        let mut out = UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag.clone())),
            ..Default::default()
        };
        if let Some(c) = &part.checksum {
            echo_checksum!(out, c, None);
        }
        Ok(S3Response::new(out))
    }

    pub(crate) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = &req.input;
        let n = part_number(input.part_number)?;
        let conditions = Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        let (src_bucket, _, src) = self.copy_source(&input.copy_source, conditions).await?;
        let range = copy_range(input.copy_source_range.as_deref(), src.manifest.size)?;
        let part = self
            .engine()?
            .upload_part_copy(
                &input.bucket,
                &input.key,
                &input.upload_id,
                n,
                &src_bucket,
                &src,
                range,
            )
            .await
            .map_err(engine_err)?;
        let mut result = CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag.clone())),
            last_modified: Some(timestamp(part.mtime_ms)),
            ..Default::default()
        };
        if let Some(c) = &part.checksum {
            echo_checksum!(result, c, None);
        }
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            ..Default::default()
        }))
    }

    pub(crate) async fn complete_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(malformed_xml)?;
        if listed.len() > MAX_PARTS as usize {
            return Err(invalid_argument(format!(
                "An upload has at most {MAX_PARTS} parts"
            )));
        }
        let mut parts = Vec::with_capacity(listed.len());
        for p in &listed {
            let number = p.part_number.ok_or_else(malformed_xml)?;
            let etag = p.e_tag.as_ref().ok_or_else(malformed_xml)?;
            let checksum = match checksum_fields!(p).one()? {
                Some((a, v)) => Some(decode_value(a, v)?),
                None => None,
            };
            parts.push(CompletePart {
                part_number: u32::try_from(number)
                    .map_err(|_| invalid_argument("bad part number"))?,
                etag: etag.value().to_owned(),
                checksum,
            });
        }
        let opts = CompleteOptions {
            checksum: expected_checksum(checksum_fields!(input), input.checksum_type.as_ref())?,
            condition: write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?,
            object_size: input.mpu_object_size.map(|n| n.max(0) as u64),
        };
        let info = self
            .engine()?
            .complete_upload(&input.bucket, &input.key, &input.upload_id, parts, opts)
            .await
            .map_err(engine_err)?;
        let m = &info.manifest;
        let host = req
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok());
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(m.etag.clone())),
            location: host.map(|h| {
                format!(
                    "http://{h}/{}/{}",
                    input.bucket,
                    urlencoding::encode(&input.key)
                )
            }),
            ..Default::default()
        };
        if let Some(c) = &m.checksum {
            echo_checksum!(out, c, m.parts.as_ref().map(Vec::len));
            out.checksum_type = Some(wire_kind(c.kind));
        }
        Ok(S3Response::new(out))
    }

    pub(crate) async fn abort_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = &req.input;
        self.engine()?
            .abort_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(engine_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = page_size(input.max_parts, "max-parts")?;
        let marker = match input.part_number_marker {
            Some(m) if m < 0 => {
                return Err(invalid_argument("part-number-marker must not be negative"));
            }
            m => m.unwrap_or(0),
        };
        let (up, all) = self
            .engine()?
            .list_parts(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(engine_err)?;
        let mut page: Vec<PartInfo> = all
            .into_iter()
            .filter(|p| i64::from(p.part_number) > i64::from(marker))
            .collect();
        let truncated = page.len() > max;
        page.truncate(max);
        let next = page.last().map(|p| p.part_number as i32);
        let parts = page.iter().map(part_entry).collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            initiator: Some(self.initiator()),
            owner: Some(self.owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: up.template.checksum.map(|(a, _)| wire_algorithm(a)),
            checksum_type: up.template.checksum.map(|(_, k)| wire_kind(k)),
            ..Default::default()
        }))
    }

    pub(crate) async fn list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max = page_size(input.max_uploads, "max-uploads")?;
        let enc = crate::list::Encoding::of(input.encoding_type.as_ref())?;
        let listing = UploadListing {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            key_marker: input.key_marker.clone(),
            upload_id_marker: input.upload_id_marker.clone(),
            max_uploads: max,
        };
        let page = self
            .engine()?
            .list_uploads_page(&input.bucket, &listing)
            .await
            .map_err(engine_err)?;
        let uploads = page
            .uploads
            .iter()
            .map(|u| MultipartUpload {
                key: Some(enc.apply(u.key.clone())),
                upload_id: Some(u.upload_id.clone()),
                initiated: Some(timestamp(u.created_ms)),
                initiator: Some(self.initiator()),
                owner: Some(self.owner()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: u.template.checksum.map(|(a, _)| wire_algorithm(a)),
                checksum_type: u.template.checksum.map(|(_, k)| wire_kind(k)),
            })
            .collect();
        let prefixes = page
            .prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc.apply(p)),
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            uploads: Some(uploads),
            common_prefixes: Some(prefixes),
            is_truncated: Some(page.truncated),
            next_key_marker: enc.opt(page.next_key_marker),
            next_upload_id_marker: page.next_upload_id_marker,
            key_marker: enc.opt(input.key_marker),
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            prefix: enc.opt(input.prefix),
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

fn page_size(v: Option<i32>, what: &str) -> S3Result<usize> {
    match v {
        None => Ok(MAX_PAGE),
        Some(n) if n < 0 => Err(invalid_argument(format!("{what} must not be negative"))),
        Some(n) => Ok((n as usize).min(MAX_PAGE)),
    }
}

fn part_entry(p: &PartInfo) -> Part {
    let mut out = Part {
        part_number: Some(p.part_number as i32),
        e_tag: Some(ETag::Strong(p.etag.clone())),
        size: Some(p.size as i64),
        last_modified: Some(timestamp(p.mtime_ms)),
        ..Default::default()
    };
    if let Some(c) = &p.checksum {
        echo_checksum!(out, c, None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_types_follow_the_algorithm() {
        let a = ChecksumAlgorithm::from_static(ChecksumAlgorithm::CRC64NVME);
        assert_eq!(
            upload_checksum(Some(&a), None).unwrap(),
            Some((Algo::Crc64Nvme, Kind::FullObject))
        );
        let a = ChecksumAlgorithm::from_static(ChecksumAlgorithm::SHA256);
        assert_eq!(
            upload_checksum(Some(&a), None).unwrap(),
            Some((Algo::Sha256, Kind::Composite))
        );
        let full = ChecksumType::from_static(ChecksumType::FULL_OBJECT);
        assert!(upload_checksum(Some(&a), Some(&full)).is_err());
        assert!(upload_checksum(None, Some(&full)).is_err());
    }

    #[test]
    fn copy_ranges_are_inclusive_and_bounded() {
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), (0, 10));
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert!(copy_range(Some("bytes=0-10"), 10).is_err());
        assert!(copy_range(Some("bytes=5-4"), 10).is_err());
        assert!(copy_range(Some("0-4"), 10).is_err());
    }
}
