//! PutObject, GetObject, HeadObject, DeleteObject(s) and CopyObject.

use crate::body::{PumpFailure, into_blob, pump};
use crate::checksum::{ExpectedChecksum, echo_checksum};
use crate::conditions::{Conditions, NotModified};
use crate::handler::{IngotS3, check_version, engine_err, invalid_argument, timestamp};
use crate::settings::{StorageHeaders, check_storage, object_acl, object_storage, refuse_tags};
use engine::format::ObjectManifest;
use engine::{ByteRange, EngineError, ObjectInfo, PutCondition, PutOptions};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use std::collections::BTreeMap;

pub use engine::MAX_PUT_BYTES;
/// User metadata limit (names and values, UTF-8 bytes).
const MAX_METADATA_BYTES: usize = 2048;
/// Keys a DeleteObjects request may name.
const MAX_DELETE_KEYS: usize = 1000;

pub(crate) fn decode_md5_header(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    v.map(decode_md5).transpose()
}

/// A body's declared length: required, and at most what one PUT or part may carry.
/// `content_length` is `Content-Length` (for an aws-chunked body, s3s has put the
/// decoded length there). An aws-chunked body may also come without `Content-Length`,
/// in `Transfer-Encoding: chunked` (botocore does so over HTTPS): then its
/// `x-amz-decoded-content-length`, which s3s's chunk decoder holds the body to, is the
/// declared length.
pub(crate) fn declared_length(
    content_length: Option<i64>,
    headers: &hyper::HeaderMap,
) -> S3Result<u64> {
    let aws_chunked = || {
        let decoded = headers.get("x-amz-decoded-content-length")?;
        let streaming = headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
        streaming.then(|| decoded.to_str().ok()?.parse::<i64>().ok())?
    };
    let length = match content_length.or_else(aws_chunked) {
        Some(n) if n >= 0 => n as u64,
        Some(_) => return Err(invalid_argument("Content-Length must not be negative")),
        None => return Err(S3Error::new(S3ErrorCode::MissingContentLength)),
    };
    if length > MAX_PUT_BYTES {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size",
        ));
    }
    Ok(length)
}

fn decode_md5(v: &str) -> S3Result<[u8; 16]> {
    base64_simd::STANDARD
        .decode_to_vec(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidDigest,
                "The Content-MD5 you specified was invalid.",
            )
        })
}

/// The hex SHA-256 a request was signed with, when it names the payload's hash.
pub(crate) fn signed_sha256(headers: &hyper::HeaderMap) -> S3Result<Option<[u8; 32]>> {
    let Some(v) = headers.get("x-amz-content-sha256") else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or_default();
    if v.len() != 64 {
        return Ok(None); // UNSIGNED-PAYLOAD, STREAMING-*: nothing to check here
    }
    let mut out = [0u8; 32];
    for (i, pair) in v.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok();
        out[i] = hex
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| invalid_argument("x-amz-content-sha256 must be 64 hex digits"))?;
    }
    Ok(Some(out))
}

