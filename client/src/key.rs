//! Percent-encoding for request targets, as S3 and SigV4 want it.

/// Percent-encodes a key for a path: everything but unreserved characters and `/`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if is_unreserved(b) || b == b'/' {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Percent-encodes a query-string value: everything but unreserved characters (`/`
/// is escaped too).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~')
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_query_values_do_not() {
        assert_eq!(encode_key("a b/ü+x"), "a%20b/%C3%BC%2Bx");
        assert_eq!(encode_key("a-_.~Z9"), "a-_.~Z9");
        assert_eq!(encode_query_value("bench/a b"), "bench%2Fa%20b");
        assert_eq!(encode_query_value(""), "");
    }
}
