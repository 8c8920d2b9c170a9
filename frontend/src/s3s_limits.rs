//! Every limit s3s applies, set here by name rather than left to s3s's defaults.

use s3s::config::{S3Config, StaticConfigProvider};
use std::sync::Arc;

/// Largest XML request body s3s buffers (after authentication). The largest legitimate
/// ones: CompleteMultipartUpload with 10,000 parts, each with an ETag and a SHA-256
/// checksum (~300 bytes a part, ~3 MB), and DeleteObjects with 1,000 keys of 1,024
/// bytes, XML-escaped (up to ~6 KiB a key, ~6.2 MB). Larger bodies get
/// `MaxMessageLengthExceeded`.
pub const XML_MAX_BODY_BYTES: usize = 8 << 20;

/// Clock skew allowed between a signer and the node, as on AWS: 15 minutes. A
/// header-signed request dated further away gets `RequestTimeTooSkewed`, and it bounds
/// how long a captured signed request head can be replayed.
pub const MAX_CLOCK_SKEW_S: u32 = 900;

/// Form POSTs (PostObject) are served by the frontend's own module and never reach
/// s3s. s3s still parses a `multipart/form-data` POST it is given to look for a
/// signature, before authentication, so its form limits are kept as small as AWS's
/// own: 20 KiB for the fields before the file (AWS's `MaxPostPreDataLengthExceeded`
/// limit), 16 KiB for one field (the base64 policy is the largest), a few dozen
/// fields, and no file bytes at all.
pub const FORM_MAX_FIELD_BYTES: usize = 16 << 10;
pub const FORM_MAX_FIELDS_BYTES: usize = 20 << 10;
pub const FORM_MAX_PARTS: usize = 64;
pub const POST_OBJECT_MAX_FILE_BYTES: u64 = 0;

/// Keys are taken as written: `a//b` and `/a` are keys of their own, as on AWS.
pub const NORMALIZE_FORWARD_SLASH_PATH: bool = false;

/// Operations whose body s3s streams to the handler; every other body s3s reads whole,
/// up to [`XML_MAX_BODY_BYTES`].
const STREAMED_BODY_OPS: [&str; 2] = ["PutObject", "UploadPart"];

/// Refuses, once the operation is known, a body s3s would read whole but that is
/// longer than [`XML_MAX_BODY_BYTES`]. s3s's own check answers a streamed body over
/// the limit with a 500 `InternalError` (it does not recognise the limiter's error);
/// AWS answers 400 `MaxMessageLengthExceeded`. The length is the declared one: s3s
/// requires `Content-Length` or `x-amz-decoded-content-length` for these requests.
pub(crate) fn check_body_length(op: &str, headers: &hyper::HeaderMap) -> s3s::S3Result<()> {
    let declared = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    };
    let length = declared("x-amz-decoded-content-length").or_else(|| declared("content-length"));
    if STREAMED_BODY_OPS.contains(&op) || length.is_none_or(|n| n <= XML_MAX_BODY_BYTES as u64) {
        return Ok(());
    }
    Err(s3s::S3Error::with_message(
        s3s::S3ErrorCode::MaxMessageLengthExceeded,
        "Your request was too big.",
    ))
}

/// The configuration the S3 service is built with.
pub(crate) fn config() -> Arc<StaticConfigProvider> {
    let mut c = S3Config::default();
    c.xml_max_body_size = XML_MAX_BODY_BYTES;
    c.post_object_max_file_size = POST_OBJECT_MAX_FILE_BYTES;
    c.form_max_field_size = FORM_MAX_FIELD_BYTES;
    c.form_max_fields_size = FORM_MAX_FIELDS_BYTES;
    c.form_max_parts = FORM_MAX_PARTS;
    c.presigned_url_max_skew_time_secs = MAX_CLOCK_SKEW_S;
    c.normalize_forward_slash_path = NORMALIZE_FORWARD_SLASH_PATH;
    Arc::new(StaticConfigProvider::new(Arc::new(c)))
}

