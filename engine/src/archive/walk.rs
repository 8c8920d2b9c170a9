//! The walk over a bucket from a head commit, in the export order (`docs/format.md` §7):
//!
//! 1. the commit; then its tree, pre-order: a node, then for each gap and entry in key
//!    order the child subtree, or the entry's object;
//! 2. an object: its manifest, then its chunk index pre-order (an index block, then its
//!    children, or a leaf's chunks in body order);
//! 3. the previous commit and its tree, as far as the history asked for (blocks already
//!    visited are skipped: unchanged subtrees and objects are shared between commits).
//!
//! Every block is fetched through a [`BlockGetter`] (which verifies it against its CID)
//! and checked: strict decoding, the MST rules of `docs/format.md` §1.7 across nodes (keys
//! inside their gap, child heights), each manifest against its key, its chunk index
//! spans and (optionally) its body's digests. A damaged block is reported as a
//! [`Problem`] naming the object it belongs to (for a tree node: the keys it holds), and
//! the walk goes on with the rest unless told to stop at the first.

use crate::checksum::PartMd5s;
use crate::error::{EngineError, EngineResult};
use crate::format::chunks::{ChunkRef, Located};
use crate::format::{ChunkIndex, Commit, ObjectManifest, check_cbor_link};
use crate::mst::NodeCid;
use crate::mst::node::{Link, decode_node};
use bytes::Bytes;
use cid::Cid;
use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Problems kept in a report (all are counted).
pub const MAX_PROBLEMS: usize = 1000;
/// Chunk reads in flight while walking one leaf of a chunk index.
const CHUNK_READS_IN_FLIGHT: usize = 8;

/// How many past commits (and their trees) to walk besides the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Exactly this many, or until the first commit; a missing one is a problem.
    Count(u64),
    /// As many as the source holds (an import: as many as the file carries).
    AsFarAsPresent,
}

/// What the walk checks and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    pub history: History,
    /// Read every chunk; otherwise only check that it is present with the right length.
    pub read_chunks: bool,
    /// Check each body against its manifest's MD5 (per part for multipart bodies) and
    /// SHA-256 when recorded. Needs `read_chunks`.
    pub body_digests: bool,
    /// Visit every distinct block once (export): a chunk or chunk index shared by
    /// several objects is read the first time only. Excludes `body_digests`.
    pub dedup: bool,
    pub stop_at_first: bool,
}

impl CheckOptions {
    /// Everything checked, every body read: `verify`.
    pub fn full(history: History) -> Self {
        Self {
            history,
            read_chunks: true,
            body_digests: true,
            dedup: false,
            stop_at_first: false,
        }
    }

    /// Each distinct block read once and emitted, stopping at the first problem: export.
    pub fn export(history: History) -> Self {
        Self {
            history,
            read_chunks: true,
            body_digests: false,
            dedup: true,
            stop_at_first: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not stored (or not in the file).
    Missing,
    /// Stored, but its bytes do not hash to its CID.
    Corrupt,
    /// Hashes correctly but breaks the format (decoding, tree shape, manifest).
    Invalid,
    /// Could not be read (I/O error, cold tier not answering).
    Unreadable,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Corrupt => "corrupt",
            Self::Invalid => "invalid",
            Self::Unreadable => "unreadable",
        }
    }
}

/// A damaged block and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What the block is: `commit`, `tree node`, `manifest`, `chunk index`, `chunk at
    /// bytes 0..1048576`, `body`.
    pub role: String,
    pub block: Cid,
    /// The object the block belongs to (none for commits and tree nodes).
    pub object: Option<String>,
    /// Why, and for a tree node which keys it holds.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.kind.as_str(), self.role, self.block)?;
        if let Some(o) = &self.object {
            write!(f, " of object {o:?}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What a walk saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The head commit, its bucket name, sequence number and tree root (when it could
    /// be read).
    pub head: Option<Cid>,
    pub bucket: Option<String>,
    pub seq: u64,
    pub root: Option<Cid>,
    pub commits: u64,
    pub objects: u64,
    /// Blocks fetched and their bytes.
    pub blocks: u64,
    pub bytes: u64,
    /// The first [`MAX_PROBLEMS`] problems, in walk order.
    pub problems: Vec<Problem>,
    pub problem_count: u64,
    /// The walk ended early (first problem, or the emitter stopped).
    pub stopped: bool,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0 && !self.stopped
    }
}

