//! The one table that turns engine errors into S3 errors.
//!
//! Every engine failure a client can see passes through [`s3_error`]; nothing else in
//! the frontend invents a status code for an engine error. The frontend's own refusals
//! (authentication rules, aws-chunked framing) are mapped here too, and so are the
//! failures of a browser-form upload's form and policy ([`form_error`],
//! [`policy_error`]).

use crate::auth_rules::Refusal;
use crate::chunk_limits::ChunkRefusal;
use crate::error_answer::ErrorAnswer;
use crate::form::FormError;
use crate::post_policy::PolicyError;
use engine::{EngineError, KeyError};
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for an engine error.
pub fn s3_error(e: EngineError) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        EngineError::NoSuchBucket(_) => C::NoSuchBucket,
        // One account owns every bucket of a node: an existing bucket is always ours.
        EngineError::BucketAlreadyExists(_) => C::BucketAlreadyOwnedByYou,
        EngineError::BucketNotEmpty(_) => C::BucketNotEmpty,
        EngineError::InvalidBucketName { .. } => C::InvalidBucketName,
        EngineError::NoSuchKey => C::NoSuchKey,
        EngineError::InvalidKey(KeyError::TooLong { .. }) => C::KeyTooLongError,
        EngineError::InvalidKey(_) => C::InvalidArgument,
        EngineError::InvalidRange { .. } => C::InvalidRange,
        EngineError::IncompleteBody { .. } => C::IncompleteBody,
        EngineError::EntityTooLarge { .. } => C::EntityTooLarge,
        EngineError::BadDigest => C::BadDigest,
        EngineError::Sha256Mismatch => custom("XAmzContentSHA256Mismatch"),
        EngineError::PreconditionFailed => C::PreconditionFailed,
        EngineError::Body(_) => C::IncompleteBody,
        EngineError::NoSuchUpload => C::NoSuchUpload,
        EngineError::InvalidPart(_) => C::InvalidPart,
        EngineError::InvalidPartOrder => C::InvalidPartOrder,
        EngineError::EntityTooSmall { .. } => C::EntityTooSmall,
        EngineError::InvalidArgument(_) => C::InvalidArgument,
        EngineError::InvalidRequest(_) | EngineError::ImportRefused(_) => C::InvalidRequest,
        EngineError::Poisoned(_) | EngineError::ShuttingDown | EngineError::ColdTier(_) => {
            C::ServiceUnavailable
        }
        // AWS has no code for a full node; 507 tells clients to retry later or elsewhere.
        EngineError::NoSpace(_) => custom(INSUFFICIENT_STORAGE),
        EngineError::KeyspaceFull
        | EngineError::Corrupt(_)
        | EngineError::Io { .. }
        | EngineError::Catalog(_)
        | EngineError::Startup(_) => C::InternalError,
        _ => C::InternalError,
    };
    let message = match &e {
        // Internal details stay in the server log, not in the client's answer.
        EngineError::Corrupt(_) | EngineError::Io { .. } | EngineError::Catalog(_) => {
            "We encountered an internal error. Please try again.".to_owned()
        }
        EngineError::NoSpace(_) => "The node has no space left for this write.".to_owned(),
        EngineError::ColdTier(_) => {
            "The object's data is on the cold tier, which cannot be reached now. Please try \
             again."
                .to_owned()
        }
        EngineError::NoSuchKey => "The specified key does not exist.".to_owned(),
        EngineError::NoSuchBucket(_) => "The specified bucket does not exist.".to_owned(),
        EngineError::NoSuchUpload => "The specified upload does not exist. The upload ID may be \
            invalid, or the upload may have been aborted or completed."
            .to_owned(),
        EngineError::EntityTooSmall { .. } => {
            "Your proposed upload is smaller than the minimum allowed object size.".to_owned()
        }
        EngineError::PreconditionFailed => {
            "At least one of the pre-conditions you specified did not hold".to_owned()
        }
        other => sentence(other.to_string()),
    };
    if code == C::InternalError {
        tracing::error!(error = %e, "engine error");
    } else if let EngineError::ColdTier(_) = e {
        tracing::warn!(error = %e, "cold tier read failed");
    }
    let mut err = S3Error::with_message(code, message);
    if let EngineError::NoSpace(_) = e {
        err.set_status_code(hyper::StatusCode::INSUFFICIENT_STORAGE);
    } else if err.code().status_code().is_none() {
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    if let EngineError::InvalidRange { size } = e {
        err.set_headers(range_headers(size));
    }
    err
}

