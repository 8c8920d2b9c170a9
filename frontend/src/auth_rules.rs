//! Authentication rules checked on a request's head before s3s sees it, for every
//! route (S3 operations and the admin endpoint alike):
//!
//! - Signature Version 2 (`Authorization: AWS …`, or `AWSAccessKeyId`/`Signature` in
//!   the query) is refused, as AWS refuses it where only SigV4 is accepted. SigV2 has
//!   no request date in its signature check here and signs no body hash.
//! - A presigned URL lives at most a week: `X-Amz-Expires` is read from the decoded
//!   query, as s3s reads it, so `X-Amz-%45xpires` is the same parameter.
//! - `host` and every `x-amz-*` header present must be signed (`SignedHeaders` of the
//!   `Authorization` header, or `X-Amz-SignedHeaders` of a presigned URL): an unsigned
//!   `x-amz-copy-source` must not turn a signed PUT into a copy.
//!
//! Nothing here needs the secret key; the signature itself is s3s's to check.

use hyper::{HeaderMap, Uri};

/// Longest lifetime of a SigV4 presigned URL, as on AWS: a week.
pub(crate) const MAX_PRESIGNED_EXPIRES_S: u64 = 7 * 24 * 3600;

/// Headers a presigned request may carry unsigned although they are `x-amz-*`.
/// aws-sdk-rust (aws-sigv4) leaves exactly these out of a presigned signature while
/// keeping them among the headers it tells the caller to send: the SDK's name and
/// version, and a request for checksum headers in the answer. Neither can change what
/// is written or read. Header-signed requests get no exemption: every signer checked
/// (aws-sigv4, botocore, aws-sdk-go v1/v2, the Java SDK) signs all `x-amz-*` headers
/// and leaves out only `user-agent`, `x-amzn-trace-id`, `expect`, `transfer-encoding`
/// and `authorization`, none of them `x-amz-*`.
const PRESIGNED_UNSIGNED_OK: [&str; 2] = ["x-amz-user-agent", "x-amz-checksum-mode"];

/// Why a request was refused before its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("signature version 2 is not accepted")]
    SignatureV2,
    #[error("presigned URL valid for more than {MAX_PRESIGNED_EXPIRES_S} s")]
    PresignedTooLong,
    #[error("headers present but not signed: {}", .0.join(", "))]
    HeadersNotSigned(Vec<String>),
}

/// Checks the request head; `Err` says why it must be refused.
pub(crate) fn screen(headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
    let query = decoded_query(uri);
    let param = |name: &'static str| values(&query, name);
    let authorization = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorization.is_some_and(|a| a.starts_with("AWS "))
        || param("Signature").next().is_some()
        || param("AWSAccessKeyId").next().is_some()
    {
        return Err(Refusal::SignatureV2);
    }
    let too_long = |v: &str| !v.parse::<u64>().is_ok_and(|s| s <= MAX_PRESIGNED_EXPIRES_S);
    if param("X-Amz-Expires").any(too_long) {
        return Err(Refusal::PresignedTooLong);
    }
    let presigned = param("X-Amz-Signature").next().is_some();
    let signed: Option<Vec<String>> = if presigned {
        param("X-Amz-SignedHeaders").next().map(|v| names(v, ';'))
    } else {
        authorization.and_then(signed_headers_of)
    };
    // Unparsable signing fields are s3s's to refuse; anonymous requests are refused later.
    let Some(signed) = signed else {
        return Ok(());
    };
    let exempt: &[&str] = if presigned {
        &PRESIGNED_UNSIGNED_OK
    } else {
        &[]
    };
    let mut missing: Vec<String> = Vec::new();
    if !signed.iter().any(|h| h == "host") {
        missing.push("host".to_owned());
    }
    for name in headers.keys().map(|k| k.as_str()) {
        if name.starts_with("x-amz-")
            && !exempt.contains(&name)
            && !signed.iter().any(|h| h == name)
            && !missing.iter().any(|m| m == name)
        {
            missing.push(name.to_owned());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Refusal::HeadersNotSigned(missing))
    }
}