/// Where the walk reads blocks.
#[allow(async_fn_in_trait)] // used on one thread: the futures need not be Send
pub trait BlockGetter {
    /// The block's bytes, verified against `cid`; `Ok(None)` when it is not stored.
    /// A block that does not match its CID is [`EngineError::Corrupt`]; any other
    /// error means it could not be read. `chunk` marks body chunks (not worth caching).
    async fn get(&self, cid: &Cid, chunk: bool) -> EngineResult<Option<Bytes>>;
    /// The stored length of a block, without reading it.
    fn stat(&self, cid: &Cid) -> Option<u64>;
}

/// Receives every block the walk fetched, in walk order.
#[allow(async_fn_in_trait)]
pub trait Emit {
    /// `Err` stops the walk (the receiver went away).
    async fn emit(&mut self, cid: &Cid, bytes: &Bytes) -> Result<(), ()>;
}

/// An [`Emit`] that drops every block (verify, import).
#[derive(Debug, Default)]
pub struct NoEmit;

impl Emit for NoEmit {
    async fn emit(&mut self, _: &Cid, _: &Bytes) -> Result<(), ()> {
        Ok(())
    }
}

/// Walks (and checks) everything reachable from `head`.
pub async fn check_bucket<G: BlockGetter, E: Emit>(
    getter: &G,
    emit: &mut E,
    head: Cid,
    opts: CheckOptions,
) -> CheckReport {
    let mut w = Walk {
        g: getter,
        emit,
        opts,
        track_seen: opts.dedup || opts.history != History::Count(0),
        seen: HashSet::new(),
        report: CheckReport::default(),
    };
    w.commits(head).await;
    w.report
}

/// An MST node to visit: its CID, the height its parent implies (`None` for a root)
/// and the keys it may hold (strictly between `lo` and `hi`).
struct NodeWork {
    cid: Cid,
    height: Option<u8>,
    lo: Option<Box<[u8]>>,
    hi: Option<Box<[u8]>>,
}

enum Work {
    Node(NodeWork),
    Object { key: Box<[u8]>, manifest: Cid },
}

struct Walk<'a, G, E> {
    g: &'a G,
    emit: &'a mut E,
    opts: CheckOptions,
    track_seen: bool,
    /// First 16 bytes of the SHA-256 of every block visited (when tracking).
    seen: HashSet<[u8; 16]>,
    report: CheckReport,
}

fn short_key(cid: &Cid) -> Option<[u8; 16]> {
    crate::block::sha256_digest(cid).map(|d| {
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        k
    })
}

fn text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn keys_between(lo: Option<&[u8]>, hi: Option<&[u8]>) -> String {
    match (lo, hi) {
        (None, None) => "holding any key".to_owned(),
        (Some(l), None) => format!("holding keys after {:?}", text(l)),
        (None, Some(h)) => format!("holding keys before {:?}", text(h)),
        (Some(l), Some(h)) => format!("holding keys between {:?} and {:?}", text(l), text(h)),
    }
}