/// The code of a write refused because the node's disk is full (507). Not an AWS code:
/// AWS never runs out of space.
pub const INSUFFICIENT_STORAGE: &str = "InsufficientStorage";

/// The S3 error for a request refused by the authentication rules, as AWS answers.
pub(crate) fn refusal_error(r: &Refusal) -> S3Error {
    let (code, message) = match r {
        Refusal::SignatureV2 => (
            S3ErrorCode::InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use \
             AWS4-HMAC-SHA256.",
        ),
        Refusal::PresignedTooLong => (
            S3ErrorCode::AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ),
        Refusal::HeadersNotSigned(_) => (
            S3ErrorCode::AccessDenied,
            "There were headers present in the request which were not signed",
        ),
    };
    S3Error::with_message(code, message)
}

/// The answer to a request refused by the authentication rules, with
/// `<HeadersNotSigned>` where AWS writes it.
pub(crate) fn refusal_response(r: &Refusal) -> hyper::Response<s3s::Body> {
    let e = refusal_error(r);
    let mut answer = ErrorAnswer::of(&e);
    if let Refusal::HeadersNotSigned(names) = r {
        answer = answer.with("HeadersNotSigned", names.join(", "));
    }
    answer.response(e.status_code().unwrap_or(hyper::StatusCode::BAD_REQUEST))
}

/// The answer to an aws-chunked body whose framing was refused.
pub(crate) fn chunk_refusal_response(r: &ChunkRefusal) -> hyper::Response<s3s::Body> {
    let e = chunk_error(r);
    ErrorAnswer::of(&e).response(e.status_code().unwrap_or(hyper::StatusCode::BAD_REQUEST))
}

/// The S3 error for an aws-chunked body whose framing was refused; AWS answers chunk
/// size violations with `InvalidChunkSizeError`.
pub(crate) fn chunk_error(r: &ChunkRefusal) -> S3Error {
    let message = match r {
        ChunkRefusal::BeyondDeclaredLength { .. } => {
            "The chunk is longer than what remains of x-amz-decoded-content-length.".to_owned()
        }
        ChunkRefusal::TooLarge { .. } => format!(
            "Signed chunks larger than {} bytes are not accepted.",
            crate::chunk_limits::MAX_SIGNED_CHUNK_BYTES
        ),
    };
    let mut e = S3Error::with_message(custom("InvalidChunkSizeError"), message);
    e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    e
}

/// Why s3s's body decoder ended a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// The body does not match its signed `x-amz-content-sha256`.
    Sha256Mismatch,
    /// An aws-chunked chunk's signature does not match.
    ChunkSignatureMismatch,
    /// The aws-chunked framing is malformed (or its metadata or trailers too large).
    MalformedChunks,
    /// More bytes came than the request declared.
    LongerThanDeclared,
    /// The body ended early, or its stream failed.
    Incomplete,
}

impl BodyFault {
    /// The fault of a body error s3s raised. s3s's decoder error types are private, so
    /// they are known here by the variant names their display writes
    /// (`UploadStreamError: Sha256Mismatch`, `AwsChunkedStreamError: FormatError`,
    /// nested after `Underlying`), each compared whole; anything else is a stream that
    /// failed.
    pub fn of_s3s(text: &str) -> Self {
        text.split(": ")
            .find_map(|word| match word {
                "Sha256Mismatch" => Some(Self::Sha256Mismatch),
                "SignatureMismatch" => Some(Self::ChunkSignatureMismatch),
                "FormatError"
                | "ChunkMetaTooLarge"
                | "TrailersTooLarge"
                | "TooManyTrailerHeaders" => Some(Self::MalformedChunks),
                "LengthMismatch" => Some(Self::LongerThanDeclared),
                _ => None,
            })
            .unwrap_or(Self::Incomplete)
    }
}

