//! The unwritten end of an open segment, kept where O_DIRECT can write it from.
//!
//! The bytes from a page boundary of the file to the segment's logical end live in a
//! page-aligned window of a plain vector: frames are appended to the vector, a commit
//! writes the window (zero-padded to a page) straight from it, and the whole vector then
//! goes to the segment's hashing thread, while a new tail keeps only the partial last
//! page. Under 4 KiB PUTs this spares two copies of every byte on the shard thread (into
//! an aligned write buffer, and into a buffer for the hasher): ~110 µs of a catalog
//! commit of ~190 KB.
//!
//! Invariant: `raw[..start]` is padding, `raw[start..]` the tail's bytes, and
//! `raw.as_ptr() + start` is page-aligned. Appends stay within the vector's capacity
//! ([`Tail::reserve`] moves the bytes to a larger vector itself), so the vector never
//! reallocates behind the window's back.

use crate::io::{AlignedBuf, PAGE_BYTES};

/// A new tail's vector holds at least this much (a typical catalog commit fits).
const MIN_CAPACITY_BYTES: usize = 256 << 10;

#[derive(Debug, Default)]
pub struct Tail {
    raw: Vec<u8>,
    start: usize,
    /// The length while the bytes are out for a write ([`Tail::take_for_write`]).
    lent_len: usize,
}

impl Tail {
    /// A tail holding `bytes`, in `spare` when it is large enough (a vector the hashing
    /// thread handed back), else in a new vector.
    pub fn with_bytes(spare: Option<Vec<u8>>, bytes: &[u8]) -> Self {
        let need = bytes.len() + PAGE_BYTES;
        let mut raw = match spare {
            Some(v) if v.capacity() >= need.max(MIN_CAPACITY_BYTES / 2) => v,
            _ => Vec::with_capacity(need.max(MIN_CAPACITY_BYTES)),
        };
        raw.clear();
        let start = raw.as_ptr().align_offset(PAGE_BYTES);
        raw.resize(start, 0);
        raw.extend_from_slice(bytes);
        Self {
            raw,
            start,
            lent_len: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    pub fn len(&self) -> usize {
        self.raw.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vector to append `extra` bytes to (it will not reallocate for them).
    pub fn reserve(&mut self, extra: usize) -> &mut Vec<u8> {
        if self.raw.capacity() - self.raw.len() < extra {
            let grown = (self.raw.capacity() * 2).max(self.len() + extra + PAGE_BYTES);
            let mut next = Tail::with_bytes(Some(Vec::with_capacity(grown)), self.bytes());
            std::mem::swap(self, &mut next);
        }
        &mut self.raw
    }

    /// The first `n` bytes, zero-padded to a whole page, as a write buffer that shares
    /// this tail's memory. The tail is empty until [`Tail::written`] gives it back.
    pub fn take_for_write(&mut self, n: usize) -> AlignedBuf {
        let len = self.len();
        assert!(n <= len, "write of {n} bytes from a tail of {len}");
        let padded = n.div_ceil(PAGE_BYTES) * PAGE_BYTES;
        // Room for the padding, so that it cannot move the bytes off their alignment.
        self.reserve(padded.saturating_sub(len));
        let Tail { mut raw, start, .. } = std::mem::take(self);
        // Only a write of the whole tail needs padding; it is cut off again afterwards.
        if padded > len {
            raw.resize(start + padded, 0);
        }
        self.lent_len = len;
        AlignedBuf::from_parts(raw, start, padded)
    }

    /// Takes back a buffer from [`Tail::take_for_write`] after its write.
    pub fn written(&mut self, buf: AlignedBuf) {
        let len = self.lent_len;
        let (mut raw, start, _) = buf.into_parts();
        raw.truncate(start + len);
        *self = Tail {
            raw,
            start,
            lent_len: 0,
        };
    }

    /// Keeps the bytes from `from` on (in a new tail, in `spare` if it fits) and returns
    /// this tail's vector with the window's offset in it, for the hashing thread.
    pub fn split_off(&mut self, from: usize, spare: Option<Vec<u8>>) -> (Vec<u8>, usize) {
        let mut rest = Tail::with_bytes(spare, &self.bytes()[from..]);
        std::mem::swap(self, &mut rest);
        (rest.raw, rest.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(t: &Tail) -> bool {
        t.bytes().as_ptr().align_offset(PAGE_BYTES) == 0
    }

    #[test]
    fn appends_stay_aligned_across_growth_and_writes_pad_with_zeros() {
        let mut t = Tail::with_bytes(None, b"head");
        let mut want = b"head".to_vec();
        for i in 0..200u32 {
            // Pieces large enough to force several moves to a larger vector.
            let piece = vec![i as u8; 3000 + i as usize * 97];
            t.reserve(piece.len()).extend_from_slice(&piece);
            want.extend_from_slice(&piece);
            assert!(aligned(&t));
        }
        assert_eq!(t.bytes(), &want[..]);

        let buf = t.take_for_write(t.len());
        assert!(t.is_empty());
        assert_eq!(buf.as_slice().as_ptr().align_offset(PAGE_BYTES), 0);
        assert_eq!(buf.len() % PAGE_BYTES, 0);
        assert_eq!(&buf.as_slice()[..want.len()], &want[..]);
        assert!(buf.as_slice()[want.len()..].iter().all(|b| *b == 0));
        t.written(buf);
        assert_eq!(t.bytes(), &want[..], "the padding is cut off again");

        // A partial write (whole pages) shares memory without padding.
        let buf = t.take_for_write(2 * PAGE_BYTES);
        assert_eq!(buf.as_slice(), &want[..2 * PAGE_BYTES]);
        t.written(buf);
        assert_eq!(t.bytes(), &want[..]);
    }

    #[test]
    fn split_off_keeps_the_rest_and_hands_back_the_whole_vector() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut t = Tail::with_bytes(None, &bytes);
        let (raw, start) = t.split_off(8192, Some(Vec::with_capacity(1 << 20)));
        assert_eq!(&raw[start..], &bytes[..]);
        assert_eq!(t.bytes(), &bytes[8192..]);
        assert!(aligned(&t));
        // A spare too small is not used.
        let (raw, start) = t.split_off(t.len(), Some(Vec::with_capacity(16)));
        assert_eq!(&raw[start..], &bytes[8192..]);
        assert!(t.is_empty() && aligned(&t));
        assert!(t.reserve(1).capacity() >= MIN_CAPACITY_BYTES);
    }
}
