//! Browser-form uploads (PostObject): `POST /bucket` (or `POST /` on `bucket.domain`)
//! with a `multipart/form-data` body whose fields carry a SigV4-signed POST policy
//! and whose last part is the file.
//!
//! Served here rather than by s3s, which reads the whole file into memory before it
//! checks anything. In order, and nothing of the file is read before step 4:
//!
//! 1. the fields before the file are read under the caps of `form.rs`;
//! 2. the form is authenticated: `x-amz-signature` is the SigV4 HMAC of the `policy`
//!    field under the signing key of `x-amz-credential`; an anonymous form is refused
//!    (no bucket is public), a SigV2 form too;
//! 3. the policy is checked: expiry, every condition, every field matched;
//! 4. the object's settings are checked as PutObject checks them, and the file part
//!    is streamed into the engine like a PutObject body, its size held to the
//!    policy's `content-length-range` and to 5 GiB as it streams: a file over or
//!    under ends the body with an error, so nothing is written;
//! 5. the answer: a 303 to `success_action_redirect`, or `success_action_status`
//!    (200 or 204 empty, 201 with a `PostResponse` document; 204 by default).

use crate::error::{form_error, policy_error};
use crate::form::{Fields, FileContent, FileHead, FormLimits, FormReader, boundary};
use crate::handler::IngotS3;
use crate::objects::{MAX_PUT_BYTES, http_date, metadata};
use crate::post_policy::{Policy, PolicyError};
use crate::settings::{AclHeaders, StorageHeaders, check_storage, refuse_tags};
use crate::virtual_hosts::VirtualHosts;
use bytes::Bytes;
use engine::PutOptions;
use engine::format::ObjectHeaders;
use futures_core::Stream;
use hmac::{KeyInit, Mac};
use hyper::header::{CONNECTION, CONTENT_TYPE, ETAG, HOST, HeaderValue, LOCATION};
use hyper::{Request, Response, StatusCode};
use s3s::dto::{StreamingBlob, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::pin::Pin;
use std::task::{Context, Poll};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where a form POST goes.
enum FormTarget {
    Bucket(String),
    /// The root or an object: no operation takes a form there.
    Elsewhere,
}

/// Serves browser-form uploads for the node's one root key.
pub(crate) struct FormUploads {
    s3: IngotS3,
    access_key: String,
    secret_key: String,
    hosts: Option<VirtualHosts>,
    limits: FormLimits,
    /// `http` or `https`: the listener's scheme, for the `Location` of an upload.
    scheme: &'static str,
}

impl FormUploads {
    pub fn new(
        s3: IngotS3,
        access_key: String,
        secret_key: String,
        hosts: Option<VirtualHosts>,
        scheme: &'static str,
    ) -> Self {
        Self {
            s3,
            access_key,
            secret_key,
            hosts,
            limits: FormLimits::default(),
            scheme,
        }
    }

    /// Whether a request is a form POST, served here: every POST whose Content-Type
    /// starts `multipart/form-data` is (s3s would read it as a form whatever its
    /// path), so none reaches s3s's form reading.
    pub fn accepts<B>(&self, req: &Request<B>) -> bool {
        self.target(req).is_some()
    }

    /// The target of a form POST; `None` for any other request.
    fn target<B>(&self, req: &Request<B>) -> Option<FormTarget> {
        let is_form = req.method() == hyper::Method::POST
            && req.headers().get_all(CONTENT_TYPE).iter().any(|v| {
                let v = v.as_bytes().trim_ascii_start();
                v.len() >= 19 && v[..19].eq_ignore_ascii_case(b"multipart/form-data")
            });
        if !is_form {
            return None;
        }
        let path = req.uri().path();
        let vhost = self.hosts.as_ref().and_then(|h| {
            let host = req.headers().get(HOST)?.to_str().ok()?;
            h.bucket_of(host)
        });
        Some(match vhost {
            Some(b) if path == "/" => FormTarget::Bucket(b),
            Some(_) => FormTarget::Elsewhere,
            None => match path.trim_start_matches('/').trim_end_matches('/') {
                b if b.is_empty() || b.contains('/') => FormTarget::Elsewhere,
                b => match urlencoding::decode(b) {
                    Ok(b) => FormTarget::Bucket(b.into_owned()),
                    Err(_) => FormTarget::Elsewhere,
                },
            },
        })
    }

    /// Answers a form POST (one [`FormUploads::accepts`]); its body comes already held
    /// to the connection's body-read limits.
    pub async fn serve(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        let target = self.target(&req).unwrap_or(FormTarget::Elsewhere);
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let FormTarget::Bucket(bucket) = target else {
            return error_response(S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            ));
        };
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(boundary) = boundary(content_type).map(str::to_owned) else {
            return error_response(S3Error::with_message(
                S3ErrorCode::MalformedPOSTRequest,
                "The body of your POST request is not well-formed multipart/form-data.",
            ));
        };
        let body = req.into_body();
        let mut form = FormReader::new(body, &boundary, self.limits);
        let upload = match form.read_fields().await {
            Ok((fields, file)) => self.upload(&bucket, fields, file, form.into_file()).await,
            Err(e) => Err(form_error(&e)),
        };
        match upload {
            Ok(done) => {
                let at = Addressed {
                    scheme: self.scheme,
                    host: host.as_deref(),
                    virtual_host: self.hosts.is_some(),
                };
                done.response(&bucket, &at)
            }
            Err(e) => error_response(e),
        }
    }

    async fn upload(
        &self,
        bucket: &str,
        fields: Fields,
        file: FileHead,
        content: FileContent<s3s::Body>,
    ) -> S3Result<Uploaded> {
        self.authenticate(&fields)?;
        let policy =
            Policy::from_base64(fields.get("policy").unwrap_or_default()).map_err(policy_error)?;
        let mut checked: Vec<(&str, &str)> =
            fields.iter().filter(|(n, _)| *n != "bucket").collect();
        checked.push(("bucket", bucket));
        policy
            .check(&checked, time::OffsetDateTime::now_utc())
            .map_err(policy_error)?;
        let key = object_key(&fields, &file)?;
        let opts = self.put_options(&fields)?;
        let (min, max) = policy.length_range();
        let sized = SizeChecked {
            content,
            got: 0,
            min,
            max: max.min(MAX_PUT_BYTES),
            done: false,
        };
        let engine = self.s3.engine()?.clone();
        let info = self
            .s3
            .with_body(Some(StreamingBlob::wrap(sized)), None, |rx| {
                engine.put_object(bucket, &key, opts, rx)
            })
            .await?;
        Ok(Uploaded {
            key,
            etag: info.manifest.etag.clone(),
            redirect: fields
                .get("success_action_redirect")
                .or_else(|| fields.get("redirect"))
                .filter(|u| redirectable(u))
                .map(str::to_owned),
            status: fields.get("success_action_status").map(str::to_owned),
        })
    }

    /// Checks the form's SigV4 signature of its policy with the node's root key.
    fn authenticate(&self, fields: &Fields) -> S3Result<()> {
        let Some(signature) = fields.get("x-amz-signature") else {
            if fields.get("signature").is_some() || fields.get("awsaccesskeyid").is_some() {
                return Err(unsupported_mechanism());
            }
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Anonymous access is not allowed.",
            ));
        };
        let required = |name: &str| {
            fields.get(name).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Bucket POST must contain a field named '{name}'."),
                )
            })
        };
        if required("x-amz-algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(unsupported_mechanism());
        }
        let credential = Credential::parse(required("x-amz-credential")?)?;
        let date = required("x-amz-date")?;
        if date.len() != 16 || !date.starts_with(credential.date) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Invalid credential date. Date is not the same as X-Amz-Date.",
            ));
        }
        let policy = required("policy")?;
        if credential.access_key != self.access_key {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            ));
        }
        let key = signing_key(&self.secret_key, credential.date, credential.region, "s3");
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(policy.as_bytes());
        // verify_slice compares in constant time.
        match decode_hex32(signature) {
            Some(sig) if mac.verify_slice(&sig).is_ok() => Ok(()),
            _ => Err(S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method.",
            )),
        }
    }

    /// The object's headers and metadata from the form, refused as PutObject refuses
    /// them.
    fn put_options(&self, fields: &Fields) -> S3Result<PutOptions> {
        self.s3.check_write_acl(&AclHeaders {
            canned: fields.get("acl"),
            full_control: fields.get("x-amz-grant-full-control"),
            others: [
                fields.get("x-amz-grant-read"),
                fields.get("x-amz-grant-read-acp"),
                fields.get("x-amz-grant-write-acp"),
                None,
            ],
        })?;
        refuse_tags(fields.get("tagging"))?;
        check_storage(&StorageHeaders {
            encryption: fields.get("x-amz-server-side-encryption"),
            kms_key: fields
                .get("x-amz-server-side-encryption-aws-kms-key-id")
                .is_some(),
            customer_key: fields
                .get("x-amz-server-side-encryption-customer-algorithm")
                .is_some()
                || fields
                    .get("x-amz-server-side-encryption-customer-key")
                    .is_some(),
            storage_class: fields.get("x-amz-storage-class"),
        })?;
        if fields.iter().any(|(n, _)| n.starts_with("x-amz-checksum-")) {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Additional checksums are not supported on browser-form uploads: the object was not written.",
            ));
        }
        let expires = match fields.get("expires") {
            Some(e) => Some(
                Timestamp::parse(TimestampFormat::HttpDate, e)
                    .ok()
                    .and_then(|t| http_date(&t))
                    .ok_or_else(|| {
                        S3Error::with_message(
                            S3ErrorCode::InvalidArgument,
                            "Expires must be an HTTP date.",
                        )
                    })?,
            ),
            None => None,
        };
        let meta = fields
            .iter()
            .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_owned(), v.to_owned())))
            .collect();
        let owned = |name| fields.get(name).map(str::to_owned);
        let headers = ObjectHeaders {
            content_type: owned("content-type"),
            cache_control: owned("cache-control"),
            content_disposition: owned("content-disposition"),
            content_encoding: owned("content-encoding"),
            expires,
            website_redirect: owned("x-amz-website-redirect-location"),
            meta: metadata(Some(meta))?,
            ..ObjectHeaders::default()
        };
        Ok(PutOptions {
            headers,
            ..PutOptions::default()
        })
    }
}

