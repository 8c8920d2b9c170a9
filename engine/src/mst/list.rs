//! One page of an S3 LIST: prefix, delimiter, start-after and max-keys, from an ordered
//! walk. A common prefix counts once toward max-keys, and a listing that starts at or
//! inside a common prefix already returned resumes after the whole prefix.

use super::MstError;
use super::store::NodeLoader;
use super::tree::Mst;
use super::walk::Walker;
use cid::Cid;
use std::ops::Bound;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: Vec<u8>,
    pub delimiter: Option<Vec<u8>>,
    /// List keys strictly after this one (S3 marker, start-after, continuation token).
    pub start_after: Option<Vec<u8>>,
    pub max_keys: usize,
}

/// One item of a page, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    Object { key: Box<[u8]>, value: Cid },
    CommonPrefix(Box<[u8]>),
}

impl ListItem {
    /// The key or prefix: what a next page starts after.
    pub fn marker(&self) -> &[u8] {
        match self {
            ListItem::Object { key, .. } => key,
            ListItem::CommonPrefix(p) => p,
        }
    }
}

/// A page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    /// More items follow the last one.
    pub truncated: bool,
}

/// The smallest bound above every key that starts with `prefix`: keys are UTF-8, so no
/// key holds the byte 0xFF.
fn past_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    p.push(0xff);
    p
}

/// Builds one page. Resumable: after [`MstError::Missing`], load the node and call
/// [`Lister::run`] again; the items found so far are kept.
#[derive(Debug)]
pub struct Lister {
    query: ListQuery,
    walker: Walker,
    page: ListPage,
    done: bool,
}

impl Lister {
    pub fn new(tree: &Mst, query: ListQuery) -> Self {
        let start = match &query.start_after {
            Some(s) if s.as_slice() >= query.prefix.as_slice() => Bound::Excluded(s.as_slice()),
            _ => Bound::Included(query.prefix.as_slice()),
        };
        let walker = Walker::new(tree, start);
        Self {
            query,
            walker,
            page: ListPage::default(),
            done: false,
        }
    }

    pub fn run(&mut self, nodes: &mut impl NodeLoader) -> Result<ListPage, MstError> {
        while !self.done {
            self.step(nodes)?;
        }
        Ok(std::mem::take(&mut self.page))
    }

    fn step(&mut self, nodes: &mut impl NodeLoader) -> Result<(), MstError> {
        let Some((key, value)) = self.walker.next_entry(nodes)? else {
            self.done = true;
            return Ok(());
        };
        let q = &self.query;
        if !key.starts_with(&q.prefix) {
            // Walking in order from at least the prefix: the first key without it is
            // past every key with it.
            self.done = true;
            return Ok(());
        }
        let item = match q.delimiter.as_deref().filter(|d| !d.is_empty()) {
            Some(delim) => {
                let rest = &key[q.prefix.len()..];
                match find(rest, delim) {
                    Some(at) => {
                        let cp = &key[..q.prefix.len() + at + delim.len()];
                        let next = past_prefix(cp);
                        self.walker.seek(Bound::Included(&next));
                        if q.start_after.as_deref().is_some_and(|s| cp <= s) {
                            return Ok(()); // returned on an earlier page
                        }
                        ListItem::CommonPrefix(cp.into())
                    }
                    None => ListItem::Object { key, value },
                }
            }
            None => ListItem::Object { key, value },
        };
        if self.page.items.len() == q.max_keys {
            self.page.truncated = true;
            self.done = true;
            return Ok(());
        }
        self.page.items.push(item);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
