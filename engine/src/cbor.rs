//! Canonical DAG-CBOR: the one writer and the one strict reader every block goes through.
//!
//! Writer invariants (DRISL / DAG-CBOR canonical form): definite lengths only, the
//! shortest integer and length heads, map keys sorted length-first then bytewise (the
//! callers emit fields in that order; [`encode_ipld`] sorts generic maps), links as tag 42
//! around `0x00 ++ binary CID`, no floats in our own formats.
//!
//! Reader invariants: every rule above is checked, so a successful strict decode followed
//! by an encode reproduces the input bytes. Lengths are checked against the remaining
//! input before anything is allocated, nesting is bounded, and no input can make it panic.

use cid::Cid;
#[cfg(any(test, feature = "testing"))]
use ipld_core::ipld::Ipld;
#[cfg(any(test, feature = "testing"))]
use std::collections::BTreeMap;

/// CBOR tag for an IPLD link.
pub const TAG_LINK: u64 = 42;
/// Deepest nesting the generic decoder accepts.
#[cfg(any(test, feature = "testing"))]
pub const MAX_DEPTH: usize = 64;

const MAJOR_UINT: u8 = 0;
#[cfg(any(test, feature = "testing"))]
const MAJOR_NEGINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

#[cfg(any(test, feature = "testing"))]
const FALSE: u8 = 0xf4;
#[cfg(any(test, feature = "testing"))]
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
#[cfg(any(test, feature = "testing"))]
const FLOAT64: u8 = 0xfb;

/// A block that is not canonical DAG-CBOR, or not of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not canonical DAG-CBOR.
    #[error("invalid DAG-CBOR at byte {at}: {what}")]
    Cbor { at: usize, what: &'static str },
    /// Canonical CBOR, but not the schema the reader expects.
    #[error("{0}")]
    Schema(String),
}

impl DecodeError {
    pub(crate) fn schema(msg: impl Into<String>) -> Self {
        Self::Schema(msg.into())
    }
}

// ---------------------------------------------------------------------------------------
// Writer

/// Appends a CBOR head (major type and argument) in its shortest form.
pub fn write_head(buf: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        buf.push(m | arg as u8);
    } else if arg <= u64::from(u8::MAX) {
        buf.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= u64::from(u16::MAX) {
        buf.push(m | 25);
        buf.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u64::from(u32::MAX) {
        buf.push(m | 26);
        buf.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        buf.push(m | 27);
        buf.extend_from_slice(&arg.to_be_bytes());
    }
}

pub fn write_uint(buf: &mut Vec<u8>, n: u64) {
    write_head(buf, MAJOR_UINT, n);
}

pub fn write_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    write_head(buf, MAJOR_BYTES, b.len() as u64);
    buf.extend_from_slice(b);
}

