//! `s3://bucket/prefix`: any S3-compatible endpoint over HTTP/1.1 or HTTPS (rustls, with
//! the Mozilla root certificates and an optional extra CA file), path-style.
//!
//! An upload streams the file from disk with `x-amz-content-sha256` set to the SHA-256
//! recorded at seal and signed (SigV4): the server hashes what it receives and refuses a
//! body that differs (`XAmzContentSHA256Mismatch`), so a corrupted upload is never
//! stored. `If-None-Match: *` keeps an upload from replacing a different object of the
//! same name (another node shipping to the same prefix): when the object exists, its
//! recorded digest (`x-amz-meta-sha256`) must equal ours, which makes a repeated upload
//! after a crash a success and a name clash an error. Reads are ranged GETs: only a 206
//! with exactly the range asked for is accepted, and no answer body is read past what
//! was asked for (the range; 64 KiB for anything else), so a misbehaving server can
//! neither make the node buffer a whole object nor pass off other bytes (the engine
//! then verifies every block against its CID).

use super::TargetError;
use bytes::Bytes;
use client::{EMPTY_SHA256, Payload, ReadLimit, S3Client, body, encode_key};
use hyper::{Method, StatusCode};
use std::path::Path;
use std::sync::Arc;

/// A bucket and key prefix on an endpoint.
#[derive(Debug, Clone)]
pub struct S3Target {
    client: Arc<S3Client>,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
}

impl S3Target {
    /// `s3://bucket/prefix` → target (the URL is checked by the caller's parser).
    pub fn new(client: Arc<S3Client>, bucket: &str, prefix: &str) -> Self {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix,
        }
    }

    fn location(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, encode_key(key))
    }

    /// The key a location names, if it is in this target's bucket.
    fn key_of<'a>(&self, location: &'a str) -> Result<&'a str, TargetError> {
        location
            .strip_prefix("s3://")
            .and_then(|r| r.strip_prefix(self.bucket.as_str()))
            .and_then(|r| r.strip_prefix('/'))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TargetError::ForeignLocation(location.to_owned()))
    }

    pub async fn put_file(
        &self,
        name: &str,
        src: &Path,
        sha256: [u8; 32],
    ) -> Result<String, TargetError> {
        super::dir::check_name(name)?;
        let key = format!("{}{name}", self.prefix);
        let digest = engine::hex::encode(&sha256);
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| TargetError::io(format!("open {}", src.display()), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| TargetError::io(format!("stat {}", src.display()), e))?
            .len();
        let extra = [
            ("content-length", len.to_string()),
            ("content-type", "application/vnd.ipld.car".to_owned()),
            ("if-none-match", "*".to_owned()),
            ("x-amz-meta-sha256", digest.clone()),
        ];
        let a = self
            .client
            .send(
                Method::PUT,
                &self.path(&key),
                &extra,
                Payload::Sha256Hex(&digest),
                body::file(file, len),
                ReadLimit::Capped(client::s3_client::ANSWER_BYTES_MAX),
            )
            .await?;
        match a.status {
            s if s.is_success() => Ok(self.location(name)),
            // Already there (a repeated upload, or a clash): the digests decide.
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                let have = self.stored_digest(&key).await?;
                if have.as_deref() == Some(digest.as_str()) {
                    Ok(self.location(name))
                } else {
                    Err(TargetError::DigestMismatch {
                        name: self.location(name),
                        want: digest,
                        got: have.unwrap_or_else(|| "an object without a recorded digest".into()),
                    })
                }
            }
            _ => Err(a.status_error(self.location(name)).into()),
        }
    }

    /// The `x-amz-meta-sha256` of a stored object.
    async fn stored_digest(&self, key: &str) -> Result<Option<String>, TargetError> {
        let a = self
            .client
            .send(
                Method::HEAD,
                &self.path(key),
                &[],
                Payload::Sha256Hex(EMPTY_SHA256),
                body::empty(),
                ReadLimit::Capped(client::s3_client::ANSWER_BYTES_MAX),
            )
            .await?
            .success(|| key.to_owned())?;
        Ok(a.header("x-amz-meta-sha256").map(str::to_owned))
    }

    pub async fn read_range(
        &self,
        location: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, TargetError> {
        let key = self.key_of(location)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let last = offset
            .checked_add(len - 1)
            .ok_or_else(|| TargetError::ShortRange {
                location: location.to_owned(),
                offset,
                len,
                size: 0,
            })?;
        let extra = [("range", format!("bytes={offset}-{last}"))];
        // A success is a 206 with exactly this range (checked by the client): a server
        // that ignores Range answers 200 with the whole object, which is refused unread
        // rather than buffered to cut the range out.
        let a = self
            .client
            .send(
                Method::GET,
                &self.path(key),
                &extra,
                Payload::Sha256Hex(EMPTY_SHA256),
                body::empty(),
                ReadLimit::Range { offset, len },
            )
            .await?;
        if a.status != StatusCode::PARTIAL_CONTENT {
            return Err(a.status_error(location.to_owned()).into());
        }
        let body = a.body;
        if body.len() as u64 != len {
            return Err(TargetError::ShortRange {
                location: location.to_owned(),
                offset,
                len,
                size: body.len() as u64,
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client::S3Settings;
    use std::time::Duration;

    #[test]
    fn locations_map_back_to_keys_of_the_same_bucket_only() {
        let client = Arc::new(
            S3Client::new(S3Settings {
                endpoint: "http://127.0.0.1:9".into(),
                ca_file: None,
                region: "us-east-1".into(),
                access_key: "a".into(),
                secret_key: "b".into(),
                timeout: Some(Duration::from_secs(1)),
            })
            .unwrap(),
        );
        let t = S3Target::new(client, "cold", "/node-a/");
        let loc = t.location("data-0000-00000000000000000001.car");
        assert_eq!(loc, "s3://cold/node-a/data-0000-00000000000000000001.car");
        assert_eq!(
            t.key_of(&loc).unwrap(),
            "node-a/data-0000-00000000000000000001.car"
        );
        assert!(t.key_of("s3://other/node-a/x.car").is_err());
        assert!(t.key_of("file:///cold/x.car").is_err());
        assert_eq!(t.path("a b/c"), "/cold/a%20b/c");
    }
}
