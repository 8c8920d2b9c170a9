//! The POST policy of a browser-form upload: a base64 JSON document, signed by the
//! form's issuer, that says until when the form may be used and what its fields may
//! hold.
//!
//! ```json
//! { "expiration": "2026-12-01T12:00:00.000Z",
//!   "conditions": [ {"bucket": "photos"}, ["starts-with", "$key", "user/"],
//!                   ["eq", "$x-amz-meta-owner", "ann"],
//!                   ["content-length-range", 1, 10485760] ] }
//! ```
//!
//! Every condition must hold, and, as on AWS, every form field must be matched by some
//! condition, except `x-amz-signature`, `file`, `policy` and `x-ignore-*`: a form
//! cannot carry a field its issuer did not foresee. Field names compare without case,
//! values exactly. A condition on a field the form lacks sees an empty value.

use time::OffsetDateTime;

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The field (lower-cased, without `$`) equals the value.
    Eq { field: String, value: String },
    /// The field starts with the prefix (an empty prefix allows anything).
    StartsWith { field: String, prefix: String },
    /// The file's size in bytes is within `min..=max`.
    LengthRange { min: u64, max: u64 },
}

impl Condition {
    fn names(&self, field: &str) -> bool {
        match self {
            Self::Eq { field: f, .. } | Self::StartsWith { field: f, .. } => f == field,
            Self::LengthRange { .. } => false,
        }
    }

    /// The condition as AWS quotes it in a refusal.
    fn describe(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        match self {
            Self::Eq { field, value } => {
                format!("[\"eq\", {}, {}]", q(&format!("${field}")), q(value))
            }
            Self::StartsWith { field, prefix } => format!(
                "[\"starts-with\", {}, {}]",
                q(&format!("${field}")),
                q(prefix)
            ),
            Self::LengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy document: {0}")]
    Malformed(&'static str),
    #[error("policy expired")]
    Expired,
    #[error("policy condition failed: {0}")]
    ConditionFailed(String),
    #[error("form fields no condition names: {0}")]
    ExtraFields(String),
    #[error("the file is over {max} bytes")]
    TooLarge { max: u64 },
    #[error("the file is under {min} bytes")]
    TooSmall { min: u64 },
}

/// A decoded policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    expiration: OffsetDateTime,
    conditions: Vec<Condition>,
}

/// Fields no condition needs to name.
fn exempt(field: &str) -> bool {
    matches!(field, "x-amz-signature" | "file" | "policy") || field.starts_with("x-ignore-")
}

impl Policy {
    /// Decodes the `policy` field of a form (base64 of a JSON document).
    pub fn from_base64(b64: &str) -> Result<Self, PolicyError> {
        let json = base64_simd::STANDARD
            .decode_to_vec(b64.trim())
            .map_err(|_| PolicyError::Malformed("the policy is not base64"))?;
        let doc: serde_json::Value = serde_json::from_slice(&json)
            .map_err(|_| PolicyError::Malformed("the policy is not JSON"))?;
        let expiration = doc
            .get("expiration")
            .and_then(serde_json::Value::as_str)
            .ok_or(PolicyError::Malformed("the policy has no expiration"))?;
        let expiration =
            s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::DateTime, expiration)
                .map_err(|_| PolicyError::Malformed("the expiration is not an ISO 8601 time"))?
                .into();
        let list = doc
            .get("conditions")
            .and_then(serde_json::Value::as_array)
            .ok_or(PolicyError::Malformed("the policy has no conditions list"))?;
        let mut conditions = Vec::with_capacity(list.len());
        for c in list {
            conditions.extend(conditions_of(c)?);
        }
        Ok(Self {
            expiration,
            conditions,
        })
    }

    /// Checks the policy against a form's fields (names lower-cased) at `now`.
    pub fn check(&self, fields: &[(&str, &str)], now: OffsetDateTime) -> Result<(), PolicyError> {
        if now >= self.expiration {
            return Err(PolicyError::Expired);
        }
        let value_of = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| *v)
        };
        for c in &self.conditions {
            let holds = match c {
                Condition::Eq { field, value } => value_of(field) == value,
                Condition::StartsWith { field, prefix } => {
                    value_of(field).starts_with(prefix.as_str())
                }
                Condition::LengthRange { .. } => true, // checked while the file streams
            };
            if !holds {
                return Err(PolicyError::ConditionFailed(c.describe()));
            }
        }
        let extra: Vec<&str> = fields
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !exempt(n) && !self.conditions.iter().any(|c| c.names(n)))
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::ExtraFields(extra.join(", ")))
        }
    }

    /// The file sizes every `content-length-range` allows (`0..=u64::MAX` without one).
    pub fn length_range(&self) -> (u64, u64) {
        self.conditions
            .iter()
            .fold((0, u64::MAX), |(lo, hi), c| match c {
                Condition::LengthRange { min, max } => (lo.max(*min), hi.min(*max)),
                _ => (lo, hi),
            })
    }
}