pub(crate) fn metadata(m: Option<Metadata>) -> S3Result<BTreeMap<String, String>> {
    let m: BTreeMap<String, String> = m
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let bytes: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_METADATA_BYTES {
        return Err(S3Error::with_message(
            S3ErrorCode::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(m)
}

pub(crate) fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The headers and metadata a PutObject, CopyObject (replacing them) or
/// CreateMultipartUpload stores: s3s gives each its own input type, with the same field
/// names. Takes them out of `$input`; `?` on metadata over the size limit.
macro_rules! stored_headers {
    ($input:expr) => {
        engine::format::ObjectHeaders {
            content_type: $input.content_type.take(),
            content_encoding: $input.content_encoding.take(),
            content_disposition: $input.content_disposition.take(),
            content_language: $input.content_language.take(),
            cache_control: $input.cache_control.take(),
            expires: $input.expires.as_ref().and_then($crate::objects::http_date),
            website_redirect: $input.website_redirect_location.take(),
            meta: $crate::objects::metadata($input.metadata.take())?,
        }
    };
}
pub(crate) use stored_headers;

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// A conditional write's condition (PutObject, CompleteMultipartUpload).
pub(crate) fn write_condition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> S3Result<Option<PutCondition>> {
    let not_impl = |what: &str| {
        Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("{what} is not supported on writes."),
        ))
    };
    match (if_none_match, if_match) {
        (Some(_), Some(_)) => not_impl("If-Match together with If-None-Match"),
        (Some(ETagCondition::Any), None) => Ok(Some(PutCondition::IfNoneMatchAny)),
        (Some(_), None) => not_impl("If-None-Match with an ETag (only * is)"),
        (None, Some(ETagCondition::ETag(e))) => {
            Ok(Some(PutCondition::IfMatch(e.value().to_owned())))
        }
        (None, Some(ETagCondition::Any)) => not_impl("If-Match: *"),
        (None, None) => Ok(None),
    }
}

/// Headers of an object as S3 reports them on GET and HEAD.
struct ObjectHeaders {
    content_type: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
}

fn object_headers(m: &ObjectManifest) -> ObjectHeaders {
    let h = &m.headers;
    ObjectHeaders {
        content_type: Some(
            h.content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
        ),
        expires: h.expires.as_deref().and_then(parse_http_date),
        metadata: (!h.meta.is_empty()).then(|| h.meta.clone().into_iter().collect()),
    }
}

/// A GetObject or HeadObject answer for `m` (the fields both share, same names in
/// both types), with `len` body bytes and any extra fields (a GET's body). The stored
/// checksum is echoed when asked for and the whole object is answered.
macro_rules! object_output {
    ($ty:ident, $m:expr, $sel:expr, $len:expr, $want_checksum:expr $(, $extra:ident)*) => {{
        let m: &ObjectManifest = $m;
        let sel: &Selection = $sel;
        let h = object_headers(m);
        let mut out = $ty {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some($len as i64),
            content_range: content_range(sel.range, m.size),
            e_tag: Some(ETag::Strong(m.etag.clone())),
            last_modified: Some(timestamp(m.mtime_ms)),
            content_type: h.content_type,
            content_encoding: m.headers.content_encoding.clone(),
            content_disposition: m.headers.content_disposition.clone(),
            content_language: m.headers.content_language.clone(),
            cache_control: m.headers.cache_control.clone(),
            expires: h.expires,
            metadata: h.metadata,
            website_redirect_location: m.headers.website_redirect.clone(),
            parts_count: sel.parts_count,
            $($extra,)*
            ..Default::default()
        };
        if $want_checksum
            && sel.range.is_none()
            && let Some(c) = &m.checksum
        {
            echo_checksum!(out, c, m.parts.as_ref().map(Vec::len));
            out.checksum_type = Some(ChecksumType::from(c.kind.as_str().to_owned()));
        }
        out
    }};
}

/// The byte range of part `n` of an object (a single-part object has one part).
fn part_range(m: &ObjectManifest, n: i32) -> S3Result<(u64, u64, i32)> {
    let sizes = m.parts.clone().unwrap_or_else(|| vec![m.size]);
    let bad = || {
        let mut e = S3Error::with_message(
            crate::error::custom("InvalidPartNumber"),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(hyper::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    };
    let idx = usize::try_from(n)
        .ok()
        .filter(|i| (1..=sizes.len()).contains(i))
        .ok_or_else(bad)?;
    let start: u64 = sizes[..idx - 1].iter().sum();
    Ok((start, start + sizes[idx - 1], sizes.len() as i32))
}

fn byte_range(r: &Range) -> ByteRange {
    match *r {
        Range::Int {
            first,
            last: Some(last),
        } => ByteRange::FromTo { first, last },
        Range::Int { first, last: None } => ByteRange::From { first },
        Range::Suffix { length } => ByteRange::Suffix { len: length },
    }
}

/// What a GET or HEAD selects: the whole object, a Range, or a part.
struct Selection {
    /// `[start, end)`, when less than the whole object is answered (206).
    range: Option<(u64, u64)>,
    parts_count: Option<i32>,
}

/// The part count is reported only to a request naming a part, as S3 does.
fn select(m: &ObjectManifest, range: Option<&Range>, part: Option<i32>) -> S3Result<Selection> {
    match (range, part) {
        (Some(_), Some(_)) => Err(invalid_argument(
            "Range and partNumber cannot both be given",
        )),
        (Some(r), None) => {
            let (s, e) = byte_range(r).resolve(m.size).map_err(engine_err)?;
            Ok(Selection {
                range: Some((s, e)),
                parts_count: None,
            })
        }
        (None, Some(n)) => {
            let (s, e, count) = part_range(m, n)?;
            Ok(Selection {
                range: (m.parts.is_some() || s != 0 || e != m.size || m.size > 0).then_some((s, e)),
                parts_count: Some(count),
            })
        }
        (None, None) => Ok(Selection {
            range: None,
            parts_count: None,
        }),
    }
}

/// The bytes a GET of `sel` reads from an object of `size` bytes: `Some(None)` the
/// whole body, `Some(Some(range))` a range, `None` nothing (an empty object or an empty
/// part of one).
fn bytes_to_read(sel: &Selection, size: u64) -> Option<Option<ByteRange>> {
    match (sel.range, size) {
        (Some((s, e)), _) if s == e => None,
        (_, 0) => None,
        (range, _) => Some(range.map(|(s, e)| ByteRange::FromTo {
            first: s,
            last: e.saturating_sub(1),
        })),
    }
}

fn content_range(range: Option<(u64, u64)>, size: u64) -> Option<String> {
    range.map(|(s, e)| {
        if e > s {
            format!("bytes {s}-{}/{size}", e - 1)
        } else {
            format!("bytes */{size}")
        }
    })
}

impl IngotS3 {
    pub(crate) async fn put(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let engine = self.engine()?.clone();
        let mut input = req.input;
        if input.write_offset_bytes.is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Appends (x-amz-write-offset-bytes) are not supported.",
            ));
        }
        self.check_write_acl(&object_acl!(input))?;
        refuse_tags(input.tagging.as_deref())?;
        check_storage(&object_storage!(input))?;
        let length = declared_length(input.content_length, &req.headers)?;
        let checksum = ExpectedChecksum::from_request(&req.headers, req.trailing_headers.as_ref())?;
        let late_checksum = checksum.as_ref().map(ExpectedChecksum::result);
        let opts = PutOptions {
            content_length: Some(length),
            content_md5: decode_md5_header(input.content_md5.as_deref())?,
            content_sha256: signed_sha256(&req.headers)?,
            headers: stored_headers!(input),
            condition: write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?,
            late_checksum: late_checksum.clone(),
            ..PutOptions::default()
        };
        let (bucket, key) = (&input.bucket, &input.key);
        let info = self
            .with_body(input.body.take(), checksum, |rx| {
                engine.put_object(bucket, key, opts, rx)
            })
            .await?;
        let m = &info.manifest;
        let mut out = PutObjectOutput {
            e_tag: Some(ETag::Strong(m.etag.clone())),
            size: Some(m.size as i64),
            ..Default::default()
        };
        if let Some(c) = &m.checksum {
            echo_checksum!(out, c, None);
            out.checksum_type = Some(ChecksumType::from(c.kind.as_str().to_owned()));
        }
        Ok(S3Response::new(out))
    }

    /// The object a GET or HEAD answers with, after its conditions, and what part of it.
    async fn look_up(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: Conditions<'_>,
        range: Option<&Range>,
        part: Option<i32>,
    ) -> S3Result<(ObjectInfo, Selection)> {
        check_version(version_id)?;
        let info = self
            .engine()?
            .head_object(bucket, key)
            .await
            .map_err(engine_err)?;
        read_conditions(conditions, &info.manifest)?;
        let sel = select(&info.manifest, range, part)?;
        Ok((info, sel))
    }

    pub(crate) async fn get(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = &req.input;
        check_version(input.version_id.as_deref())?;
        // Conditions and the selection are decided on the shard, on the object it
        // found, and the bytes are read in the same visit (one round trip).
        let (if_match, if_none_match) = (input.if_match.clone(), input.if_none_match.clone());
        let (if_modified_since, if_unmodified_since) = (
            input.if_modified_since.clone(),
            input.if_unmodified_since.clone(),
        );
        let (range, part) = (input.range, input.part_number);
        let choose = move |info: &ObjectInfo| {
            let m = &info.manifest;
            let conditions = Conditions {
                if_match: if_match.as_ref(),
                if_none_match: if_none_match.as_ref(),
                if_modified_since: if_modified_since.as_ref(),
                if_unmodified_since: if_unmodified_since.as_ref(),
            };
            let sel = read_conditions(conditions, m).and_then(|()| select(m, range.as_ref(), part));
            let read = match &sel {
                Ok(sel) => bytes_to_read(sel, m.size),
                Err(_) => None,
            };
            (sel, read)
        };
        let (info, sel, got) = self
            .engine()?
            .get_object_chosen(&input.bucket, &input.key, choose)
            .await
            .map_err(engine_err)?;
        let sel = sel?;
        let m = &info.manifest;
        let (start, end) = got.as_ref().map_or((0, 0), |g| g.range);
        let body = got.map(|g| into_blob(g.body, self.metrics.bytes_out.clone()));
        let want = checksum_mode(input.checksum_mode.as_ref());
        let out = object_output!(GetObjectOutput, m, &sel, end - start, want, body);
        Ok(S3Response::new(out))
    }

    pub(crate) async fn head(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = &req.input;
        let (info, sel) = self
            .look_up(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                Conditions {
                    if_match: input.if_match.as_ref(),
                    if_none_match: input.if_none_match.as_ref(),
                    if_modified_since: input.if_modified_since.as_ref(),
                    if_unmodified_since: input.if_unmodified_since.as_ref(),
                },
                input.range.as_ref(),
                input.part_number,
            )
            .await?;
        let m = &info.manifest;
        let (start, end) = sel.range.unwrap_or((0, m.size));
        let want = checksum_mode(input.checksum_mode.as_ref());
        let out = object_output!(HeadObjectOutput, m, &sel, end - start, want);
        let mut resp = S3Response::new(out);
        if sel.range.is_some() {
            resp.status = Some(hyper::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(crate) async fn delete(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = &req.input;
        check_version(input.version_id.as_deref())?;
        if input.if_match.is_some()
            || input.if_match_size.is_some()
            || input.if_match_last_modified_time.is_some()
        {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Conditional deletes are not supported.",
            ));
        }
        self.engine()?
            .delete_object(&input.bucket, &input.key)
            .await
            .map_err(engine_err)?;
        Ok(S3Response::new(DeleteObjectOutput {
            version_id: input.version_id.clone(),
            ..Default::default()
        }))
    }

    pub(crate) async fn delete_many(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let engine = self.engine()?;
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        engine
            .head_bucket(&input.bucket)
            .await
            .map_err(engine_err)?;
        let quiet = input.delete.quiet == Some(true);
        // Every key joins the shard's group commit at once: one or two batches, not a
        // commit per key.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, obj) in input.delete.objects.into_iter().enumerate() {
            let engine = engine.clone();
            let bucket = input.bucket.clone();
            tasks.spawn(async move {
                let r = match check_version(obj.version_id.as_deref()) {
                    Ok(()) => engine
                        .delete_object(&bucket, &obj.key)
                        .await
                        .map_err(engine_err),
                    Err(e) => Err(e),
                };
                (i, obj, r)
            });
        }
        let mut results = Vec::new();
        while let Some(done) = tasks.join_next().await {
            results.push(
                done.map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?,
            );
        }
        results.sort_by_key(|(i, _, _)| *i);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for (_, obj, r) in results {
            match r {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_owned),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    pub(crate) async fn copy(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let engine = self.engine()?;
        let mut input = req.input;
        self.check_copy_headers(&input)?;
        let conditions = Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        let (src_bucket, src_key, src) = self.copy_source(&input.copy_source, conditions).await?;
        let m = &src.manifest;
        let replace = replaces_metadata(input.metadata_directive.as_ref())?;
        if !replace && src_bucket == input.bucket && src_key == input.key {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let opts = replace
            .then(|| -> S3Result<PutOptions> {
                Ok(PutOptions {
                    headers: stored_headers!(input),
                    checksum: m.checksum.clone(),
                    want_sha256: m.sha256.is_some(),
                    ..PutOptions::default()
                })
            })
            .transpose()?;
        let info: ObjectInfo = engine
            .copy_object(&src_bucket, &src_key, &input.bucket, &input.key, opts)
            .await
            .map_err(engine_err)?;
        let mut result = CopyObjectResult {
            e_tag: Some(ETag::Strong(info.manifest.etag.clone())),
            last_modified: Some(timestamp(info.manifest.mtime_ms)),
            ..Default::default()
        };
        if let Some(c) = &info.manifest.checksum {
            echo_checksum!(result, c, info.manifest.parts.as_ref().map(Vec::len));
        }
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(result),
            ..Default::default()
        }))
    }

    /// The headers of a copy ingot-engine refuses: ACLs, storage options, a customer
    /// key for the source, replaced tags.
    fn check_copy_headers(&self, input: &CopyObjectInput) -> S3Result<()> {
        self.check_write_acl(&object_acl!(input))?;
        check_storage(&object_storage!(input))?;
        if input.copy_source_sse_customer_algorithm.is_some()
            || input.copy_source_sse_customer_key.is_some()
        {
            // No object here is encrypted with a customer key.
            check_storage(&StorageHeaders {
                encryption: None,
                kms_key: false,
                customer_key: true,
                storage_class: None,
            })?;
        }
        if input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
        {
            refuse_tags(input.tagging.as_deref())?;
        }
        Ok(())
    }
}

