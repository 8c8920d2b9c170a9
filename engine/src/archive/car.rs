//! A CARv1 file read from a stream of byte pieces (an upload, a file read in pieces):
//! the header, then each frame, every block verified against its CID before it is
//! handed out. At most one frame (≤ 32 MiB) is buffered beyond the piece being read.

use crate::segment::frame::{FrameError, read_frame, read_header};
use bytes::Bytes;
use cid::Cid;

/// Why a stream is not a readable CAR file. The messages are what an import refusal
/// says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    #[error("not a CAR file: the header is invalid ({0})")]
    BadHeader(String),
    #[error(
        "the CAR header names {0} roots; a bucket export names exactly one, the bucket's head commit"
    )]
    Roots(usize),
    #[error("the file is truncated: it ends inside the {what} that starts at byte {at}")]
    Truncated { what: &'static str, at: u64 },
    #[error("block {cid} at byte {at} does not match its CID")]
    Mismatch { cid: Cid, at: u64 },
    #[error("invalid frame at byte {at}: {why}")]
    BadFrame { at: u64, why: String },
}

/// What the reader produced next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarItem {
    /// The header's single root.
    Root(Cid),
    /// A verified block and the file offset of its frame.
    Block { cid: Cid, block: Bytes, at: u64 },
}

/// Push bytes in with [`CarStream::push`], take items out with [`CarStream::next_item`]
/// until it answers `None`, repeat; call [`CarStream::finish`] at the end.
#[derive(Debug, Default)]
pub struct CarStream {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    header_read: bool,
}

impl CarStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn push(&mut self, piece: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(piece);
    }

    /// The next item, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<CarItem>, CarError> {
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return Ok(None);
        }
        let at = self.offset;
        if !self.header_read {
            return match read_header(rest) {
                Ok((roots, len)) => {
                    self.advance(len);
                    self.header_read = true;
                    match roots.as_slice() {
                        [root] => Ok(Some(CarItem::Root(*root))),
                        _ => Err(CarError::Roots(roots.len())),
                    }
                }
                Err(FrameError::Truncated { .. }) => Ok(None),
                Err(e) => Err(CarError::BadHeader(e.to_string())),
            };
        }
        match read_frame(rest) {
            Ok(f) => {
                let item = CarItem::Block {
                    cid: f.cid,
                    block: Bytes::copy_from_slice(f.block),
                    at,
                };
                self.advance(f.len);
                Ok(Some(item))
            }
            // Frame lengths are bounded (`MAX_FRAME_BYTES`) before this is said.
            Err(FrameError::Truncated { .. }) => Ok(None),
            Err(FrameError::Hash(e)) => Err(CarError::Mismatch {
                cid: match e {
                    crate::block::VerifyError::Mismatch { cid }
                    | crate::block::VerifyError::UnsupportedHash { cid, .. } => cid,
                },
                at,
            }),
            Err(FrameError::Zero) => Err(CarError::BadFrame {
                at,
                why: "a frame of length 0".into(),
            }),
            Err(e) => Err(CarError::BadFrame {
                at,
                why: e.to_string(),
            }),
        }
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// At the end of the stream: every byte must have been read as a whole item.
    pub fn finish(&self) -> Result<(), CarError> {
        if !self.header_read {
            return Err(CarError::BadHeader(if self.buf.is_empty() {
                "the file is empty".into()
            } else {
                format!("it ends inside the header, {} bytes in", self.buf.len())
            }));
        }
        if self.start < self.buf.len() {
            return Err(CarError::Truncated {
                what: "block",
                at: self.offset,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::cid_raw;
    use crate::segment::frame::{write_frame, write_header};

    fn file(blocks: &[&[u8]]) -> (Vec<u8>, Vec<Cid>) {
        let cids: Vec<Cid> = blocks.iter().map(|b| cid_raw(b)).collect();
        let mut f = Vec::new();
        write_header(&mut f, &cids[..1]);
        for (c, b) in cids.iter().zip(blocks) {
            write_frame(&mut f, c, b);
        }
        (f, cids)
    }

    fn read_all(bytes: &[u8], piece: usize) -> Result<Vec<CarItem>, CarError> {
        let mut s = CarStream::new();
        let mut out = Vec::new();
        for p in bytes.chunks(piece.max(1)) {
            s.push(p);
            while let Some(item) = s.next_item()? {
                out.push(item);
            }
        }
        s.finish()?;
        Ok(out)
    }

    #[test]
    fn reads_the_same_items_whatever_the_piece_size() {
        let (f, cids) = file(&[b"one", b"two", &[7u8; 5000]]);
        let whole = read_all(&f, f.len()).unwrap();
        assert_eq!(whole[0], CarItem::Root(cids[0]));
        assert_eq!(whole.len(), 4);
        for piece in [1, 2, 7, 100, 4096] {
            assert_eq!(read_all(&f, piece).unwrap(), whole, "piece {piece}");
        }
    }

    #[test]
    fn a_cut_anywhere_is_reported_as_truncated() {
        let (f, _) = file(&[b"one", &[7u8; 300]]);
        let (_, header_len) = read_header(&f).unwrap();
        let boundaries = [header_len, header_len + frame_len(&cid_raw(b"one"), 3)];
        for cut in 1..f.len() {
            // A cut between frames leaves a well-formed, shorter CAR: the walk over
            // it finds the blocks missing.
            if boundaries.contains(&cut) {
                assert!(read_all(&f[..cut], 13).is_ok());
                continue;
            }
            let e = read_all(&f[..cut], 13).unwrap_err();
            if cut < header_len {
                assert!(
                    e.to_string().contains("ends inside the header"),
                    "cut {cut}: {e}"
                );
            } else {
                assert!(matches!(e, CarError::Truncated { .. }), "cut {cut}: {e}");
            }
        }
    }

    #[test]
    fn a_flipped_bit_names_the_block_and_its_offset() {
        let (mut f, cids) = file(&[b"one", b"two"]);
        let last = f.len() - 1;
        f[last] ^= 1;
        let e = read_all(&f, 5).unwrap_err();
        let at = (f.len() - frame_len(&cids[1], 3)) as u64;
        assert_eq!(e, CarError::Mismatch { cid: cids[1], at });
    }

    fn frame_len(cid: &Cid, n: usize) -> usize {
        crate::segment::frame::frame_len(cid, n)
    }

    #[test]
    fn an_export_has_exactly_one_root() {
        let mut f = Vec::new();
        write_header(&mut f, &[]);
        assert_eq!(read_all(&f, 10).unwrap_err(), CarError::Roots(0));
        assert!(matches!(
            read_all(b"not a car", 4).unwrap_err(),
            CarError::BadHeader(_)
        ));
        assert!(matches!(
            read_all(b"", 4).unwrap_err(),
            CarError::BadHeader(_)
        ));
    }
}
