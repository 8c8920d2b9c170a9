//! Shared fixtures for the criterion benchmarks in `benches/` (the S3 load generator
//! behind `ingot-engine bench` is `client::load`).

use cid::Cid;
use engine::block::{BlockSink, MemoryBlocks, cid_raw};
use engine::mst::{Mst, NodeStore};

/// A sink that counts what it is given and drops it (benchmarks measure the tree, not
/// where its blocks go).
#[derive(Debug, Default)]
pub struct CountingSink {
    pub blocks: u64,
    pub bytes: u64,
}

impl BlockSink for CountingSink {
    fn put_block(&mut self, _: Cid, block: Vec<u8>) {
        self.blocks += 1;
        self.bytes += block.len() as u64;
    }
}

/// The key of object `i` in benchmark trees: realistic S3-style keys.
pub fn bench_key(i: u64) -> String {
    format!(
        "tenant-{:03}/2026/11/{:02}/object-{i:09}.json",
        i % 997,
        i % 30
    )
}

/// A value CID for object `i`.
pub fn bench_value(i: u64) -> Cid {
    cid_raw(&i.to_le_bytes())
}

/// A committed tree of `n` keys with every node cached.
pub fn build_tree(n: u64) -> (Mst, NodeStore<MemoryBlocks>) {
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 2 << 30);
    let mut tree = Mst::new();
    for i in 0..n {
        tree.insert(bench_key(i).as_bytes(), bench_value(i), &mut nodes)
            .expect("benchmark keys are valid");
        if i % 4096 == 4095 {
            commit_into_source(&mut tree, &mut nodes);
        }
    }
    commit_into_source(&mut tree, &mut nodes);
    (tree, nodes)
}

/// Commits and keeps the written blocks in the store's own source.
pub fn commit_into_source(tree: &mut Mst, nodes: &mut NodeStore<MemoryBlocks>) -> Cid {
    let mut sink = Vec::new();
    let root = tree.commit(nodes, &mut sink);
    for (cid, block) in sink {
        nodes.source_mut().insert(cid, block);
    }
    root
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