/// The answer AWS gives a form signed another way than SigV4.
fn unsupported_mechanism() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidRequest,
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    )
}

/// `access-key/YYYYMMDD/region/s3/aws4_request`.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
}

impl<'a> Credential<'a> {
    fn parse(s: &'a str) -> S3Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [access_key, date, region, "s3", "aws4_request"]
                if date.len() == 8 && date.bytes().all(|c| c.is_ascii_digit()) =>
            {
                Ok(Self {
                    access_key,
                    date,
                    region,
                })
            }
            _ => Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "x-amz-credential must be <access-key>/<YYYYMMDD>/<region>/s3/aws4_request.",
            )),
        }
    }
}

/// SigV4's signing key: HMAC chained over date, region, service and terminator.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    key.try_into().expect("SHA-256 output is 32 bytes")
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The key from the `key` field, `${filename}` replaced by the file part's name.
fn object_key(fields: &Fields, file: &FileHead) -> S3Result<String> {
    let key = fields.get("key").ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
    })?;
    Ok(key.replace("${filename}", file.filename.as_deref().unwrap_or_default()))
}

/// A redirect target AWS follows: an absolute http(s) URL that fits in a header.
fn redirectable(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && HeaderValue::from_str(url).is_ok()
}

/// The file's content, held to the policy's size range and to 5 GiB as it streams.
/// A file out of range ends with an error instead of its end, so the engine writes
/// nothing.
struct SizeChecked {
    content: FileContent<s3s::Body>,
    got: u64,
    min: u64,
    max: u64,
    done: bool,
}