/// Whether a copy replaces the source's metadata (`x-amz-metadata-directive`).
fn replaces_metadata(directive: Option<&MetadataDirective>) -> S3Result<bool> {
    match directive.map(MetadataDirective::as_str) {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(other) => Err(invalid_argument(format!(
            "Unknown metadata directive {other}"
        ))),
    }
}

impl IngotS3 {
    /// Streams a request body into an engine call reading it from a body channel; a
    /// failure of the pump (chunk signature, checksum) wins over the engine's generic
    /// body error.
    pub(crate) async fn with_body<T, Fut>(
        &self,
        body: Option<StreamingBlob>,
        checksum: Option<ExpectedChecksum>,
        call: impl FnOnce(engine::BodyReceiver) -> Fut,
    ) -> S3Result<T>
    where
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let (tx, rx) = engine::body_channel();
        let failure = PumpFailure::default();
        let blob = body.unwrap_or_else(|| StreamingBlob::wrap(Empty));
        let bytes_in = self.metrics.bytes_in.clone();
        let feed = pump(blob, tx, checksum, failure.clone(), bytes_in);
        let ((), r) = tokio::join!(feed, call(rx));
        r.map_err(|e| failure.take().unwrap_or_else(|| engine_err(e)))
    }

    /// The object a copy reads (`x-amz-copy-source`), after its copy-source conditions
    /// (a failed one is 412): its bucket, key and the object itself.
    pub(crate) async fn copy_source(
        &self,
        source: &CopySource,
        conditions: Conditions<'_>,
    ) -> S3Result<(String, String, ObjectInfo)> {
        let (bucket, key) = match source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                check_version(version_id.as_deref())?;
                (bucket.to_string(), key.to_string())
            }
            CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "Access points are not supported.",
                ));
            }
        };
        let src = self
            .engine()?
            .head_object(&bucket, &key)
            .await
            .map_err(engine_err)?;
        let m = &src.manifest;
        conditions.check(&m.etag, m.mtime_ms, NotModified::Status412)?;
        Ok((bucket, key, src))
    }
}

fn checksum_mode(m: Option<&ChecksumMode>) -> bool {
    m.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

fn read_conditions(conditions: Conditions<'_>, m: &ObjectManifest) -> S3Result<()> {
    let r = conditions.check(&m.etag, m.mtime_ms, NotModified::Status304);
    r.map_err(|mut e| {
        if e.code() == &S3ErrorCode::NotModified {
            // A 304 still names the object's validators.
            let mut h = hyper::HeaderMap::new();
            if let Ok(v) = format!("\"{}\"", m.etag).parse() {
                h.insert(hyper::header::ETAG, v);
            }
            if let Some(v) = http_date(&timestamp(m.mtime_ms)).and_then(|d| d.parse().ok()) {
                h.insert(hyper::header::LAST_MODIFIED, v);
            }
            e.set_headers(h);
        }
        e
    })
}

/// An empty body stream, for a PUT that carries none.
struct Empty;

impl futures_core::Stream for Empty {
    type Item = Result<bytes::Bytes, EngineError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(None)
    }
}
