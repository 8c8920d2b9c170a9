//! A streaming reader of `multipart/form-data` bodies (RFC 7578), for browser-form
//! uploads (`post_object.rs`).
//!
//! The parts before the `file` part are read into memory under tight caps (bytes per
//! field, bytes before the file, number of parts); the file part is then handed out
//! as a stream, and none of it is read until that stream is polled, so a request is
//! authenticated and its policy checked on its fields alone. Parts after the file are
//! never read: AWS requires the file last and ignores what follows it.
//!
//! Memory: the buffer holds at most one piece from the connection plus a delimiter's
//! length, while fields are read at most the caps.

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use memchr::memmem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Caps on what a form may send before its file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormLimits {
    /// One field's value.
    pub field_bytes: usize,
    /// Everything before the file's content: preamble, part heads and values.
    pub pre_file_bytes: usize,
    /// The head (headers) of one part.
    pub part_head_bytes: usize,
    /// Parts, the file's included.
    pub parts: usize,
}

impl Default for FormLimits {
    /// A SigV4 policy is rarely over a few KiB and user metadata is capped at 2 KiB,
    /// so these leave room for any real form while bounding what an anonymous sender
    /// can make the node hold.
    fn default() -> Self {
        Self {
            field_bytes: 20 << 10,
            pre_file_bytes: 64 << 10,
            part_head_bytes: 8 << 10,
            parts: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form is not well-formed multipart/form-data: {0}")]
    Malformed(&'static str),
    #[error("the form's fields before the file are over their limits: {0}")]
    PreFileTooLarge(&'static str),
    #[error("the form field {0:?} appears more than once")]
    DuplicateField(String),
    #[error("the form has no file part")]
    NoFile,
    #[error("the form's body ended early")]
    Truncated,
    #[error("reading the form's body failed: {0}")]
    Read(String),
    /// The client stopped sending within the connection's body-read limits.
    #[error("the form's body stopped arriving")]
    TimedOut,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed read of the body as a form error: the connection's body-read limit
/// (`conn::TimedBody`, an S3 `RequestTimeout`) kept apart from other failures.
fn read_error(e: impl Into<BoxError>) -> FormError {
    let e = e.into();
    match e.downcast_ref::<s3s::S3Error>() {
        Some(s3) if *s3.code() == s3s::S3ErrorCode::RequestTimeout => FormError::TimedOut,
        _ => FormError::Read(e.to_string()),
    }
}

/// The fields before the file (names lower-cased, as S3 compares them), in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// What the file part's head says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FileHead {
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<&str> {
    let (essence, rest) = content_type.split_once(';')?;
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params(rest)
        .find_map(|(k, v)| k.eq_ignore_ascii_case("boundary").then_some(v))
        // RFC 2046: 1 to 70 characters.
        .filter(|b| (1..=70).contains(&b.len()))
}

/// A form body being read: first its fields, then (by [`FormReader::into_file`]) its
/// file.
pub(crate) struct FormReader<S> {
    body: S,
    /// `CRLF--boundary`: what ends every part.
    delimiter: Vec<u8>,
    buf: BytesMut,
    /// How far `buf` is known not to hold a delimiter start.
    searched: usize,
    body_ended: bool,
    limits: FormLimits,
}

impl<S, E> FormReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    pub fn new(body: S, boundary: &str, limits: FormLimits) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // A CRLF in front lets the first delimiter match like every later one.
        let mut buf = BytesMut::with_capacity(8 << 10);
        buf.extend_from_slice(b"\r\n");
        Self {
            body,
            delimiter,
            buf,
            searched: 0,
            body_ended: false,
            limits,
        }
    }

    /// Reads the parts before the file; the reader stops right after the file part's
    /// head.
    pub async fn read_fields(&mut self) -> Result<(Fields, FileHead), FormError> {
        let preamble = self
            .read_until_delimiter(self.limits.pre_file_bytes)
            .await?;
        let mut pre_file = preamble.len();
        let mut fields = Vec::new();
        for _ in 0..self.limits.parts {
            if self.at_close_delimiter().await? {
                return Err(FormError::NoFile);
            }
            let padding = self.read_until(b"\r\n", 64).await?;
            if !padding.iter().all(|c| *c == b' ' || *c == b'\t') {
                return Err(FormError::Malformed("text after a boundary"));
            }
            let head = self.read_part_head().await?;
            pre_file += head.len();
            if pre_file > self.limits.pre_file_bytes {
                return Err(FormError::PreFileTooLarge("the fields"));
            }
            let part = part_head(&head)?;
            if part.name.eq_ignore_ascii_case("file") {
                return Ok((Fields(fields), part.file));
            }
            let value = self.read_until_delimiter(self.limits.field_bytes).await?;
            pre_file += value.len();
            if pre_file > self.limits.pre_file_bytes {
                return Err(FormError::PreFileTooLarge("the fields"));
            }
            let name = part.name.to_ascii_lowercase();
            if fields.iter().any(|(n, _)| *n == name) {
                return Err(FormError::DuplicateField(name));
            }
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| FormError::Malformed("a field is not UTF-8"))?;
            fields.push((name, value));
        }
        Err(FormError::PreFileTooLarge("too many parts"))
    }

    /// The file's content, once [`FormReader::read_fields`] returned.
    pub fn into_file(self) -> FileContent<S> {
        FileContent {
            reader: self,
            done: false,
        }
    }

    /// Whether the delimiter just read is the closing one (`--` follows).
    async fn at_close_delimiter(&mut self) -> Result<bool, FormError> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(FormError::Truncated);
            }
        }
        Ok(self.buf.starts_with(b"--"))
    }

    async fn read_part_head(&mut self) -> Result<Bytes, FormError> {
        // A part may have no headers at all: its head is the empty line alone.
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(FormError::Truncated);
            }
        }
        if self.buf.starts_with(b"\r\n") {
            self.buf.advance(2);
            self.searched = 0;
            return Ok(Bytes::new());
        }
        self.read_until(b"\r\n\r\n", self.limits.part_head_bytes)
            .await
    }

    async fn read_until_delimiter(&mut self, max: usize) -> Result<Bytes, FormError> {
        let delimiter = std::mem::take(&mut self.delimiter);
        let got = self.read_until(&delimiter, max).await;
        self.delimiter = delimiter;
        got
    }

    /// The bytes before `pattern` (at most `max`), consuming the pattern too.
    async fn read_until(&mut self, pattern: &[u8], max: usize) -> Result<Bytes, FormError> {
        self.searched = 0;
        loop {
            if let Some(at) = memmem::find(&self.buf[self.searched..], pattern) {
                let at = self.searched + at;
                if at > max {
                    return Err(FormError::PreFileTooLarge("a field or part head"));
                }
                let out = self.buf.split_to(at).freeze();
                self.buf.advance(pattern.len());
                self.searched = 0;
                return Ok(out);
            }
            if self.buf.len() > max + pattern.len() {
                return Err(FormError::PreFileTooLarge("a field or part head"));
            }
            self.searched = self.buf.len().saturating_sub(pattern.len() - 1);
            if !self.fill().await? {
                return Err(FormError::Truncated);
            }
        }
    }

    async fn fill(&mut self) -> Result<bool, FormError> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Appends the body's next piece to the buffer; `false` once the body ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, FormError>> {
        if self.body_ended {
            return Poll::Ready(Ok(false));
        }
        loop {
            match ready!(Pin::new(&mut self.body).poll_next(cx)) {
                Some(Ok(piece)) if piece.is_empty() => continue,
                Some(Ok(piece)) => {
                    self.buf.extend_from_slice(&piece);
                    return Poll::Ready(Ok(true));
                }
                Some(Err(e)) => return Poll::Ready(Err(read_error(e))),
                None => {
                    self.body_ended = true;
                    return Poll::Ready(Ok(false));
                }
            }
        }
    }
}