/// The query as s3s reads it: names and values form-decoded.
fn decoded_query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The values of query parameter `name`.
fn values<'a>(query: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    query
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Lower-cased header names of a `SignedHeaders` list.
fn names(list: &str, sep: char) -> Vec<String> {
    list.split(sep)
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `SignedHeaders` of a SigV4 `Authorization` header, if it is one.
fn signed_headers_of(authorization: &str) -> Option<Vec<String>> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    rest.split(',')
        .find_map(|part| part.trim().strip_prefix("SignedHeaders="))
        .map(|v| names(v, ';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        screen(&h, &uri.parse().unwrap())
    }

    const V4: &str = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, \
        SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00";

    #[test]
    fn signature_version_2_is_refused_in_header_and_query() {
        let v2 = Err(Refusal::SignatureV2);
        assert_eq!(check("/b/k", &[("authorization", "AWS AK:c2ln")]), v2);
        assert_eq!(
            check("/b/k?AWSAccessKeyId=AK&Expires=1&Signature=x", &[]),
            v2
        );
        assert_eq!(check("/b/k?%53ignature=x", &[]), v2);
        assert_eq!(
            check(
                "/b/k",
                &[
                    ("authorization", V4),
                    ("host", "h"),
                    ("x-amz-date", "d"),
                    ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                ]
            ),
            Ok(())
        );
    }

    #[test]
    fn presigned_lifetime_is_read_from_the_decoded_query() {
        let long = Err(Refusal::PresignedTooLong);
        assert_eq!(check("/b/k?X-Amz-Expires=604800", &[]), Ok(()));
        assert_eq!(check("/b/k?X-Amz-Expires=604801", &[]), long);
        assert_eq!(check("/b/k?X-Amz-%45xpires=4294967295", &[]), long);
        assert_eq!(check("/b?ingot-export&X-Amz-Expires=-1", &[]), long);
        assert_eq!(
            check("/b/k?X-Amz-Expires=1&X-Amz-Expires=999999999", &[]),
            long
        );
    }

    #[test]
    fn host_and_every_x_amz_header_must_be_signed() {
        let base = [
            ("authorization", V4),
            ("host", "h"),
            ("x-amz-date", "d"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        let mut copy = base.to_vec();
        copy.push(("x-amz-copy-source", "/b/secret"));
        assert_eq!(
            check("/b/k", &copy),
            Err(Refusal::HeadersNotSigned(vec!["x-amz-copy-source".into()]))
        );
        let no_host = V4.replace("host;", "");
        assert_eq!(
            check(
                "/b/k",
                &[
                    ("authorization", &no_host),
                    ("host", "h"),
                    ("x-amz-date", "d"),
                    ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                ]
            ),
            Err(Refusal::HeadersNotSigned(vec!["host".into()]))
        );
        // Headers outside x-amz-* may stay unsigned, as every SDK leaves some.
        let mut ua = base.to_vec();
        ua.extend([
            ("user-agent", "x"),
            ("x-amzn-trace-id", "t"),
            ("content-length", "0"),
        ]);
        assert_eq!(check("/b/k", &ua), Ok(()));
        // x-amz-user-agent is exempt on presigned URLs only.
        let pre = "/b/k?X-Amz-Signature=00&X-Amz-SignedHeaders=host&X-Amz-Expires=60";
        assert_eq!(
            check(pre, &[("host", "h"), ("x-amz-user-agent", "sdk")]),
            Ok(())
        );
        assert_eq!(
            check(pre, &[("host", "h"), ("x-amz-acl", "public-read")]),
            Err(Refusal::HeadersNotSigned(vec!["x-amz-acl".into()]))
        );
        let mut sdk = base.to_vec();
        sdk.push(("x-amz-user-agent", "sdk"));
        assert!(check("/b/k", &sdk).is_err());
    }
}
