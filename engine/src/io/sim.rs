//! A simulated disk for crash tests: every file has live bytes (what reads see) and
//! durable bytes (what survives a crash), every directory has live and durable entries,
//! and faults can be injected.
//!
//! A crash keeps the durable state, plus — as a real disk may — any subset of the pages
//! written since the last sync, chosen by the test (`keep_unsynced_page`). Directory
//! changes not followed by `sync_dir` are lost.
//!
//! A space limit ([`SimDisk::limit_space`]) makes the disk full: a write or allocation
//! that would grow the live files past it fails with ENOSPC, as a full filesystem's.

use super::{AlignedBuf, Disk, PAGE_BYTES, SegmentFile};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

#[derive(Debug, Default, Clone)]
struct FileState {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Pages written since the last sync.
    dirty_pages: BTreeSet<u64>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, FileState>,
    live_names: BTreeSet<String>,
    durable_names: BTreeSet<String>,
    /// Syncs (file or directory) that succeed before the next one fails.
    syncs_before_failure: Option<u64>,
    /// Operations that still run before the process "dies": every later one fails.
    ops_before_death: Option<u64>,
    writes: u64,
    syncs: u64,
    /// The next sync of a file whose name starts with this is held.
    hold: Option<(String, Rc<SyncHold>)>,
    /// Bytes the live files may hold in all; `None`: unlimited.
    space_bytes: Option<u64>,
    /// Whether `available_bytes` keeps the free space to itself (a filesystem may, and
    /// another writer may take the space between the look and the allocation).
    hide_free_space: bool,
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.live_names
            .iter()
            .filter_map(|n| self.files.get(n))
            .map(|f| f.live.len() as u64)
            .sum()
    }

    /// Fails with ENOSPC when growing `name` to `len` bytes would pass the space limit.
    fn check_growth(&self, name: &str, len: u64) -> io::Result<()> {
        let Some(limit) = self.space_bytes else {
            return Ok(());
        };
        let now = self.files.get(name).map_or(0, |f| f.live.len() as u64);
        let growth = len.saturating_sub(now);
        if growth > 0 && self.used_bytes() + growth > limit {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

/// A sync held by [`SimDisk::hold_next_sync`]: it does not complete until released,
/// as a slow disk's would not.
#[derive(Debug, Default)]
pub struct SyncHold {
    waiting: Cell<bool>,
    released: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl SyncHold {
    /// Whether the held sync has started (and is waiting).
    pub fn is_waiting(&self) -> bool {
        self.waiting.get()
    }

    /// Lets the held sync complete.
    pub fn release(&self) {
        self.released.set(true);
        self.notify.notify_one();
    }

    async fn wait(&self) {
        self.waiting.set(true);
        while !self.released.get() {
            self.notify.notified().await;
        }
    }
}

/// The simulated disk. Cheap to clone (clones share the disk).
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Rc<RefCell<State>>,
}

/// An open file on a [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimFile {
    disk: SimDisk,
    name: String,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected I/O error: {what}"))
}

impl SimDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the sync after the next `n` successful ones fail (with EIO).
    pub fn fail_sync_after(&self, n: u64) {
        self.state.borrow_mut().syncs_before_failure = Some(n);
    }

    /// Lets `n` more operations (write, sync, create, remove, set_len, sync_dir) run;
    /// every later one fails, as if the process died there. Pair with [`SimDisk::crash`].
    pub fn die_after(&self, n: u64) {
        self.state.borrow_mut().ops_before_death = Some(n);
    }

    fn alive(&self) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        match s.ops_before_death {
            Some(0) => Err(eio("the process died")),
            Some(n) => {
                s.ops_before_death = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Limits what the live files may hold in all to `bytes` (`None`: no limit). Lowering
    /// it below what they hold makes every growth fail; nothing is taken away.
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.state.borrow_mut().space_bytes = bytes;
    }

    /// Limits the space to what the live files hold now plus `free_bytes`.
    pub fn leave_free(&self, free_bytes: u64) {
        let mut s = self.state.borrow_mut();
        s.space_bytes = Some(s.used_bytes() + free_bytes);
    }

    /// Makes `available_bytes` answer `None`, so only the allocation itself finds the
    /// disk full.
    pub fn hide_free_space(&self, hide: bool) {
        self.state.borrow_mut().hide_free_space = hide;
    }

    /// Holds the next sync of a file whose name starts with `prefix` until the returned
    /// hold is released (other syncs go on).
    pub fn hold_next_sync(&self, prefix: &str) -> Rc<SyncHold> {
        let hold = Rc::new(SyncHold::default());
        self.state.borrow_mut().hold = Some((prefix.to_owned(), hold.clone()));
        hold
    }

    /// (writes, syncs) issued so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.borrow();
        (s.writes, s.syncs)
    }

    fn sync_allowed(&self) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.syncs += 1;
        match s.syncs_before_failure {
            Some(0) => Err(eio("sync")),
            Some(n) => {
                s.syncs_before_failure = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The disk as it is after power loss: durable bytes, plus each unsynced page for
    /// which `keep_unsynced_page(file, page)` says it reached the medium.
    pub fn crash(&self, mut keep_unsynced_page: impl FnMut(&str, u64) -> bool) -> SimDisk {
        let s = self.state.borrow();
        let mut files = BTreeMap::new();
        for name in &s.durable_names {
            let Some(f) = s.files.get(name) else { continue };
            let mut bytes = f.durable.clone();
            for &page in &f.dirty_pages {
                if !keep_unsynced_page(name, page) {
                    continue;
                }
                let start = page as usize * PAGE_BYTES;
                let end = (start + PAGE_BYTES).min(f.live.len());
                if start >= end {
                    continue;
                }
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(&f.live[start..end]);
            }
            let state = FileState {
                live: bytes.clone(),
                durable: bytes,
                dirty_pages: BTreeSet::new(),
            };
            files.insert(name.clone(), state);
        }
        let names: BTreeSet<String> = files.keys().cloned().collect();
        SimDisk {
            state: Rc::new(RefCell::new(State {
                files,
                live_names: names.clone(),
                durable_names: names,
                ..State::default()
            })),
        }
    }

    /// The live bytes of a file (for assertions).
    pub fn live_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.state.borrow().files.get(name).map(|f| f.live.clone())
    }
}

impl SegmentFile for SimFile {
    async fn write_at(&self, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        if let Err(e) = self.disk.alive() {
            return (Err(e), buf);
        }
        let mut s = self.disk.state.borrow_mut();
        s.writes += 1;
        if !s.files.contains_key(&self.name) {
            return (Err(io::ErrorKind::NotFound.into()), buf);
        }
        if !offset.is_multiple_of(PAGE_BYTES as u64) {
            return (Err(io::ErrorKind::InvalidInput.into()), buf);
        }
        let start = offset as usize;
        let end = start + buf.len();
        if let Err(e) = s.check_growth(&self.name, end as u64) {
            return (Err(e), buf);
        }
        let Some(f) = s.files.get_mut(&self.name) else {
            return (Err(io::ErrorKind::NotFound.into()), buf);
        };
        if f.live.len() < end {
            f.live.resize(end, 0);
        }
        f.live[start..end].copy_from_slice(buf.as_slice());
        for page in (start / PAGE_BYTES)..end.div_ceil(PAGE_BYTES) {
            f.dirty_pages.insert(page as u64);
        }
        (Ok(()), buf)
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let s = self.disk.state.borrow();
        let f = s.files.get(&self.name).ok_or(io::ErrorKind::NotFound)?;
        let start = (offset as usize).min(f.live.len());
        let end = (start + len).min(f.live.len());
        Ok(f.live[start..end].to_vec())
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.disk.alive()?;
        self.disk.sync_allowed()?;
        let held = {
            let mut s = self.disk.state.borrow_mut();
            match &s.hold {
                Some((prefix, _)) if self.name.starts_with(prefix.as_str()) => s.hold.take(),
                _ => None,
            }
        };
        if let Some((_, hold)) = held {
            hold.wait().await;
        }
        let mut s = self.disk.state.borrow_mut();
        let f = s.files.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
        f.durable = f.live.clone();
        f.dirty_pages.clear();
        Ok(())
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.alive()?;
        let mut s = self.disk.state.borrow_mut();
        let f = s.files.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
        f.live.resize(len as usize, 0);
        Ok(())
    }

    async fn file_len(&self) -> io::Result<u64> {
        let s = self.disk.state.borrow();
        let f = s.files.get(&self.name).ok_or(io::ErrorKind::NotFound)?;
        Ok(f.live.len() as u64)
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.disk.alive()?;
        let mut s = self.disk.state.borrow_mut();
        s.check_growth(&self.name, len)?;
        let f = s.files.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
        if (f.live.len() as u64) < len {
            f.live.resize(len as usize, 0);
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn create(&self, name: &str) -> io::Result<SimFile> {
        self.alive()?;
        let mut s = self.state.borrow_mut();
        if s.live_names.contains(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        s.files.insert(name.to_owned(), FileState::default());
        s.live_names.insert(name.to_owned());
        Ok(SimFile {
            disk: self.clone(),
            name: name.to_owned(),
        })
    }

    async fn open(&self, name: &str) -> io::Result<SimFile> {
        if !self.state.borrow().live_names.contains(name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(SimFile {
            disk: self.clone(),
            name: name.to_owned(),
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.alive()?;
        let mut s = self.state.borrow_mut();
        if !s.live_names.remove(name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.borrow().live_names.iter().cloned().collect())
    }

    async fn sync_dir(&self) -> io::Result<()> {
        self.alive()?;
        self.sync_allowed()?;
        let mut s = self.state.borrow_mut();
        let live = s.live_names.clone();
        // Content of removed files is gone once the removal is durable.
        s.files.retain(|name, _| live.contains(name));
        s.durable_names = live;
        Ok(())
    }

    async fn available_bytes(&self) -> io::Result<Option<u64>> {
        let s = self.state.borrow();
        if s.hide_free_space {
            return Ok(None);
        }
        Ok(s.space_bytes
            .map(|limit| limit.saturating_sub(s.used_bytes())))
    }
}