impl Stream for SizeChecked {
    type Item = Result<Bytes, S3Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = std::task::ready!(Pin::new(&mut self.content).poll_next(cx));
        let (item, done) = match polled {
            Some(Ok(piece)) => {
                self.got += piece.len() as u64;
                if self.got > self.max {
                    let max = self.max;
                    (Some(Err(policy_error(PolicyError::TooLarge { max }))), true)
                } else {
                    (Some(Ok(piece)), false)
                }
            }
            Some(Err(e)) => (Some(Err(form_error(&e))), true),
            None if self.got < self.min => {
                let min = self.min;
                (Some(Err(policy_error(PolicyError::TooSmall { min }))), true)
            }
            None => (None, true),
        };
        self.done = done;
        Poll::Ready(item)
    }
}

/// A written object, and how the form asked to be answered.
struct Uploaded {
    key: String,
    etag: String,
    redirect: Option<String>,
    status: Option<String>,
}

impl Uploaded {
    fn response(&self, bucket: &str, at: &Addressed<'_>) -> Response<s3s::Body> {
        let etag = format!("\"{}\"", self.etag);
        if let Some(url) = &self.redirect {
            let sep = if url.contains('?') { '&' } else { '?' };
            let to = format!(
                "{url}{sep}bucket={}&key={}&etag={}",
                urlencoding::encode(bucket),
                urlencoding::encode(&self.key),
                urlencoding::encode(&etag)
            );
            return with_headers(
                StatusCode::SEE_OTHER,
                Bytes::new(),
                &[(LOCATION, &to), (ETAG, &etag)],
            );
        }
        let location = object_url(bucket, &self.key, at);
        let headers = [(LOCATION, location.as_str()), (ETAG, etag.as_str())];
        match self.status.as_deref() {
            Some("200") => with_headers(StatusCode::OK, Bytes::new(), &headers),
            Some("201") => {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    xml_escape(&location),
                    xml_escape(bucket),
                    xml_escape(&self.key),
                    xml_escape(&etag)
                );
                let mut r = with_headers(StatusCode::CREATED, Bytes::from(xml), &headers);
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                r
            }
            // AWS answers 204 when the status is absent or not one it offers.
            _ => with_headers(StatusCode::NO_CONTENT, Bytes::new(), &headers),
        }
    }
}