pub fn write_text(buf: &mut Vec<u8>, s: &str) {
    write_head(buf, MAJOR_TEXT, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

pub fn write_array(buf: &mut Vec<u8>, len: usize) {
    write_head(buf, MAJOR_ARRAY, len as u64);
}

pub fn write_map(buf: &mut Vec<u8>, len: usize) {
    write_head(buf, MAJOR_MAP, len as u64);
}

pub fn write_null(buf: &mut Vec<u8>) {
    buf.push(NULL);
}

#[cfg(any(test, feature = "testing"))]
pub fn write_bool(buf: &mut Vec<u8>, b: bool) {
    buf.push(if b { TRUE } else { FALSE });
}

/// Appends a link: tag 42 around a byte string holding `0x00` and the binary CID.
pub fn write_link(buf: &mut Vec<u8>, cid: &Cid) {
    write_head(buf, MAJOR_TAG, TAG_LINK);
    write_head(buf, MAJOR_BYTES, 1 + cid_encoded_len(cid) as u64);
    buf.push(0);
    write_cid(buf, cid);
}

/// Appends `null` for `None`, a link otherwise.
pub fn write_opt_link(buf: &mut Vec<u8>, cid: Option<&Cid>) {
    match cid {
        Some(c) => write_link(buf, c),
        None => write_null(buf),
    }
}

pub(crate) fn write_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

pub(crate) fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the binary form of a CID (CIDv0: the bare multihash).
pub fn write_cid(buf: &mut Vec<u8>, cid: &Cid) {
    let mh = cid.hash();
    if cid.version() == cid::Version::V1 {
        write_varint(buf, 1);
        write_varint(buf, cid.codec());
    }
    write_varint(buf, mh.code());
    write_varint(buf, u64::from(mh.size()));
    buf.extend_from_slice(mh.digest());
}

/// Length of [`write_cid`]'s output.
pub fn cid_encoded_len(cid: &Cid) -> usize {
    let mh = cid.hash();
    let prefix = if cid.version() == cid::Version::V1 {
        1 + varint_len(cid.codec())
    } else {
        0
    };
    prefix + varint_len(mh.code()) + varint_len(u64::from(mh.size())) + mh.digest().len()
}

/// Orders map keys as DAG-CBOR does: shorter first, then bytewise.
pub fn canonical_key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Encodes any IPLD value canonically (maps sorted length-first). Floats are written
/// as 64-bit, as DAG-CBOR requires.
#[cfg(any(test, feature = "testing"))]
pub fn encode_ipld(value: &Ipld, buf: &mut Vec<u8>) {
    match value {
        Ipld::Null => write_null(buf),
        Ipld::Bool(b) => write_bool(buf, *b),
        Ipld::Integer(i) => {
            if *i >= 0 {
                write_head(buf, MAJOR_UINT, *i as u64);
            } else {
                write_head(buf, MAJOR_NEGINT, (-1 - *i) as u64);
            }
        }
        Ipld::Float(f) => {
            buf.push(FLOAT64);
            buf.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Ipld::String(s) => write_text(buf, s),
        Ipld::Bytes(b) => write_bytes(buf, b),
        Ipld::List(items) => {
            write_array(buf, items.len());
            for item in items {
                encode_ipld(item, buf);
            }
        }
        Ipld::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| canonical_key_cmp(a, b));
            write_map(buf, keys.len());
            for k in keys {
                write_text(buf, k);
                if let Some(v) = map.get(k) {
                    encode_ipld(v, buf);
                }
            }
        }
        Ipld::Link(cid) => write_link(buf, cid),
    }
}

// ---------------------------------------------------------------------------------------
// Reader

/// A strict, zero-copy cursor over canonical DAG-CBOR.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn err<T>(&self, at: usize, what: &'static str) -> Result<T> {
        Err(DecodeError::Cbor { at, what })
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            self.err(self.pos, "trailing bytes after the value")
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return self.err(self.pos, "unexpected end of input");
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn peek_byte(&self) -> Result<u8> {
        match self.data.get(self.pos) {
            Some(b) => Ok(*b),
            None => self.err(self.pos, "unexpected end of input"),
        }
    }

    /// Reads a head, refusing indefinite lengths, reserved values and non-shortest forms.
    fn head(&mut self) -> Result<(u8, u64)> {
        let at = self.pos;
        let first = self.peek_byte()?;
        self.pos += 1;
        let major = first >> 5;
        let info = first & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => {
                let b = self.take(2)?;
                u64::from(u16::from_be_bytes([b[0], b[1]]))
            }
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            28..=30 => return self.err(at, "reserved additional information"),
            _ => return self.err(at, "indefinite length is not allowed"),
        };
        // Major 7 with info 24..27 are simple values and floats, checked by the caller.
        if major != MAJOR_SIMPLE {
            let minimal = match info {
                24 => arg >= 24,
                25 => arg > u64::from(u8::MAX),
                26 => arg > u64::from(u16::MAX),
                27 => arg > u64::from(u32::MAX),
                _ => true,
            };
            if !minimal {
                return self.err(at, "integer or length not in shortest form");
            }
        }
        Ok((major, arg))
    }

    fn expect_major(&mut self, major: u8, what: &'static str) -> Result<u64> {
        let at = self.pos;
        let (m, arg) = self.head()?;
        if m != major {
            return self.err(at, what);
        }
        Ok(arg)
    }

    /// True when the next item is `null` (nothing is consumed).
    pub fn peek_null(&self) -> bool {
        self.data.get(self.pos) == Some(&NULL)
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn null(&mut self) -> Result<()> {
        if self.peek_null() {
            self.pos += 1;
            Ok(())
        } else {
            self.err(self.pos, "expected null")
        }
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn bool(&mut self) -> Result<bool> {
        match self.peek_byte()? {
            FALSE => {
                self.pos += 1;
                Ok(false)
            }
            TRUE => {
                self.pos += 1;
                Ok(true)
            }
            _ => self.err(self.pos, "expected a boolean"),
        }
    }

    pub fn uint(&mut self) -> Result<u64> {
        self.expect_major(MAJOR_UINT, "expected an unsigned integer")
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.expect_major(MAJOR_BYTES, "expected a byte string")?;
        self.take_len(len)
    }

    pub fn text(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let len = self.expect_major(MAJOR_TEXT, "expected a text string")?;
        let raw = self.take_len(len)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s),
            Err(_) => self.err(at, "text string is not valid UTF-8"),
        }
    }

    fn take_len(&mut self, len: u64) -> Result<&'a [u8]> {
        match usize::try_from(len) {
            Ok(n) => self.take(n),
            Err(_) => self.err(self.pos, "length exceeds the input"),
        }
    }

    /// Reads an array head; the length is bounded by the bytes left (each item takes one).
    pub fn array(&mut self) -> Result<usize> {
        let at = self.pos;
        let len = self.expect_major(MAJOR_ARRAY, "expected an array")?;
        self.bounded_len(at, len, 1)
    }

    /// Reads a map head; the length is bounded by the bytes left (each pair takes two).
    pub fn map(&mut self) -> Result<usize> {
        let at = self.pos;
        let len = self.expect_major(MAJOR_MAP, "expected a map")?;
        self.bounded_len(at, len, 2)
    }

    fn bounded_len(&self, at: usize, len: u64, min_item_bytes: u64) -> Result<usize> {
        match len.checked_mul(min_item_bytes) {
            Some(need) if need <= self.remaining() as u64 => Ok(len as usize),
            _ => self.err(at, "length exceeds the input"),
        }
    }

    /// Reads the next map key and checks it sorts strictly after `prev` (canonical order,
    /// no duplicates).
    pub fn key(&mut self, prev: &mut Option<&'a str>) -> Result<&'a str> {
        let at = self.pos;
        let k = self.text()?;
        if let Some(p) = prev
            && canonical_key_cmp(p, k) != std::cmp::Ordering::Less
        {
            return self.err(at, "map keys out of canonical order or repeated");
        }
        *prev = Some(k);
        Ok(k)
    }

    /// Reads a map key that must be exactly `name`.
    pub fn expect_key(&mut self, name: &'static str) -> Result<()> {
        let at = self.pos;
        if self.text()? == name {
            Ok(())
        } else {
            self.err(at, "unexpected map key")
        }
    }

    /// Reads a link (tag 42). The CID bytes must re-encode to themselves exactly.
    pub fn link(&mut self) -> Result<Cid> {
        let at = self.pos;
        let tag = self.expect_major(MAJOR_TAG, "expected a link (tag 42)")?;
        if tag != TAG_LINK {
            return self.err(at, "unsupported tag");
        }
        let raw = self.bytes()?;
        let Some((&0, cid_bytes)) = raw.split_first() else {
            return self.err(at, "link bytes must start with 0x00");
        };
        let Ok(cid) = Cid::read_bytes(cid_bytes) else {
            return self.err(at, "link holds an invalid CID");
        };
        if cid_encoded_len(&cid) != cid_bytes.len() {
            return self.err(at, "link CID is not in canonical binary form");
        }
        let mut check = Vec::with_capacity(cid_bytes.len());
        write_cid(&mut check, &cid);
        if check != cid_bytes {
            return self.err(at, "link CID is not in canonical binary form");
        }
        Ok(cid)
    }

    /// Reads `null` or a link.
    pub fn opt_link(&mut self) -> Result<Option<Cid>> {
        if self.peek_null() {
            self.pos += 1;
            Ok(None)
        } else {
            self.link().map(Some)
        }
    }

    /// Decodes any IPLD value, strictly.
    #[cfg(any(test, feature = "testing"))]
    pub fn ipld(&mut self) -> Result<Ipld> {
        self.ipld_at(0)
    }

    #[cfg(any(test, feature = "testing"))]
    fn ipld_at(&mut self, depth: usize) -> Result<Ipld> {
        if depth > MAX_DEPTH {
            return self.err(self.pos, "nesting too deep");
        }
        let at = self.pos;
        let first = self.peek_byte()?;
        match first >> 5 {
            MAJOR_UINT => Ok(Ipld::Integer(i128::from(self.uint()?))),
            MAJOR_NEGINT => {
                let n = self.expect_major(MAJOR_NEGINT, "expected a negative integer")?;
                Ok(Ipld::Integer(-1 - i128::from(n)))
            }
            MAJOR_BYTES => Ok(Ipld::Bytes(self.bytes()?.to_vec())),
            MAJOR_TEXT => Ok(Ipld::String(self.text()?.to_owned())),
            MAJOR_ARRAY => {
                let n = self.array()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.ipld_at(depth + 1)?);
                }
                Ok(Ipld::List(items))
            }
            MAJOR_MAP => {
                let n = self.map()?;
                let mut map = BTreeMap::new();
                let mut prev = None;
                for _ in 0..n {
                    let k = self.key(&mut prev)?;
                    let v = self.ipld_at(depth + 1)?;
                    map.insert(k.to_owned(), v);
                }
                Ok(Ipld::Map(map))
            }
            MAJOR_TAG => Ok(Ipld::Link(self.link()?)),
            _ => match first {
                FALSE | TRUE => Ok(Ipld::Bool(self.bool()?)),
                NULL => {
                    self.pos += 1;
                    Ok(Ipld::Null)
                }
                FLOAT64 => {
                    self.pos += 1;
                    let b = self.take(8)?;
                    let f = f64::from_bits(u64::from_be_bytes([
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    ]));
                    if !f.is_finite() {
                        return self.err(at, "NaN and infinities are not allowed");
                    }
                    Ok(Ipld::Float(f))
                }
                _ => self.err(at, "unsupported simple value or float width"),
            },
        }
    }
}