/// The conditions one list entry holds: `{"field": "value", ...}` (each an exact
/// match) or `[op, ...]`.
fn conditions_of(c: &serde_json::Value) -> Result<Vec<Condition>, PolicyError> {
    use serde_json::Value;
    match c {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let value = v.as_str().ok_or(PolicyError::Malformed(
                    "a condition's value is not a string",
                ))?;
                Ok(Condition::Eq {
                    field: k.trim_start_matches('$').to_ascii_lowercase(),
                    value: value.to_owned(),
                })
            })
            .collect(),
        Value::Array(items) => Ok(vec![array_condition(items)?]),
        _ => Err(PolicyError::Malformed(
            "a condition is neither an object nor a list",
        )),
    }
}

fn array_condition(items: &[serde_json::Value]) -> Result<Condition, PolicyError> {
    let bad = PolicyError::Malformed;
    let [op, a, b] = items else {
        return Err(bad("a condition list does not have three entries"));
    };
    let op = op
        .as_str()
        .ok_or(bad("a condition's operator is not a string"))?;
    if op.eq_ignore_ascii_case("content-length-range") {
        let (min, max) = (length(a)?, length(b)?);
        if min > max {
            return Err(bad("content-length-range's minimum is over its maximum"));
        }
        return Ok(Condition::LengthRange { min, max });
    }
    let field = a
        .as_str()
        .and_then(|f| f.strip_prefix('$'))
        .ok_or(bad("a condition's field does not start with $"))?
        .to_ascii_lowercase();
    let value = b
        .as_str()
        .ok_or(bad("a condition's value is not a string"))?
        .to_owned();
    if op.eq_ignore_ascii_case("eq") {
        Ok(Condition::Eq { field, value })
    } else if op.eq_ignore_ascii_case("starts-with") {
        Ok(Condition::StartsWith {
            field,
            prefix: value,
        })
    } else {
        Err(bad(
            "a condition's operator is not eq, starts-with or content-length-range",
        ))
    }
}