/// The file part's content, piece by piece, up to the delimiter that ends it.
pub(crate) struct FileContent<S> {
    reader: FormReader<S>,
    done: bool,
}

impl<S, E> Stream for FileContent<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, FormError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let r = &mut this.reader;
            let dl = r.delimiter.len();
            if let Some(at) = memmem::find(&r.buf[r.searched..], &r.delimiter) {
                // The file ends here; what follows (more parts) is never read.
                this.done = true;
                let at = r.searched + at;
                return Poll::Ready((at > 0).then(|| Ok(r.buf.split_to(at).freeze())));
            }
            // The last `dl - 1` bytes may be the start of the delimiter: kept back.
            let sure = r.buf.len().saturating_sub(dl - 1);
            if sure > 0 {
                r.searched = 0;
                return Poll::Ready(Some(Ok(r.buf.split_to(sure).freeze())));
            }
            r.searched = 0;
            match ready!(r.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(FormError::Truncated)));
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

/// A part's name and, for a file, what its head says of the file.
struct PartHead {
    name: String,
    file: FileHead,
}

fn part_head(head: &[u8]) -> Result<PartHead, FormError> {
    let head =
        std::str::from_utf8(head).map_err(|_| FormError::Malformed("a part head is not UTF-8"))?;
    let mut disposition = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (name, value) = line
            .split_once(':')
            .ok_or(FormError::Malformed("a part header without a colon"))?;
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.trim());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    let disposition =
        disposition.ok_or(FormError::Malformed("a part without Content-Disposition"))?;
    let (kind, rest) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(FormError::Malformed("a part that is not form-data"));
    }
    let mut name = None;
    let mut filename = None;
    for (k, v) in params(rest) {
        if k.eq_ignore_ascii_case("name") {
            name = Some(v.to_owned());
        } else if k.eq_ignore_ascii_case("filename") {
            filename = Some(v.to_owned());
        }
    }
    Ok(PartHead {
        name: name.ok_or(FormError::Malformed("a part without a name"))?,
        file: FileHead {
            filename,
            content_type,
        },
    })
}

