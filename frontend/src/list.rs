//! ListObjects (v1), ListObjectsV2 and ListObjectVersions over the engine's one
//! ordered listing.

use crate::handler::{IngotS3, engine_err, invalid_argument, timestamp};
use engine::{ListRequest, ListResponse, ObjectSummary};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

const DEFAULT_MAX_KEYS: i32 = 1000;

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        Some(n) if n < 0 => Err(invalid_argument("max-keys must not be negative")),
        Some(n) => Ok(n.min(DEFAULT_MAX_KEYS) as usize),
        None => Ok(DEFAULT_MAX_KEYS as usize),
    }
}

/// `encoding-type=url`: keys and prefixes percent-encoded in the answer.
#[derive(Clone, Copy)]
pub(crate) struct Encoding(bool);

impl Encoding {
    pub(crate) fn of(e: Option<&EncodingType>) -> S3Result<Self> {
        match e.map(EncodingType::as_str) {
            None => Ok(Self(false)),
            Some("url") => Ok(Self(true)),
            Some(other) => Err(invalid_argument(format!(
                "Invalid Encoding Method specified in Request: {other}"
            ))),
        }
    }

    pub(crate) fn apply(self, s: String) -> String {
        if self.0 {
            urlencoding::encode(&s).into_owned()
        } else {
            s
        }
    }

    pub(crate) fn opt(self, s: Option<String>) -> Option<String> {
        s.map(|s| self.apply(s))
    }
}

/// Continuation tokens are opaque to clients: the marker, base64-encoded.
fn encode_token(marker: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(marker.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_argument("The continuation token provided is incorrect"))
}

impl IngotS3 {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        after: Option<String>,
        max: usize,
    ) -> S3Result<ListResponse> {
        let engine = self.engine()?;
        if max == 0 {
            // Still answers NoSuchBucket for a missing bucket.
            engine.head_bucket(bucket).await.map_err(engine_err)?;
            return Ok(ListResponse::default());
        }
        let req = ListRequest {
            prefix: prefix.unwrap_or_default().to_owned(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_owned),
            start_after: after,
            max_keys: max,
        };
        engine.list_objects(bucket, req).await.map_err(engine_err)
    }

    fn object(&self, o: ObjectSummary, enc: Encoding, owner: bool) -> Object {
        Object {
            e_tag: Some(ETag::Strong(o.etag)),
            key: Some(enc.apply(o.key)),
            last_modified: Some(timestamp(o.mtime_ms)),
            owner: owner.then(|| self.owner()),
            size: Some(o.size as i64),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        }
    }

    pub(crate) async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let enc = Encoding::of(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let after = match &i.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = self
            .list_page(
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                after,
                max,
            )
            .await?;
        let owner = i.fetch_owner == Some(true);
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        let next = page
            .truncated
            .then(|| page.next_marker.as_deref().map(encode_token))
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.apply(i.prefix.unwrap_or_default())),
            delimiter: enc.opt(i.delimiter),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            start_after: enc.opt(i.start_after),
            is_truncated: Some(page.truncated),
            next_continuation_token: next,
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| self.object(o, enc, owner))
                    .collect(),
            ),
            common_prefixes: Some(prefixes(page.common_prefixes, enc)),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    pub(crate) async fn list_v1(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let enc = Encoding::of(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let after = i.marker.clone().filter(|s| !s.is_empty());
        let page = self
            .list_page(
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                after,
                max,
            )
            .await?;
        // v1 names the next marker only with a delimiter; without one a client
        // continues from the last key it got.
        let next_marker = (page.truncated && i.delimiter.is_some())
            .then(|| enc.opt(page.next_marker.clone()))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.apply(i.prefix.unwrap_or_default())),
            marker: Some(enc.apply(i.marker.unwrap_or_default())),
            delimiter: enc.opt(i.delimiter),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_marker,
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| self.object(o, enc, true))
                    .collect(),
            ),
            common_prefixes: Some(prefixes(page.common_prefixes, enc)),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    /// An unversioned bucket: every object once, as version `null`, the latest.
    pub(crate) async fn list_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        let enc = Encoding::of(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let after = i.key_marker.clone().filter(|s| !s.is_empty());
        let page = self
            .list_page(
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                after,
                max,
            )
            .await?;
        let versions = page
            .objects
            .into_iter()
            .map(|o| ObjectVersion {
                e_tag: Some(ETag::Strong(o.etag)),
                is_latest: Some(true),
                key: Some(enc.apply(o.key)),
                last_modified: Some(timestamp(o.mtime_ms)),
                owner: Some(self.owner()),
                size: Some(o.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some("null".to_owned()),
                ..Default::default()
            })
            .collect();
        let truncated = page.truncated;
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.apply(i.prefix.unwrap_or_default())),
            delimiter: enc.opt(i.delimiter),
            key_marker: Some(enc.apply(i.key_marker.unwrap_or_default())),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| enc.opt(page.next_marker)).flatten(),
            next_version_id_marker: truncated.then(|| "null".to_owned()),
            versions: Some(versions),
            common_prefixes: Some(prefixes(page.common_prefixes, enc)),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }
}

fn prefixes(p: Vec<String>, enc: Encoding) -> Vec<CommonPrefix> {
    p.into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.apply(p)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_tokens_round_trip_any_key() {
        for k in ["", "a/b c", "ключ/ü", "x+y%z"] {
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        assert!(decode_token("not base64 !").is_err());
    }

    #[test]
    fn url_encoding_escapes_what_xml_clients_cannot_carry() {
        let e = Encoding(true);
        assert_eq!(e.apply("a b+c/\u{1}".into()), "a%20b%2Bc%2F%01");
        assert_eq!(Encoding(false).apply("a b".into()), "a b");
    }
}