/// How the client addressed the node: the listener's scheme, the `Host` it sent and
/// whether that names the bucket (virtual-hosted style).
struct Addressed<'a> {
    scheme: &'static str,
    host: Option<&'a str>,
    virtual_host: bool,
}

/// The object's URL as the client addressed the node.
fn object_url(bucket: &str, key: &str, at: &Addressed<'_>) -> String {
    let key: Vec<_> = key.split('/').map(urlencoding::encode).collect();
    let key = key.join("/");
    let scheme = at.scheme;
    match at.host {
        Some(h) if at.virtual_host => format!("{scheme}://{h}/{key}"),
        Some(h) => format!("{scheme}://{h}/{}/{key}", urlencoding::encode(bucket)),
        None => format!("/{}/{key}", urlencoding::encode(bucket)),
    }
}

fn with_headers(
    status: StatusCode,
    body: Bytes,
    headers: &[(hyper::header::HeaderName, &str)],
) -> Response<s3s::Body> {
    let mut r = Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().insert(name.clone(), v);
        }
    }
    r
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An error answer. The rest of the body is never read, so the connection is closed
/// after it (hyper would otherwise have to drain what the client still sends).
fn error_response(e: S3Error) -> Response<s3s::Body> {
    let answer = crate::error_answer::ErrorAnswer::of(&e);
    let mut r = e.to_http_response().unwrap_or_else(|_| {
        let mut r = Response::new(s3s::Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    });
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r.extensions_mut().insert(answer);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_is_sigv4s() {
        // The worked example of AWS's SigV4 documentation ("derive a signing key").
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            engine::hex::encode(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn credentials_and_signatures_are_parsed_strictly() {
        assert!(Credential::parse("AK/20260101/us-east-1/s3/aws4_request").is_ok());
        assert!(Credential::parse("AK/2026011/us-east-1/s3/aws4_request").is_err());
        assert!(Credential::parse("AK/20260101/us-east-1/ec2/aws4_request").is_err());
        assert!(Credential::parse("AK/20260101/us-east-1/s3").is_err());
        assert_eq!(decode_hex32(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(decode_hex32(&"ab".repeat(31)), None);
        assert_eq!(decode_hex32(&"zz".repeat(32)), None);
    }

    #[test]
    fn redirects_are_absolute_http_urls() {
        assert!(redirectable("https://example.com/done?x=1"));
        assert!(redirectable("HTTP://example.com"));
        assert!(!redirectable("javascript:alert(1)"));
        assert!(!redirectable("/relative"));
        assert!(!redirectable("http://a\r\nSet-Cookie: x"));
    }

    #[test]
    fn object_urls_encode_the_key_but_keep_its_slashes() {
        let at = |scheme, host, virtual_host| Addressed {
            scheme,
            host: Some(host),
            virtual_host,
        };
        assert_eq!(
            object_url("b", "a dir/ü.txt", &at("http", "h:9000", false)),
            "http://h:9000/b/a%20dir/%C3%BC.txt"
        );
        assert_eq!(
            object_url("b", "k", &at("https", "b.s3.test", true)),
            "https://b.s3.test/k"
        );
    }
}