/// `; key=value; key="quoted; value"` parameters. Browsers percent-encode quotes in
/// names (HTML's form encoding), so a quoted value ends at the next quote. A bare
/// token without `=` is skipped.
fn params(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([';', ' ', '\t']);
            if rest.is_empty() {
                return None;
            }
            let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
            let key = rest[..key_end].trim();
            let Some(after) = rest[key_end..].strip_prefix('=') else {
                rest = &rest[key_end..];
                continue;
            };
            let after = after.trim_start();
            let (value, next) = match after.strip_prefix('"') {
                Some(q) => q.split_once('"').unwrap_or((q, "")),
                None => after.split_once(';').unwrap_or((after, "")),
            };
            rest = next;
            return Some((key, value.trim_end_matches([' ', '\t'])));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A body delivered in the given pieces.
    struct Pieces(std::collections::VecDeque<Bytes>);

    impl Stream for Pieces {
        type Item = Result<Bytes, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn split(body: &[u8], piece: usize) -> Pieces {
        Pieces(body.chunks(piece).map(Bytes::copy_from_slice).collect())
    }

    const B: &str = "----xyzzy";

    fn form(fields: &[(&str, &str)], file: &[u8], after: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.extend_from_slice(
                format!("--{B}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b;c.txt\"\r\nContent-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(file);
        out.extend_from_slice(format!("\r\n--{B}{after}").as_bytes());
        out
    }

    async fn read(
        body: Pieces,
        limits: FormLimits,
    ) -> Result<(Fields, FileHead, Vec<u8>), FormError> {
        let mut r = FormReader::new(body, B, limits);
        let (fields, head) = r.read_fields().await?;
        let mut file = r.into_file();
        let mut data = Vec::new();
        while let Some(p) = std::future::poll_fn(|cx| Pin::new(&mut file).poll_next(cx)).await {
            let p = p?;
            assert!(!p.is_empty(), "no empty pieces");
            data.extend_from_slice(&p);
        }
        Ok((fields, head, data))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn fields_and_file_read_alike_whatever_the_pieces() {
        // A file holding near-delimiters: CRLF--, and the boundary without its CRLF.
        let file = format!("line\r\n--{}x\r\n-{B}\r\n--", &B[..5]).repeat(50);
        let body = form(
            &[("key", "k/${filename}"), ("X-Amz-Meta-Color", "blue")],
            file.as_bytes(),
            "\r\n--ignored",
        );
        for piece in [1, 2, 3, 7, 13, 64, 4096, body.len()] {
            let (fields, head, data) =
                block_on(read(split(&body, piece), FormLimits::default())).unwrap();
            assert_eq!(fields.get("key"), Some("k/${filename}"), "piece {piece}");
            assert_eq!(fields.get("x-amz-meta-color"), Some("blue"));
            assert_eq!(head.filename.as_deref(), Some("a b;c.txt"));
            assert_eq!(head.content_type.as_deref(), Some("text/plain"));
            assert_eq!(data, file.as_bytes(), "piece {piece}");
        }
    }

    #[test]
    fn an_empty_file_a_preamble_and_a_closing_delimiter_are_read() {
        let mut body = b"preamble text\r\n".to_vec();
        body.extend(form(&[("a", "")], b"", "--\r\n"));
        let (fields, _, data) = block_on(read(split(&body, 5), FormLimits::default())).unwrap();
        assert_eq!(fields.get("a"), Some(""));
        assert!(data.is_empty());
    }

    #[test]
    fn nothing_after_the_file_head_is_read_before_the_file_is_asked_for() {
        let body = form(&[("key", "k")], &[7u8; 100_000], "--");
        let pieces = split(&body, 1000);
        let total = pieces.0.len();
        let mut r = FormReader::new(pieces, B, FormLimits::default());
        block_on(r.read_fields()).unwrap();
        assert!(
            r.body.0.len() >= total - 1,
            "only the head's piece was read"
        );
    }

    #[test]
    fn caps_refuse_oversized_fields_heads_and_part_counts() {
        let limits = FormLimits {
            field_bytes: 10,
            pre_file_bytes: 200,
            part_head_bytes: 100,
            parts: 3,
        };
        let run = |body: Vec<u8>| block_on(read(split(&body, 3), limits)).map(|_| ());
        assert_eq!(run(form(&[("a", "0123456789")], b"x", "--")), Ok(()));
        assert!(matches!(
            run(form(&[("a", "0123456789A")], b"x", "--")),
            Err(FormError::PreFileTooLarge(_))
        ));
        assert!(matches!(
            run(form(&[("a", "1"), ("b", "2"), ("c", "3")], b"x", "--")),
            Err(FormError::PreFileTooLarge(_))
        ));
        let long_name = "n".repeat(150);
        assert!(matches!(
            run(form(&[(&long_name, "1")], b"x", "--")),
            Err(FormError::PreFileTooLarge(_))
        ));
        let many = form(&[("a", "1234567"), ("b", "1234567")], b"x", "--");
        assert!(matches!(
            block_on(read(
                split(&many, 3),
                FormLimits {
                    pre_file_bytes: 150,
                    parts: 10,
                    ..limits
                }
            )),
            Err(FormError::PreFileTooLarge(_))
        ));
        // A body with no delimiter at all is refused once over the cap, not buffered.
        let endless = vec![b'x'; 10_000];
        assert!(matches!(run(endless), Err(FormError::PreFileTooLarge(_))));
    }

    #[test]
    fn malformed_forms_are_refused() {
        let run = |body: &[u8]| block_on(read(split(body, 4), FormLimits::default())).map(|_| ());
        assert_eq!(
            run(
                format!("--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--{B}--")
                    .as_bytes()
            ),
            Err(FormError::NoFile)
        );
        assert_eq!(
            run(format!("--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n--{B}--").as_bytes()),
            Err(FormError::DuplicateField("a".into()))
        );
        assert!(matches!(
            run(format!(
                "--{B}\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\n1\r\n--{B}--"
            )
            .as_bytes()),
            Err(FormError::Malformed(_))
        ));
        assert!(matches!(
            run(format!("--{B}\r\nContent-Disposition: form-data\r\n\r\n1\r\n--{B}--").as_bytes()),
            Err(FormError::Malformed(_))
        ));
        assert_eq!(
            run(format!("--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1").as_bytes()),
            Err(FormError::Truncated)
        );
        // A file that never ends: the stream says so, after handing out what came.
        let mut cut = form(&[], b"data", "");
        cut.truncate(cut.len() - B.len() - 4);
        assert_eq!(run(&cut), Err(FormError::Truncated));
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=abc"), Some("abc"));
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/mixed; boundary=abc"), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))),
            None
        );
    }
}