/// A size bound: a non-negative integer (some SDKs write it as a string).
fn length(v: &serde_json::Value) -> Result<u64, PolicyError> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or(PolicyError::Malformed(
            "a content-length-range bound is not a non-negative integer",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<Policy, PolicyError> {
        Policy::from_base64(&base64_simd::STANDARD.encode_to_string(json))
    }

    fn at(s: &str) -> OffsetDateTime {
        s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::DateTime, s)
            .unwrap()
            .into()
    }

    const NOW: &str = "2026-06-01T00:00:00Z";

    fn doc(conditions: &str) -> String {
        format!(r#"{{"expiration": "2026-06-01T00:00:01.000Z", "conditions": [{conditions}]}}"#)
    }

    #[test]
    fn every_condition_kind_passes_a_form_that_meets_it() {
        let p = policy(&doc(
            r#"{"bucket": "b"}, ["eq", "$Key", "a/b"], ["starts-with", "$Content-Type", "image/"],
               ["starts-with", "$x-amz-meta-note", ""], ["content-length-range", 1, "10"]"#,
        ))
        .unwrap();
        let fields = [
            ("bucket", "b"),
            ("key", "a/b"),
            ("content-type", "image/png"),
            ("x-amz-meta-note", "anything"),
            ("policy", "…"),
            ("x-amz-signature", "…"),
            ("x-ignore-me", "1"),
        ];
        assert_eq!(p.check(&fields, at(NOW)), Ok(()));
        assert_eq!(p.length_range(), (1, 10));
    }

    #[test]
    fn a_violated_condition_is_named_as_aws_names_it() {
        let p = policy(&doc(
            r#"{"bucket": "b"}, ["eq", "$key", "a"], ["starts-with", "$content-type", "image/"]"#,
        ))
        .unwrap();
        let check = |key, ct| {
            p.check(
                &[("bucket", "b"), ("key", key), ("content-type", ct)],
                at(NOW),
            )
        };
        assert_eq!(
            check("x", "image/png"),
            Err(PolicyError::ConditionFailed(
                r#"["eq", "$key", "a"]"#.into()
            ))
        );
        assert_eq!(
            check("a", "text/html"),
            Err(PolicyError::ConditionFailed(
                r#"["starts-with", "$content-type", "image/"]"#.into()
            ))
        );
        // A missing field is empty: it fails a non-empty eq.
        assert_eq!(
            p.check(&[("bucket", "b"), ("content-type", "image/x")], at(NOW)),
            Err(PolicyError::ConditionFailed(
                r#"["eq", "$key", "a"]"#.into()
            ))
        );
    }

    #[test]
    fn a_field_no_condition_names_is_refused() {
        let p = policy(&doc(r#"{"bucket": "b"}, ["starts-with", "$key", ""]"#)).unwrap();
        assert_eq!(
            p.check(
                &[("bucket", "b"), ("key", "k"), ("acl", "private")],
                at(NOW)
            ),
            Err(PolicyError::ExtraFields("acl".into()))
        );
        let p = policy(&doc(r#"["starts-with", "$key", ""]"#)).unwrap();
        assert_eq!(
            p.check(&[("bucket", "b"), ("key", "k")], at(NOW)),
            Err(PolicyError::ExtraFields("bucket".into()))
        );
    }

    #[test]
    fn an_expired_policy_is_refused() {
        let p = policy(&doc(r#"{"bucket": "b"}"#)).unwrap();
        assert_eq!(
            p.check(&[("bucket", "b")], at("2026-06-01T00:00:00.999Z")),
            Ok(())
        );
        assert_eq!(
            p.check(&[("bucket", "b")], at("2026-06-01T00:00:01Z")),
            Err(PolicyError::Expired)
        );
    }

    #[test]
    fn several_length_ranges_all_apply() {
        let p = policy(&doc(
            r#"["content-length-range", 5, 100], ["content-length-range", 0, 50]"#,
        ))
        .unwrap();
        assert_eq!(p.length_range(), (5, 50));
        assert_eq!(policy(&doc("")).unwrap().length_range(), (0, u64::MAX));
    }

    #[test]
    fn malformed_policies_are_refused() {
        let bad = |json: &str| matches!(policy(json), Err(PolicyError::Malformed(_)));
        assert!(bad("not json"));
        assert!(bad(r#"{"conditions": []}"#));
        assert!(bad(r#"{"expiration": "tomorrow", "conditions": []}"#));
        assert!(bad(r#"{"expiration": "2026-06-01T00:00:01Z"}"#));
        assert!(bad(&doc(r#"["eq", "key", "a"]"#)));
        assert!(bad(&doc(r#"["in", "$key", "a"]"#)));
        assert!(bad(&doc(r#"["eq", "$key"]"#)));
        assert!(bad(&doc(r#"{"key": 5}"#)));
        assert!(bad(&doc(r#"["content-length-range", 10, 1]"#)));
        assert!(bad(&doc(r#"["content-length-range", -1, 1]"#)));
        assert!(bad(&doc("5")));
        assert!(matches!(
            Policy::from_base64("!!!"),
            Err(PolicyError::Malformed(_))
        ));
    }
}