/// Decodes one IPLD value that must span all of `data`.
#[cfg(any(test, feature = "testing"))]
pub fn decode_ipld(data: &[u8]) -> Result<Ipld> {
    let mut d = Decoder::new(data);
    let v = d.ipld()?;
    d.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_uint(n: u64) -> Vec<u8> {
        let mut b = Vec::new();
        write_uint(&mut b, n);
        b
    }

    #[test]
    fn integer_heads_are_shortest() {
        assert_eq!(enc_uint(0), [0x00]);
        assert_eq!(enc_uint(23), [0x17]);
        assert_eq!(enc_uint(24), [0x18, 24]);
        assert_eq!(enc_uint(255), [0x18, 0xff]);
        assert_eq!(enc_uint(256), [0x19, 0x01, 0x00]);
        assert_eq!(enc_uint(1023), [0x19, 0x03, 0xff]);
        assert_eq!(enc_uint(65536), [0x1a, 0, 1, 0, 0]);
        assert_eq!(enc_uint(1 << 32), [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]);
        for n in [
            0,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            assert_eq!(Decoder::new(&enc_uint(n)).uint(), Ok(n));
        }
    }

    #[test]
    fn non_shortest_heads_are_rejected() {
        for bad in [
            &[0x18, 0x05][..],
            &[0x19, 0x00, 0xff],
            &[0x1a, 0, 0, 0xff, 0xff],
            &[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(Decoder::new(bad).uint().is_err(), "{bad:x?}");
        }
    }

    #[test]
    fn indefinite_and_reserved_are_rejected() {
        assert!(decode_ipld(&[0x9f, 0xff]).is_err());
        assert!(decode_ipld(&[0x5f, 0xff]).is_err());
        assert!(decode_ipld(&[0x1c]).is_err());
        // half and single precision floats, undefined, other simple values
        assert!(decode_ipld(&[0xf9, 0, 0]).is_err());
        assert!(decode_ipld(&[0xfa, 0, 0, 0, 0]).is_err());
        assert!(decode_ipld(&[0xf7]).is_err());
    }

    #[test]
    fn map_keys_must_be_canonical_and_unique() {
        // {"b":1,"a":2}
        assert!(decode_ipld(&[0xa2, 0x61, b'b', 1, 0x61, b'a', 2]).is_err());
        // {"aa":1,"b":2}: length-first order puts "b" first
        assert!(decode_ipld(&[0xa2, 0x62, b'a', b'a', 1, 0x61, b'b', 2]).is_err());
        // {"a":1,"a":2}
        assert!(decode_ipld(&[0xa2, 0x61, b'a', 1, 0x61, b'a', 2]).is_err());
        assert!(decode_ipld(&[0xa2, 0x61, b'b', 1, 0x62, b'a', b'a', 2]).is_ok());
    }

    #[test]
    fn lengths_beyond_input_do_not_allocate() {
        assert!(decode_ipld(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_ipld(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let mut v = vec![0x81; MAX_DEPTH + 2];
        v.push(0x00);
        assert!(decode_ipld(&v).is_err());
    }

    #[test]
    fn varint_len_matches_writer() {
        for n in [0, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            write_varint(&mut b, n);
            assert_eq!(b.len(), varint_len(n), "{n}");
        }
    }
}