impl<G: BlockGetter, E: Emit> Walk<'_, G, E> {
    fn stopped(&self) -> bool {
        self.report.stopped
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        role: impl Into<String>,
        block: Cid,
        object: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.report.problem_count += 1;
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem {
                kind,
                role: role.into(),
                block,
                object: object.map(str::to_owned),
                detail: detail.into(),
            });
        }
        if self.opts.stop_at_first {
            self.report.stopped = true;
        }
    }

    /// Whether `cid` is visited for the first time (always true when not tracking).
    fn first_visit(&mut self, cid: &Cid, tracked: bool) -> bool {
        if !tracked {
            return true;
        }
        short_key(cid).is_none_or(|k| self.seen.insert(k))
    }

    /// A fetched block goes to the emitter and the counts.
    async fn take(&mut self, cid: &Cid, bytes: &Bytes) {
        self.report.blocks += 1;
        self.report.bytes += bytes.len() as u64;
        if self.emit.emit(cid, bytes).await.is_err() {
            self.report.stopped = true;
        }
    }

    /// Turns a fetch result into the block or a problem.
    fn settle(
        &mut self,
        got: EngineResult<Option<Bytes>>,
        cid: &Cid,
        role: &str,
        object: Option<&str>,
        detail: &str,
    ) -> Option<Bytes> {
        let with = |why: &str| {
            if detail.is_empty() {
                why.to_owned()
            } else {
                format!("{detail}; {why}")
            }
        };
        match got {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                self.problem(ProblemKind::Missing, role, *cid, object, detail);
                None
            }
            Err(EngineError::Corrupt(_)) => {
                let d = with("its bytes do not match its CID");
                self.problem(ProblemKind::Corrupt, role, *cid, object, d);
                None
            }
            Err(e) => {
                self.problem(
                    ProblemKind::Unreadable,
                    role,
                    *cid,
                    object,
                    with(&e.to_string()),
                );
                None
            }
        }
    }

    async fn fetch(
        &mut self,
        cid: &Cid,
        role: &str,
        object: Option<&str>,
        detail: &str,
    ) -> Option<Bytes> {
        let got = self.g.get(cid, false).await;
        let bytes = self.settle(got, cid, role, object, detail)?;
        self.take(cid, &bytes).await;
        Some(bytes)
    }

    async fn commits(&mut self, head: Cid) {
        let mut next = Some(head);
        let mut back = 0u64;
        let mut newer: Option<Commit> = None;
        while let Some(cid) = next.take() {
            if self.stopped() {
                return;
            }
            if back > 0 {
                match self.opts.history {
                    History::Count(n) if back > n => return,
                    History::AsFarAsPresent if self.g.stat(&cid).is_none() => return,
                    _ => {}
                }
            }
            if let Err(e) = check_cbor_link(&cid, "commit") {
                self.problem(ProblemKind::Invalid, "commit", cid, None, e.to_string());
                return;
            }
            let Some(bytes) = self.fetch(&cid, "commit", None, "").await else {
                return;
            };
            let commit = match Commit::decode(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    self.problem(ProblemKind::Invalid, "commit", cid, None, e.to_string());
                    return;
                }
            };
            match &newer {
                None => {
                    self.report.head = Some(cid);
                    self.report.bucket = Some(commit.bucket.clone());
                    self.report.seq = commit.seq;
                    self.report.root = Some(commit.root);
                }
                Some(n) if n.bucket != commit.bucket || n.seq != commit.seq + 1 => {
                    let d = format!(
                        "commit {} of bucket {:?} follows commit {} of bucket {:?}",
                        n.seq, n.bucket, commit.seq, commit.bucket
                    );
                    self.problem(ProblemKind::Invalid, "commit", cid, None, d);
                    return;
                }
                Some(_) => {}
            }
            self.report.commits += 1;
            self.tree(commit.root).await;
            next = commit.prev;
            newer = Some(commit);
            back += 1;
        }
    }

    async fn tree(&mut self, root: Cid) {
        if NodeCid::from_cid(&root).is_none() {
            let d = "not a CIDv1 dag-cbor sha2-256 link";
            self.problem(ProblemKind::Invalid, "tree root", root, None, d);
            return;
        }
        let mut stack = vec![Work::Node(NodeWork {
            cid: root,
            height: None,
            lo: None,
            hi: None,
        })];
        while let Some(w) = stack.pop() {
            if self.stopped() {
                return;
            }
            match w {
                Work::Node(n) => self.node(n, &mut stack).await,
                Work::Object { key, manifest } => self.object(&key, manifest).await,
            }
        }
    }

    async fn node(&mut self, w: NodeWork, stack: &mut Vec<Work>) {
        if !self.first_visit(&w.cid, self.track_seen) {
            return; // the same subtree, already walked under a newer commit
        }
        let range = keys_between(w.lo.as_deref(), w.hi.as_deref());
        let Some(bytes) = self.fetch(&w.cid, "tree node", None, &range).await else {
            return;
        };
        let node = match decode_node(&bytes, w.height) {
            Ok(n) => n,
            Err(e) => {
                let d = format!("{range}; {e}");
                self.problem(ProblemKind::Invalid, "tree node", w.cid, None, d);
                return;
            }
        };
        let outside = |k: &[u8]| {
            w.lo.as_deref().is_some_and(|lo| k <= lo) || w.hi.as_deref().is_some_and(|hi| k >= hi)
        };
        if let Some(e) = node.entries.iter().find(|e| outside(&e.key)) {
            let d = format!("{range}; holds {:?}, outside that range", text(&e.key));
            self.problem(ProblemKind::Invalid, "tree node", w.cid, None, d);
            return;
        }
        // Pushed in reverse so they pop as gap 0, entry 0, gap 1, …, gap n.
        for i in (0..=node.entries.len()).rev() {
            if let Some(Link::Stored(child)) = node.gap(i) {
                let lo = if i == 0 {
                    w.lo.clone()
                } else {
                    Some(Box::from(&*node.entries[i - 1].key))
                };
                let hi = node
                    .entries
                    .get(i)
                    .map_or_else(|| w.hi.clone(), |e| Some(Box::from(&*e.key)));
                stack.push(Work::Node(NodeWork {
                    cid: child.cid.to_cid(),
                    height: node.height.checked_sub(1),
                    lo,
                    hi,
                }));
            }
            if i > 0 {
                let e = &node.entries[i - 1];
                stack.push(Work::Object {
                    key: Box::from(&*e.key),
                    manifest: e.value.to_cid(),
                });
            }
        }
    }

    async fn object(&mut self, key: &[u8], cid: Cid) {
        if !self.first_visit(&cid, self.track_seen) {
            return;
        }
        self.report.objects += 1;
        let name = text(key);
        let obj = Some(name.as_str());
        if let Err(e) = check_cbor_link(&cid, "manifest") {
            self.problem(ProblemKind::Invalid, "manifest", cid, obj, e.to_string());
            return;
        }
        let Some(bytes) = self.fetch(&cid, "manifest", obj, "").await else {
            return;
        };
        let m = match ObjectManifest::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                self.problem(ProblemKind::Invalid, "manifest", cid, obj, e.to_string());
                return;
            }
        };
        if let Some(why) = manifest_inconsistency(&m, key) {
            self.problem(ProblemKind::Invalid, "manifest", cid, obj, why);
            return;
        }
        if let Some(root) = m.body {
            self.body(&name, cid, &m, root).await;
        } else if self.opts.body_digests && m.parts.is_none() && m.md5 != *md5_of_nothing() {
            let d = "the empty body does not match the manifest's MD5";
            self.problem(ProblemKind::Invalid, "manifest", cid, obj, d);
        }
    }

    /// Walks a body's chunk index from `root`, reading or checking every chunk.
    async fn body(&mut self, name: &str, manifest: Cid, m: &ObjectManifest, root: Cid) {
        let obj = Some(name);
        let mut digests = (self.opts.body_digests && self.opts.read_chunks)
            .then(|| (PartMd5s::new(m.parts.clone()), Sha256::new()));
        let mut whole = true;
        let mut stack = vec![(root, 0u64, m.size)];
        while let Some((cid, offset, len)) = stack.pop() {
            if self.stopped() {
                return;
            }
            if !self.first_visit(&cid, self.opts.dedup) {
                continue;
            }
            if let Err(e) = check_cbor_link(&cid, "chunk index") {
                self.problem(ProblemKind::Invalid, "chunk index", cid, obj, e.to_string());
                whole = false;
                continue;
            }
            let Some(bytes) = self.fetch(&cid, "chunk index", obj, "").await else {
                whole = false;
                continue;
            };
            let index = match ChunkIndex::decode(&bytes) {
                Ok(i) => i,
                Err(e) => {
                    self.problem(ProblemKind::Invalid, "chunk index", cid, obj, e.to_string());
                    whole = false;
                    continue;
                }
            };
            if index.span() != (offset, len) {
                let (o, n) = index.span();
                let d = format!(
                    "covers bytes {o}..{}, where bytes {offset}..{} belong",
                    o + n,
                    offset + len
                );
                self.problem(ProblemKind::Invalid, "chunk index", cid, obj, d);
                whole = false;
                continue;
            }
            match index.locate(offset, offset + len) {
                Located::Children(children) => {
                    stack.extend(children.iter().rev().map(|c| (c.link, c.offset, c.len)));
                }
                Located::Chunks(refs) => {
                    whole &= self.chunks(name, &refs, digests.as_mut()).await;
                }
            }
        }
        if let Some((md5, sha)) = digests
            && whole
            && !self.stopped()
        {
            let mut why = None;
            if md5.finish() != m.md5 {
                why = Some("the body does not match the manifest's MD5");
            } else if m
                .sha256
                .is_some_and(|want| want != <[u8; 32]>::from(sha.finalize()))
            {
                why = Some("the body does not match the manifest's SHA-256");
            }
            if let Some(why) = why {
                self.problem(ProblemKind::Invalid, "body", manifest, obj, why);
            }
        }
    }

    /// Reads (or checks the presence and length of) a leaf's chunks, in body order.
    /// Returns whether every one was there and whole.
    async fn chunks(
        &mut self,
        name: &str,
        refs: &[ChunkRef],
        mut digests: Option<&mut (PartMd5s, Sha256)>,
    ) -> bool {
        let obj = Some(name);
        let role = |r: &ChunkRef| format!("chunk at bytes {}..{}", r.offset, r.offset + r.len);
        let todo: Vec<ChunkRef> = refs
            .iter()
            .filter(|r| self.first_visit(&r.cid, self.opts.dedup))
            .copied()
            .collect();
        let mut whole = true;
        if !self.opts.read_chunks {
            for r in &todo {
                match self.g.stat(&r.cid) {
                    None => {
                        self.problem(ProblemKind::Missing, role(r), r.cid, obj, "");
                        whole = false;
                    }
                    Some(n) if n != r.len => {
                        let d = format!("{n} bytes stored, {} expected", r.len);
                        self.problem(ProblemKind::Invalid, role(r), r.cid, obj, d);
                        whole = false;
                    }
                    Some(_) => {}
                }
            }
            return whole;
        }
        let g = self.g;
        let mut reads = stream::iter(
            todo.iter()
                .map(|r| async move { (*r, g.get(&r.cid, true).await) }),
        )
        .buffered(CHUNK_READS_IN_FLIGHT);
        while let Some((r, got)) = reads.next().await {
            if self.stopped() {
                return false;
            }
            let Some(bytes) = self.settle(got, &r.cid, &role(&r), obj, "") else {
                whole = false;
                continue;
            };
            if bytes.len() as u64 != r.len {
                let d = format!("{} bytes stored, {} expected", bytes.len(), r.len);
                self.problem(ProblemKind::Invalid, role(&r), r.cid, obj, d);
                whole = false;
                continue;
            }
            if let Some((md5, sha)) = digests.as_deref_mut() {
                md5.update(&bytes);
                sha.update(&bytes);
            }
            self.take(&r.cid, &bytes).await;
        }
        whole
    }
}

