//! A bucket as one CAR file (`docs/format.md` §7): the walk that export, import and
//! verify share, and the streaming CAR reader import uses.
//!
//! - `walk`: visits every block reachable from a head commit in the export order,
//!   checking each one (hash, strict decoding, MST shape, manifest against its chunk
//!   index and body) and naming the object a damaged block belongs to;
//! - `car`: CAR header and frames read from a stream of byte pieces, each block
//!   verified against its CID as it arrives.

mod car;
mod walk;

pub use car::{CarError, CarItem, CarStream};
pub use walk::{
    BlockGetter, CheckOptions, CheckReport, Emit, History, NoEmit, Problem, ProblemKind,
    check_bucket,
};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The bucket's new head (a commit on top of the imported one).
    pub head: crate::api::BucketHead,
    /// The head commit the file carried.
    pub imported_commit: cid::Cid,
    /// Blocks in the file, and how many of them the shard already held.
    pub blocks: u64,
    pub blocks_already_stored: u64,
    /// Bytes of block data in the file.
    pub bytes: u64,
    pub check: CheckReport,
}

impl ImportReport {
    /// The one-line summary the CLI and the admin endpoint print.
    pub fn render(&self, bucket: &str) -> String {
        format!(
            "{bucket}: imported {} objects ({} blocks, {} bytes; {} already stored) from \
             commit {}; new head {} (seq {}), root {}\n",
            self.check.objects,
            self.blocks,
            self.bytes,
            self.blocks_already_stored,
            self.imported_commit,
            self.head.commit,
            self.head.seq,
            self.head.root
        )
    }
}
