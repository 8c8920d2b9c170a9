//! GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in
//! one answer, read from its manifest (no body byte is touched).

use crate::checksum::echo_checksum;
use crate::handler::check_version;
use crate::handler::{IngotS3, engine_err, invalid_argument, timestamp};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

/// Parts listed per answer when the request names no `x-amz-max-parts`.
const DEFAULT_MAX_PARTS: i32 = 1000;

impl IngotS3 {
    pub(crate) async fn attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        if input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some() {
            return Err(invalid_argument(
                "The object was not stored with a customer-provided key.",
            ));
        }
        let wanted = |a: &str| asks_for(&input.object_attributes, a);
        let info = self
            .engine()?
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(engine_err)?;
        let m = &info.manifest;
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(timestamp(m.mtime_ms)),
            ..Default::default()
        };
        if wanted(ObjectAttributes::ETAG) {
            // AWS writes this ETag without quotes; s3s's XML writer always quotes one.
            out.e_tag = Some(ETag::Strong(m.etag.clone()));
        }
        if wanted(ObjectAttributes::OBJECT_SIZE) {
            out.object_size = Some(m.size as i64);
        }
        if wanted(ObjectAttributes::STORAGE_CLASS) {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wanted(ObjectAttributes::CHECKSUM)
            && let Some(c) = &m.checksum
        {
            let mut sum = Checksum {
                checksum_type: Some(ChecksumType::from(c.kind.as_str().to_owned())),
                ..Default::default()
            };
            echo_checksum!(sum, c, m.parts.as_ref().map(Vec::len));
            out.checksum = Some(sum);
        }
        if wanted(ObjectAttributes::OBJECT_PARTS)
            && let Some(sizes) = &m.parts
        {
            out.object_parts = Some(parts_page(
                sizes,
                input.part_number_marker.unwrap_or(0),
                input.max_parts.unwrap_or(DEFAULT_MAX_PARTS),
            )?);
        }
        Ok(S3Response::new(out))
    }
}

/// Whether the request names attribute `a`. Clients send the names as separate
/// `x-amz-object-attributes` headers (aws-sdk-rust) or comma-joined in one (botocore),
/// and s3s passes each header value on as it came.
fn asks_for(list: &[ObjectAttributes], a: &str) -> bool {
    list.iter()
        .flat_map(|x| x.as_str().split(','))
        .any(|x| x.trim() == a)
}

/// The parts after `marker`, at most `max` of them (part numbers start at 1).
fn parts_page(sizes: &[u64], marker: i32, max: i32) -> S3Result<GetObjectAttributesParts> {
    if marker < 0 || max < 0 {
        return Err(invalid_argument(
            "part-number-marker and max-parts must not be negative",
        ));
    }
    let after = usize::try_from(marker).unwrap_or(usize::MAX);
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let parts: Vec<ObjectPart> = sizes
        .iter()
        .enumerate()
        .skip(after)
        .take(max)
        .map(|(i, &size)| ObjectPart {
            part_number: Some(i as i32 + 1),
            size: Some(size as i64),
            ..Default::default()
        })
        .collect();
    let last = parts.last().and_then(|p| p.part_number).unwrap_or(marker);
    Ok(GetObjectAttributesParts {
        is_truncated: Some((last as usize) < sizes.len()),
        max_parts: Some(max as i32),
        next_part_number_marker: Some(last),
        part_number_marker: Some(marker),
        parts: Some(parts),
        total_parts_count: Some(sizes.len() as i32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_named_in_one_header_or_several() {
        let joined = [ObjectAttributes::from("ETag, ObjectSize".to_owned())];
        assert!(asks_for(&joined, "ETag") && asks_for(&joined, "ObjectSize"));
        assert!(!asks_for(&joined, "Checksum"));
        let separate = [
            ObjectAttributes::from("ETag".to_owned()),
            ObjectAttributes::from("Checksum".to_owned()),
        ];
        assert!(asks_for(&separate, "Checksum") && !asks_for(&separate, "ObjectSize"));
    }

    #[test]
    fn parts_pages_follow_the_marker() {
        let sizes = [5, 5, 3];
        let p = parts_page(&sizes, 0, 2).unwrap();
        let numbers: Vec<_> = p.parts.unwrap().iter().map(|p| p.part_number).collect();
        assert_eq!(numbers, [Some(1), Some(2)]);
        assert_eq!(
            (p.is_truncated, p.next_part_number_marker),
            (Some(true), Some(2))
        );
        let p = parts_page(&sizes, 2, 2).unwrap();
        let parts = p.parts.unwrap();
        assert_eq!((parts.len(), parts[0].size), (1, Some(3)));
        assert_eq!(
            (p.is_truncated, p.next_part_number_marker),
            (Some(false), Some(3))
        );
        let p = parts_page(&sizes, 3, 2).unwrap();
        assert!(p.parts.unwrap().is_empty());
        assert_eq!(
            (p.is_truncated, p.total_parts_count),
            (Some(false), Some(3))
        );
        assert!(parts_page(&sizes, -1, 2).is_err());
    }
}