fn md5_of_nothing() -> &'static [u8; 16] {
    // MD5("") = d41d8cd98f00b204e9800998ecf8427e
    &[
        0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42,
        0x7e,
    ]
}

/// What is wrong with a manifest on its own (key, size, body link, ETag, parts).
fn manifest_inconsistency(m: &ObjectManifest, key: &[u8]) -> Option<String> {
    if m.key.as_bytes() != key {
        return Some(format!("it names the key {:?}", m.key));
    }
    match (m.body, m.size) {
        (None, 0) | (Some(_), 1..) => {}
        (None, n) => return Some(format!("an object of {n} bytes without a body")),
        (Some(_), 0) => return Some("an empty object with a body".to_owned()),
    }
    let md5 = crate::hex::encode(&m.md5);
    let etag = match &m.parts {
        None => md5,
        Some(parts) => {
            let sum: u64 = parts.iter().sum();
            if sum != m.size {
                return Some(format!("parts add up to {sum} bytes, not {}", m.size));
            }
            format!("{md5}-{}", parts.len())
        }
    };
    if m.etag != etag {
        return Some(format!(
            "ETag {:?} does not follow from its MD5 ({etag})",
            m.etag
        ));
    }
    None
}

impl CheckReport {
    /// One line per problem kept, then a summary line, each starting with `bucket`.
    pub fn render(&self, bucket: &str) -> String {
        let mut out = String::new();
        for p in &self.problems {
            out.push_str(&format!("{bucket}: {p}\n"));
        }
        let hidden = self.problem_count - self.problems.len() as u64;
        if hidden > 0 {
            out.push_str(&format!("{bucket}: … and {hidden} more problems\n"));
        }
        let status = if self.is_ok() { "ok" } else { "DAMAGED" };
        let head = self.head.map_or_else(|| "?".to_owned(), |c| c.to_string());
        let root = self.root.map_or_else(|| "?".to_owned(), |c| c.to_string());
        out.push_str(&format!(
            "{bucket}: {status}: head {head} (seq {}), root {root}; {} commits, {} objects, \
             {} blocks, {} bytes checked; {} problems\n",
            self.seq, self.commits, self.objects, self.blocks, self.bytes, self.problem_count
        ));
        out
    }
}

impl History {
    /// `all`, or a number of past commits.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::AsFarAsPresent),
            n => n.parse().ok().map(Self::Count),
        }
    }
}