#[cfg(test)]
mod tests {
    //! The form limits cannot be reached through the server (form POSTs are answered
    //! before s3s), so these call an s3s service built with [`config`] directly.
    use super::*;
    use s3s::service::S3ServiceBuilder;

    struct NoOps;
    impl s3s::S3 for NoOps {}

    async fn form_post(path: &str, fields: &[(&str, String)], file: &[u8]) -> String {
        let mut b = S3ServiceBuilder::new(NoOps);
        b.set_config(config());
        let service = b.build();
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--X\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            b"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n",
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n--X--\r\n");
        let req = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "multipart/form-data; boundary=X")
            .header("content-length", body.len())
            .body(s3s::Body::from(body))
            .unwrap();
        let resp = service.call(req).await.unwrap();
        let bytes = resp.into_body().bytes().unwrap_or_default();
        s3s_code(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn s3s_itself_stops_reading_an_xml_body_over_the_limit() {
        // The server refuses such a body from its declared length first
        // (`check_body_length`); this is the limit behind it. s3s answers a streamed
        // body over its limit with `InternalError` (hence that check); without the
        // limit it reads the body whole and finds it malformed.
        let mut b = S3ServiceBuilder::new(NoOps);
        b.set_config(config());
        let body = bytes::Bytes::from(vec![b' '; XML_MAX_BODY_BYTES + 1]);
        let req = hyper::Request::builder()
            .method("POST")
            .uri("/bucket?delete")
            .header("host", "127.0.0.1")
            .header("content-length", body.len())
            .body(s3s::Body::http_body(http_body_util::Full::new(body)))
            .unwrap();
        let resp = b.build().call(req).await.unwrap();
        let bytes = resp.into_body().bytes().unwrap_or_default();
        assert_eq!(s3s_code(&bytes).as_deref(), Some("InternalError"));
    }

    /// The code of an error s3s raised itself (these tests call s3s directly).
    fn s3s_code(body: &[u8]) -> Option<String> {
        crate::error_answer::ErrorAnswer::from_s3s_body(body).map(|a| a.code().as_str().to_owned())
    }

    fn key_field() -> (&'static str, String) {
        ("key", "k".to_owned())
    }

    #[tokio::test]
    async fn a_form_field_over_the_field_limit_is_refused() {
        let field = ("x-amz-meta-a", "v".repeat(FORM_MAX_FIELD_BYTES + 1));
        assert_eq!(
            form_post("/bucket", &[key_field(), field], b"").await,
            "MalformedPOSTRequest"
        );
    }

    #[tokio::test]
    async fn form_fields_over_the_total_limit_are_refused() {
        let half = FORM_MAX_FIELDS_BYTES / 2 + 1;
        let fields = [
            key_field(),
            ("x-amz-meta-a", "v".repeat(half)),
            ("x-amz-meta-b", "v".repeat(half)),
        ];
        assert_eq!(
            form_post("/bucket", &fields, b"").await,
            "MalformedPOSTRequest"
        );
    }

    #[tokio::test]
    async fn a_form_with_too_many_parts_is_refused() {
        let fields: Vec<_> = (0..FORM_MAX_PARTS)
            .map(|i| (["x-amz-meta-", &i.to_string()].concat(), "v".to_owned()))
            .collect();
        let fields: Vec<(&str, String)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            form_post("/bucket", &fields, b"").await,
            "MalformedPOSTRequest"
        );
    }

    #[tokio::test]
    async fn s3s_stores_no_form_upload_bytes() {
        assert_eq!(
            form_post("/bucket", &[key_field()], b"x").await,
            "EntityTooLarge"
        );
        // The same form with an empty file passes the limit.
        assert_ne!(
            form_post("/bucket", &[key_field()], b"").await,
            "EntityTooLarge"
        );
    }
}
