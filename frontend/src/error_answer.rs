//! An S3 error answer, typed from where it is made to the wire.
//!
//! AWS writes every error body with a `<Message>` and the request's `<RequestId>` (the
//! same as the `x-amz-request-id` header). The request id is only known to the server,
//! after the error was made, so an error travels as an [`ErrorAnswer`] (code, message,
//! extra elements) in the response's extensions; the server writes the body from it
//! ([`ErrorAnswer::body`]) and logs its code. Nothing reads back XML the frontend wrote.
//!
//! s3s serializes the errors our handlers return before the server sees the response,
//! so handlers keep a copy in the request's [`ErrorSlot`]. s3s also raises errors of its
//! own (a bad signature, an invalid bucket name, malformed XML) and offers no hook to
//! see them: for those alone the code and message are read from the body s3s wrote
//! ([`ErrorAnswer::from_s3s_body`]).

use bytes::Bytes;
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::sync::{Arc, Mutex};

/// What an error answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    code: S3ErrorCode,
    /// `None`: AWS's message for the code ([`default_message`]).
    message: Option<String>,
    /// Elements AWS writes after `<Message>` for some errors (`<HeadersNotSigned>`).
    extra: Vec<(&'static str, String)>,
}

impl ErrorAnswer {
    pub(crate) fn of(e: &S3Error) -> Self {
        Self {
            code: e.code().clone(),
            message: e.message().map(str::to_owned),
            extra: Vec::new(),
        }
    }

    /// The answer with one more element after `<Message>`.
    pub(crate) fn with(mut self, element: &'static str, text: String) -> Self {
        self.extra.push((element, text));
        self
    }

    /// An error response with this answer; the server writes its body, with the
    /// request id, as for every error.
    pub(crate) fn response(self, status: hyper::StatusCode) -> hyper::Response<s3s::Body> {
        let mut r = hyper::Response::new(s3s::Body::empty());
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/xml"),
        );
        r.extensions_mut().insert(self);
        r
    }

    pub(crate) fn code(&self) -> &S3ErrorCode {
        &self.code
    }

    /// The error body AWS writes: code, message, extra elements, request id.
    pub(crate) fn body(&self, request_id: &str) -> Bytes {
        let message = self
            .message
            .as_deref()
            .unwrap_or_else(|| default_message(&self.code));
        let mut buf = Vec::with_capacity(256);
        let mut ser = s3s::xml::Serializer::new(&mut buf);
        let written = ser.decl().and_then(|()| {
            ser.element("Error", |s| {
                s.content("Code", self.code.as_str())?;
                s.content("Message", message)?;
                for (name, text) in &self.extra {
                    s.content(name, text.as_str())?;
                }
                s.content("RequestId", request_id)
            })
        });
        // Writing into a Vec cannot fail.
        debug_assert!(written.is_ok());
        Bytes::from(buf)
    }

    /// The code and message of an error s3s raised and serialized itself (see the
    /// module note); `None` when `body` is not an S3 error body.
    pub(crate) fn from_s3s_body(body: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(body).ok()?;
        let element = |name: &str| {
            let open = format!("<{name}>");
            let start = s.find(&open)? + open.len();
            let end = s[start..].find(&format!("</{name}>"))? + start;
            Some(unescape(&s[start..end]))
        };
        let code = element("Code")?;
        Some(Self {
            code: S3ErrorCode::from_bytes(code.as_bytes())?,
            message: element("Message"),
            extra: Vec::new(),
        })
    }
}

/// Where a handler leaves the error it returns to s3s, for the server to answer with
/// it typed (s3s hands back only the serialized body). One per request, in the
/// request's extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorSlot(Arc<Mutex<Option<ErrorAnswer>>>);

impl ErrorSlot {
    /// The slot of the request with these extensions (a detached one if it has none:
    /// then s3s's body is read, as for its own errors).
    pub(crate) fn of(extensions: &hyper::http::Extensions) -> Self {
        extensions.get::<Self>().cloned().unwrap_or_default()
    }

    /// `r`, its error kept in the slot.
    pub(crate) fn keep<T>(&self, r: S3Result<T>) -> S3Result<T> {
        if let Err(e) = &r
            && let Ok(mut slot) = self.0.lock()
        {
            *slot = Some(ErrorAnswer::of(e));
        }
        r
    }

    pub(crate) fn take(&self) -> Option<ErrorAnswer> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// AWS's message for the codes s3s raises without one.
fn default_message(code: &S3ErrorCode) -> &'static str {
    use S3ErrorCode as C;
    match code {
        C::SignatureDoesNotMatch => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        C::InvalidBucketName => "The specified bucket is not valid.",
        C::MalformedXML => {
            "The XML you provided was not well-formed or did not validate against our \
             published schema."
        }
        C::MissingContentLength => "You must provide the Content-Length HTTP header.",
        C::MethodNotAllowed => "The specified method is not allowed against this resource.",
        C::AccessDenied => "Access Denied",
        C::InvalidArgument => "Invalid Argument",
        C::InvalidRequest => "Invalid Request",
        C::InvalidDigest => "The Content-MD5 you specified is not valid.",
        C::NotImplemented => "A header you provided implies functionality that is not implemented.",
        _ => "The request could not be completed.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_error_gets_a_message_and_the_request_id() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code></Error>"#;
        let answer = ErrorAnswer::from_s3s_body(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&answer.body("ABC123")).unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.</Message><RequestId>ABC123</RequestId></Error>"#
        );
    }

    #[test]
    fn a_message_is_kept_and_extra_elements_follow_it() {
        let e = S3Error::with_message(S3ErrorCode::NoSuchKey, "mine & <yours>");
        let answer = ErrorAnswer::of(&e).with("HeadersNotSigned", "x-amz-acl".into());
        let body = answer.body("R1");
        assert!(
            std::str::from_utf8(&body).unwrap().ends_with(
                "<Error><Code>NoSuchKey</Code><Message>mine &amp; &lt;yours&gt;</Message>\
                 <HeadersNotSigned>x-amz-acl</HeadersNotSigned><RequestId>R1</RequestId></Error>"
            ),
            "{body:?}"
        );
        // What s3s wrote reads back as what it was made from.
        let read = ErrorAnswer::from_s3s_body(&ErrorAnswer::of(&e).body("R1")).unwrap();
        assert_eq!(read, ErrorAnswer::of(&e));
        assert!(ErrorAnswer::from_s3s_body(b"not xml").is_none());
        assert!(ErrorAnswer::from_s3s_body(b"").is_none());
    }

    #[test]
    fn a_slot_keeps_the_error_a_handler_returned() {
        let slot = ErrorSlot::default();
        let ok: S3Result<u8> = slot.keep(Ok(1));
        assert_eq!(ok.ok(), Some(1));
        assert!(slot.take().is_none());
        let _ = slot.keep::<u8>(Err(S3Error::new(S3ErrorCode::NoSuchBucket)));
        assert_eq!(
            slot.take().map(|a| a.code().clone()),
            Some(S3ErrorCode::NoSuchBucket)
        );
    }
}
