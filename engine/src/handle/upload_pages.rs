//! ListMultipartUploads, one page at a time: a cursor walks the catalog's index of a
//! bucket's uploads (key, initiation time, upload id) from the markers, and skips a
//! rolled-up common prefix by seeking past every key under it. A page reads the places
//! of the uploads and prefixes it shows (plus one to tell whether it is truncated), and
//! the records of the uploads only; never the bucket's other uploads. (Before, every
//! upload of the bucket was read, and an upload-id marker made the scan quadratic.)

use crate::api::{UploadInfo, UploadListing, UploadPage};
use crate::catalog::{Catalog, UploadCursor, UploadRecord};
use crate::error::{EngineError, EngineResult};
use crate::format::UploadTemplate;

/// Places read from the catalog at a time.
const PLACES_PER_READ: usize = 256;

/// One page of `bucket`'s uploads, with S3's rules for prefix, delimiter, markers and
/// max-uploads.
pub async fn list_upload_page<C: Catalog>(
    catalog: &C,
    bucket: &str,
    q: &UploadListing,
) -> EngineResult<UploadPage> {
    let (places, mut page) = walk(catalog, bucket, q).await?;
    for place in places {
        // An upload completed or aborted since its place was read is left out.
        match catalog.upload(&place.upload_id).await? {
            Some(rec) if rec.bucket == bucket => page.uploads.push(upload_info(rec)?),
            _ => {}
        }
    }
    Ok(page)
}

/// The places of the uploads a page shows, and the page without them: its prefixes,
/// whether it is truncated, and the next markers.
async fn walk<C: Catalog>(
    catalog: &C,
    bucket: &str,
    q: &UploadListing,
) -> EngineResult<(Vec<UploadCursor>, UploadPage)> {
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut page = UploadPage::default();
    let mut listed: Vec<UploadCursor> = Vec::new();
    let mut from = start(catalog, bucket, q).await?;
    'reads: loop {
        let places = catalog
            .upload_places(bucket, &from, PLACES_PER_READ)
            .await?;
        let Some(last) = places.last() else { break };
        let (more, after_last) = (places.len() == PLACES_PER_READ, last.next());
        for place in places {
            // Keys are in order and the walk started at the prefix: the first key
            // without it ends the listing.
            if !place.key.starts_with(&q.prefix) {
                break 'reads;
            }
            let rolled = delimiter.and_then(|d| common_prefix(&place.key, &q.prefix, d));
            if let Some(p) = &rolled {
                // Shown already, or at or before the key marker (an earlier page's):
                // every upload under it is skipped at once.
                let shown = page.prefixes.last() == Some(p);
                if shown || q.key_marker.as_deref().is_some_and(|km| p.as_str() <= km) {
                    match after_prefix(p) {
                        Some(key) => from = UploadCursor::at_key(&key),
                        None => break 'reads,
                    }
                    continue 'reads;
                }
            }
            if listed.len() + page.prefixes.len() == q.max_uploads {
                page.truncated = true;
                break 'reads;
            }
            match rolled {
                Some(p) => page.prefixes.push(p),
                None => listed.push(place),
            }
        }
        if !more {
            break;
        }
        from = after_last;
    }
    if page.truncated {
        // The last upload or prefix shown (in key order: a prefix is shown at its first
        // key, and the uploads after it sort after every key under it).
        match (listed.last(), page.prefixes.last()) {
            (Some(u), Some(p)) if p.as_str() > u.key.as_str() => {
                page.next_key_marker = Some(p.clone());
            }
            (Some(u), _) => {
                page.next_key_marker = Some(u.key.clone());
                page.next_upload_id_marker = Some(u.upload_id.clone());
            }
            (None, p) => page.next_key_marker = p.cloned(),
        }
    }
    Ok((listed, page))
}

/// Where the walk starts: at the first upload under the prefix, or after the markers
/// when they are further. With an upload-id marker the walk starts after that upload of
/// the marker's key; when that upload is gone (completed, aborted, never was), after
/// every upload of the key.
async fn start<C: Catalog>(
    catalog: &C,
    bucket: &str,
    q: &UploadListing,
) -> EngineResult<UploadCursor> {
    let at_prefix = UploadCursor::at_key(&q.prefix);
    let Some(km) = q.key_marker.as_deref() else {
        return Ok(at_prefix);
    };
    // The smallest key after `km`: every upload of `km` sorts before it.
    let after_key = UploadCursor::at_key(&format!("{km}\0"));
    let after_markers = match q.upload_id_marker.as_deref() {
        Some(id) => match catalog.upload(id).await? {
            Some(rec) if rec.bucket == bucket && rec.key == km => UploadCursor::of(&rec).next(),
            _ => after_key,
        },
        None => after_key,
    };
    Ok(after_markers.max(at_prefix))
}

/// `key` up to and including the first `delimiter` after `prefix`, if it has one.
fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    let rest = &key[prefix.len()..];
    rest.find(delimiter)
        .map(|i| key[..prefix.len() + i + delimiter.len()].to_owned())
}

/// The smallest string after every string that starts with `p` (its last character
/// that can grow, grown by one), or `None` when nothing comes after them. UTF-8 orders
/// bytes as it orders characters, so this is also the byte order the catalog keeps.
fn after_prefix(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = (c as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// An upload as the API lists it: its record with the template decoded.
pub(super) fn upload_info(rec: UploadRecord) -> EngineResult<UploadInfo> {
    let template = UploadTemplate::decode(&rec.template)
        .map_err(|e| EngineError::Corrupt(format!("upload {}: {e}", rec.upload_id)))?;
    Ok(UploadInfo {
        upload_id: rec.upload_id,
        bucket: rec.bucket,
        key: rec.key,
        created_ms: rec.created_ms,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_prefix_comes_the_first_string_not_under_it() {
        assert_eq!(after_prefix("a/").as_deref(), Some("a0"));
        assert_eq!(after_prefix("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(after_prefix("b\u{10FFFF}").as_deref(), Some("c"));
        assert_eq!(after_prefix("\u{10FFFF}"), None);
        for under in ["a/", "a/b", "a/\u{10FFFF}\u{10FFFF}"] {
            assert!(under < "a0");
        }
    }
}
