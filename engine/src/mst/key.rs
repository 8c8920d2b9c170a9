//! MST keys: validity rules, heights and shared prefixes (`docs/format.md` §1.1–1.3).

use sha2::{Digest, Sha256};

/// Longest key the tree accepts, in bytes (S3's key limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a byte string is not a valid bucket key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key is {len} bytes long; the limit is {MAX_KEY_BYTES}")]
    TooLong { len: usize },
    #[error("key is not valid UTF-8")]
    NotUtf8,
    #[error("key contains a NUL byte")]
    Nul,
}

/// Checks the key rules: 1..=1024 bytes of valid UTF-8 without NUL.
pub fn validate_key(key: &[u8]) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong { len: key.len() });
    }
    if key.contains(&0) {
        return Err(KeyError::Nul);
    }
    if std::str::from_utf8(key).is_err() {
        return Err(KeyError::NotUtf8);
    }
    Ok(())
}

/// The layer a key lives on: half the number of leading zero bits of SHA-256(key),
/// rounded down (each layer up is four times rarer). Defined for any bytes, even "".
pub fn key_height(key: &[u8]) -> u8 {
    let digest = Sha256::digest(key);
    let mut zero_bits = 0u32;
    for &b in digest.iter() {
        if b == 0 {
            zero_bits += 8;
        } else {
            zero_bits += b.leading_zeros();
            break;
        }
    }
    (zero_bits / 2) as u8
}

/// Length in bytes of the common prefix of `a` and `b`.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(key_height(b"2653ae71"), 0);
        assert_eq!(key_height(b"blue"), 1);
        assert_eq!(key_height(b"88bfafc7"), 2);
        assert_eq!(key_height(b"2a92d355"), 4);
        assert_eq!(key_height(b"884976f5"), 6);
        assert_eq!(key_height(b"app.bsky.feed.post/454397e440ec"), 4);
        assert_eq!(key_height(b"app.bsky.feed.post/9adeb165882c"), 8);
        assert_eq!(key_height(b""), 0);
    }

    #[test]
    fn key_rules() {
        assert_eq!(validate_key(b""), Err(KeyError::Empty));
        assert_eq!(validate_key(&[b'a'; 1024]), Ok(()));
        assert_eq!(
            validate_key(&[b'a'; 1025]),
            Err(KeyError::TooLong { len: 1025 })
        );
        assert_eq!(validate_key(b"a\0b"), Err(KeyError::Nul));
        assert_eq!(validate_key(&[b'a', 0xff]), Err(KeyError::NotUtf8));
        assert_eq!(validate_key("coöperative/😀".as_bytes()), Ok(()));
    }
}
