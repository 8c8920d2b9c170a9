//! SigV4 for S3, with aws-sigv4 (the signer the AWS SDKs use): paths are encoded once
//! and never normalised (S3's rules, not the generic AWS ones), and the payload hash is
//! always sent in `x-amz-content-sha256`.

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use std::time::{Duration, SystemTime};

/// The payload hash a request is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// `UNSIGNED-PAYLOAD`: the body is not hashed (it streams, or is not worth hashing).
    Unsigned,
    /// The body's SHA-256, lowercase hex: the server refuses a body that hashes
    /// otherwise.
    Sha256Hex(&'a str),
}

impl Payload<'_> {
    /// The value of `x-amz-content-sha256`.
    pub fn header_value(&self) -> &str {
        match self {
            Payload::Unsigned => "UNSIGNED-PAYLOAD",
            Payload::Sha256Hex(h) => h,
        }
    }
}

/// Why a request could not be signed (a URL or header aws-sigv4 will not take).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SignError(String);

fn sign_error(e: impl std::fmt::Display) -> SignError {
    SignError(e.to_string())
}

/// The headers that sign a request, borrowed by the caller as it builds the request
/// (no copy per request: the load generator signs every one).
#[derive(Debug)]
pub struct Signature(aws_sigv4::http_request::SigningInstructions);

impl Signature {
    /// `(name, value)` of each header to add.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.headers()
    }
}

/// A signing identity and region, built once and used for every request.
pub struct Signer {
    identity: aws_smithy_runtime_api::client::identity::Identity,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Self {
        let identity =
            aws_credential_types::Credentials::new(access_key, secret_key, None, None, "ingot")
                .into();
        Self {
            identity,
            region: region.to_owned(),
        }
    }

    /// The headers that sign a request (`authorization`, `x-amz-date`) to `url`
    /// (scheme, host, percent-encoded path and query) carrying `headers`, which must
    /// include `host` and `x-amz-content-sha256` (= `payload`).
    pub fn sign_headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        at: SystemTime,
    ) -> Result<Signature, SignError> {
        debug_assert!(
            headers
                .iter()
                .any(|(k, v)| *k == "x-amz-content-sha256" && *v == payload.header_value()),
            "the payload hash is sent and signed"
        );
        let mut settings = s3_settings();
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        let body = SignableBody::Precomputed(payload.header_value().to_owned());
        let signable =
            SignableRequest::new(method, url, headers.iter().copied(), body).map_err(sign_error)?;
        Ok(Signature(self.instructions(signable, settings, at)?))
    }

    /// The query parameters (`X-Amz-Algorithm=…&X-Amz-Signature=…`, encoded) that
    /// presign a `method` request to `url` for `expires`, signing `headers` besides
    /// `host`. The body is `UNSIGNED-PAYLOAD`.
    pub fn presign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        expires: Duration,
        at: SystemTime,
    ) -> Result<String, SignError> {
        let mut settings = s3_settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(sign_error)?;
        let out = self.instructions(signable, settings, at)?;
        Ok(out
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::key::encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&"))
    }

    fn instructions(
        &self,
        signable: SignableRequest<'_>,
        settings: SigningSettings,
        at: SystemTime,
    ) -> Result<aws_sigv4::http_request::SigningInstructions, SignError> {
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(at)
            .settings(settings)
            .build()
            .map_err(sign_error)?
            .into();
        Ok(sign(signable, &params).map_err(sign_error)?.into_parts().0)
    }
}

/// S3's signing rules: paths encoded once (the caller's encoding is the canonical
/// one) and never normalised (`a/../b` is a key, not a path to simplify).
fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_payload_and_presigned_queries_carry_the_expiry() {
        let s = Signer::new("AKID", "secret", "us-east-1");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let h = |p: Payload<'_>| {
            let headers = [("host", "h:1"), ("x-amz-content-sha256", p.header_value())];
            s.sign_headers("PUT", "http://h:1/b/k", &headers, p, at)
                .unwrap()
        };
        let unsigned = h(Payload::Unsigned);
        let auth = |v: &Signature| {
            v.headers()
                .find(|(k, _)| *k == "authorization")
                .map(|(_, v)| v.to_owned())
                .unwrap()
        };
        assert!(auth(&unsigned).starts_with("AWS4-HMAC-SHA256 Credential=AKID/"));
        assert!(auth(&unsigned).contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
        assert_ne!(
            auth(&unsigned),
            auth(&h(Payload::Sha256Hex(crate::EMPTY_SHA256)))
        );
        let q = s
            .presign("GET", "http://h:1/b/k", &[], Duration::from_secs(60), at)
            .unwrap();
        assert!(q.contains("X-Amz-Expires=60"), "{q}");
        assert!(q.contains("X-Amz-Credential=AKID%2F"), "{q}");
    }
}
