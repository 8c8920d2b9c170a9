//! The XML body of an S3 error answer, completed as AWS writes it: every error names
//! its request id (`<RequestId>`, the same as the `x-amz-request-id` header), and has a
//! `<Message>`. s3s writes neither for the errors it raises itself (a bad signature, an
//! invalid bucket name, malformed XML), and the request id is only known here.

use bytes::Bytes;

/// The `<Code>` of an S3 error body.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let start = s.find("<Code>")? + "<Code>".len();
    let end = s[start..].find("</Code>")? + start;
    Some(s[start..end].to_owned())
}

/// `body` with a `<Message>` (if it had none) and `<RequestId>` added before
/// `</Error>`; `None` when `body` is not an error body or needs nothing.
pub(crate) fn complete(body: &[u8], request_id: &str) -> Option<Bytes> {
    let s = std::str::from_utf8(body).ok()?;
    let end = s.rfind("</Error>")?;
    let mut extra = String::new();
    if !s.contains("<Message>") {
        let code = error_code(body)?;
        extra.push_str("<Message>");
        extra.push_str(default_message(&code));
        extra.push_str("</Message>");
    }
    if !s.contains("<RequestId>") {
        extra.push_str("<RequestId>");
        extra.push_str(request_id);
        extra.push_str("</RequestId>");
    }
    if extra.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len() + extra.len());
    out.push_str(&s[..end]);
    out.push_str(&extra);
    out.push_str(&s[end..]);
    Some(Bytes::from(out))
}

/// AWS's message for the codes s3s raises without one.
fn default_message(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        "InvalidBucketName" => "The specified bucket is not valid.",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our \
             published schema."
        }
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "AccessDenied" => "Access Denied",
        "InvalidArgument" => "Invalid Argument",
        "InvalidRequest" => "Invalid Request",
        "InvalidDigest" => "The Content-MD5 you specified is not valid.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        _ => "The request could not be completed.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_error_gets_a_message_and_the_request_id() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code></Error>"#;
        let out = complete(body, "ABC123").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.</Message><RequestId>ABC123</RequestId></Error>"#
        );
    }

    #[test]
    fn a_message_is_kept_and_a_complete_body_is_left_alone() {
        let body = b"<Error><Code>NoSuchKey</Code><Message>mine</Message></Error>";
        let out = complete(body, "R1").unwrap();
        assert_eq!(
            &out[..],
            b"<Error><Code>NoSuchKey</Code><Message>mine</Message><RequestId>R1</RequestId></Error>"
        );
        assert!(complete(&out, "R1").is_none());
        assert!(complete(b"not xml", "R1").is_none());
        assert!(complete(b"", "R1").is_none());
    }
}