/// The S3 error for a request body s3s's decoder refused.
pub fn body_fault_error(f: BodyFault) -> S3Error {
    let (code, message) = match f {
        BodyFault::Sha256Mismatch => (
            custom("XAmzContentSHA256Mismatch"),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ),
        BodyFault::ChunkSignatureMismatch => (
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.",
        ),
        BodyFault::MalformedChunks => (
            S3ErrorCode::InvalidRequest,
            "The aws-chunked body is malformed.",
        ),
        BodyFault::LongerThanDeclared => (
            S3ErrorCode::InvalidRequest,
            "The body is longer than its declared length.",
        ),
        BodyFault::Incomplete => (
            S3ErrorCode::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        ),
    };
    let mut e = S3Error::with_message(code, message);
    if e.code().status_code().is_none() {
        e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    e
}

/// The S3 error for a browser-form upload whose form could not be read.
pub fn form_error(e: &FormError) -> S3Error {
    use S3ErrorCode as C;
    let (code, message) = match e {
        FormError::Malformed(_) => (
            C::MalformedPOSTRequest,
            "The body of your POST request is not well-formed multipart/form-data.".to_owned(),
        ),
        FormError::PreFileTooLarge(_) => (
            C::MaxPostPreDataLengthExceededError,
            "Your POST request fields preceding the upload file were too large.".to_owned(),
        ),
        FormError::DuplicateField(name) => (
            C::InvalidArgument,
            format!("The form field {name} appears more than once."),
        ),
        FormError::NoFile => (
            C::IncorrectNumberOfFilesInPostRequest,
            "POST requires exactly one file upload per request.".to_owned(),
        ),
        FormError::TimedOut => return crate::conn::request_timeout(),
        FormError::Truncated | FormError::Read(_) => (
            C::IncompleteBody,
            "The request body ended before the form did.".to_owned(),
        ),
    };
    let mut err = S3Error::with_message(code, message);
    if err.code().status_code().is_none() {
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    err
}

/// The S3 error for a browser-form upload its POST policy does not allow, in AWS's
/// words ("Invalid according to Policy: ...").
pub fn policy_error(e: PolicyError) -> S3Error {
    use S3ErrorCode as C;
    let (code, message) = match e {
        PolicyError::Malformed(why) => {
            (C::InvalidPolicyDocument, format!("Invalid Policy: {why}."))
        }
        PolicyError::Expired => (
            C::AccessDenied,
            "Invalid according to Policy: Policy expired.".to_owned(),
        ),
        PolicyError::ConditionFailed(c) => (
            C::AccessDenied,
            format!("Invalid according to Policy: Policy Condition failed: {c}"),
        ),
        PolicyError::ExtraFields(names) => (
            C::AccessDenied,
            format!("Invalid according to Policy: Extra input fields: {names}"),
        ),
        PolicyError::TooLarge { .. } => (
            C::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size".to_owned(),
        ),
        PolicyError::TooSmall { .. } => (
            C::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size".to_owned(),
        ),
    };
    let mut err = S3Error::with_message(code, message);
    if err.code().status_code().is_none() {
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    err
}

/// A code s3s does not know by name (it has no status of its own: 400 is set).
pub fn custom(code: &'static str) -> S3ErrorCode {
    S3ErrorCode::Custom(code.into())
}

fn sentence(mut s: String) -> String {
    if let Some(first) = s.get(..1) {
        let up = first.to_ascii_uppercase();
        s.replace_range(..1, &up);
    }
    s.push('.');
    s
}

/// `416` answers say how long the object is.
fn range_headers(size: u64) -> hyper::HeaderMap {
    let mut h = hyper::HeaderMap::new();
    if let Ok(v) = format!("bytes */{size}").parse() {
        h.insert(hyper::header::CONTENT_RANGE, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_has_its_s3_code_and_status() {
        let cases = [
            (EngineError::NoSuchBucket("b".into()), "NoSuchBucket", 404),
            (EngineError::NoSuchKey, "NoSuchKey", 404),
            (
                EngineError::BucketNotEmpty("b".into()),
                "BucketNotEmpty",
                409,
            ),
            (
                EngineError::BucketAlreadyExists("b".into()),
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (EngineError::BadDigest, "BadDigest", 400),
            (
                EngineError::IncompleteBody {
                    got: 1,
                    expected: 2,
                },
                "IncompleteBody",
                400,
            ),
            (EngineError::InvalidRange { size: 3 }, "InvalidRange", 416),
            (EngineError::PreconditionFailed, "PreconditionFailed", 412),
            (
                EngineError::EntityTooLarge { limit: 1 },
                "EntityTooLarge",
                400,
            ),
            (EngineError::Poisoned(0), "ServiceUnavailable", 503),
            (EngineError::NoSuchUpload, "NoSuchUpload", 404),
            (EngineError::InvalidPart("p".into()), "InvalidPart", 400),
            (EngineError::InvalidPartOrder, "InvalidPartOrder", 400),
            (
                EngineError::EntityTooSmall { part: 1, size: 1 },
                "EntityTooSmall",
                400,
            ),
            (
                EngineError::Io {
                    kind: std::io::ErrorKind::Other,
                    message: "disk".into(),
                },
                "InternalError",
                500,
            ),
            (
                EngineError::ColdTier("s3://cold/x.car: refused".into()),
                "ServiceUnavailable",
                503,
            ),
        ];
        for (e, code, status) in cases {
            let s = s3_error(e);
            assert_eq!(s.code().as_str(), code);
            assert_eq!(s.code().status_code().map(|c| c.as_u16()), Some(status));
        }
    }

    #[test]
    fn refusals_have_the_codes_and_statuses_aws_gives() {
        let status = |e: &S3Error| e.status_code().map(|s| s.as_u16());
        let v2 = refusal_error(&Refusal::SignatureV2);
        assert_eq!(
            (v2.code().as_str(), status(&v2)),
            ("InvalidRequest", Some(400))
        );
        let long = refusal_error(&Refusal::PresignedTooLong);
        assert_eq!(
            (long.code().as_str(), status(&long)),
            ("AuthorizationQueryParametersError", Some(400))
        );
        let unsigned = refusal_error(&Refusal::HeadersNotSigned(vec!["x-amz-acl".into()]));
        assert_eq!(
            (unsigned.code().as_str(), status(&unsigned)),
            ("AccessDenied", Some(403))
        );
        let chunk = chunk_error(&ChunkRefusal::TooLarge {
            declared_bytes: 1 << 30,
        });
        assert_eq!(
            (chunk.code().as_str(), status(&chunk)),
            ("InvalidChunkSizeError", Some(400))
        );
    }

    #[test]
    fn internal_details_are_not_sent_to_clients() {
        let s = s3_error(EngineError::Io {
            kind: std::io::ErrorKind::Other,
            message: "/data/shard-0000/seg secret path".into(),
        });
        assert!(!s.message().unwrap_or_default().contains("/data"));
        let s = s3_error(EngineError::NoSpace(
            "/data/shard-0000: 4096 bytes free".into(),
        ));
        assert!(!s.message().unwrap_or_default().contains("/data"));
    }

    #[test]
    fn a_full_disk_is_507_insufficient_storage() {
        let s = s3_error(EngineError::NoSpace("no room for a new segment".into()));
        assert_eq!(s.code().as_str(), "InsufficientStorage");
        assert_eq!(s.status_code().map(|c| c.as_u16()), Some(507));
        assert_eq!(
            s.message(),
            Some("The node has no space left for this write.")
        );
    }

    fn stream_error(text: &str) -> s3s::S3Error {
        body_fault_error(BodyFault::of_s3s(text))
    }

    #[test]
    fn body_decoder_failures_get_their_s3_codes() {
        let code = |t: &str| stream_error(t).code().as_str().to_owned();
        assert_eq!(
            code("UploadStreamError: Sha256Mismatch"),
            "XAmzContentSHA256Mismatch"
        );
        assert_eq!(
            code("AwsChunkedStreamError: SignatureMismatch"),
            "SignatureDoesNotMatch"
        );
        assert_eq!(code("AwsChunkedStreamError: Incomplete"), "IncompleteBody");
        assert_eq!(code("connection reset"), "IncompleteBody");
        assert_eq!(code("AwsChunkedStreamError: FormatError"), "InvalidRequest");
        assert_eq!(
            stream_error("Sha256Mismatch")
                .status_code()
                .map(|s| s.as_u16()),
            Some(400)
        );
    }

    #[test]
    fn nested_and_detailed_decoder_errors_are_read_by_variant() {
        assert_eq!(
            BodyFault::of_s3s(
                "UploadStreamError: Underlying: AwsChunkedStreamError: SignatureMismatch"
            ),
            BodyFault::ChunkSignatureMismatch
        );
        assert_eq!(
            BodyFault::of_s3s("AwsChunkedStreamError: ChunkMetaTooLarge: size 9 exceeds limit 8"),
            BodyFault::MalformedChunks
        );
        assert_eq!(
            BodyFault::of_s3s("UploadStreamError: LengthMismatch"),
            BodyFault::LongerThanDeclared
        );
    }
}
