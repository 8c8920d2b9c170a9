//! The parts of an S3 error document a client shows: `<Code>` and `<Message>`.

/// What an S3 error body says (either part may be missing: a proxy's HTML page, an
/// empty body to a HEAD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// The S3 error code (`NoSuchKey`).
    pub code: Option<String>,
    /// The human-readable message, XML entities decoded.
    pub message: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        Self {
            code: element(&text, "Code"),
            message: element(&text, "Message"),
        }
    }
}

/// The text of the first `<tag>…</tag>`, entities decoded.
fn element(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&text[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_found_and_decoded() {
        let b = ErrorBody::parse(
            b"<Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; c</Message></Error>",
        );
        assert_eq!(b.code.as_deref(), Some("NoSuchKey"));
        assert_eq!(b.message.as_deref(), Some("a <b> & c"));
        assert_eq!(ErrorBody::parse(b""), ErrorBody::default());
        assert_eq!(ErrorBody::parse(b"<Error><Code>X</Code>").message, None);
    }
}
