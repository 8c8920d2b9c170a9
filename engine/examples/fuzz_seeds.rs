//! Writes seed inputs for the fuzz targets (valid encodings of every format) into
//! `fuzz/seeds/<target>/`: `cargo run -p engine --example fuzz_seeds`.
//! Fuzzing from valid inputs reaches the deep checks that random bytes never get past.

use engine::block::MemoryBlocks;
use engine::chunker::chunk_slice;
use engine::format::{Commit, ObjectManifest, build_chunk_index};
use engine::mst::{Mst, NodeStore};
use engine::segment::{Plane, SegmentId, SegmentIndex, write_frame};
use std::collections::BTreeMap;
use std::path::Path;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 24);
    let mut tree = Mst::new();
    let mut catalog = Vec::new();
    let mut data = Vec::new();
    for i in 0..200u32 {
        let key = format!("photos/{}/img-{i:04}.jpg", i % 7);
        let body = vec![i as u8; (i as usize * 13) % 300];
        let (chunks, b) = chunk_slice(64, true, &body);
        data.extend(chunks.into_iter().map(|c| (c.cid, c.data)));
        let index = build_chunk_index(vec![b.run], &mut catalog);
        let mut m = ObjectManifest::new(key.clone(), body.len() as u64, b.md5, 1, index);
        m.sha256 = b.sha256;
        m.headers.content_type = Some("image/jpeg".into());
        m.headers.meta = BTreeMap::from([("k".into(), "v".into())]);
        catalog.push((m.cid(), m.encode()));
        tree.insert(key.as_bytes(), m.cid(), &mut nodes)
            .expect("valid key");
    }
    let mut node_blocks = Vec::new();
    let root = tree.commit(&mut nodes, &mut node_blocks);
    let commit = Commit {
        bucket: "photos".into(),
        root,
        prev: None,
        seq: 1,
        time_ms: 2,
    };
    catalog.push((commit.cid(), commit.encode()));
    for (i, (_, b)) in node_blocks.iter().enumerate().take(16) {
        // The first byte picks the height the target decodes at (see mst_node.rs).
        let mut input = vec![0x80];
        input.extend_from_slice(b);
        write(&dir, "mst_node", &format!("node-{i}"), &input)?;
        write(&dir, "dag_cbor", &format!("node-{i}"), b)?;
    }
    for (i, (_, b)) in catalog.iter().enumerate().step_by(25) {
        write(&dir, "formats", &format!("block-{i}"), b)?;
        write(&dir, "dag_cbor", &format!("block-{i}"), b)?;
    }
    let id = SegmentId {
        plane: Plane::Meta,
        shard: 0,
        seq: 1,
    };
    let mut car = id.header();
    for (c, b) in catalog.iter().chain(&node_blocks).take(12) {
        write_frame(&mut car, c, b);
    }
    let mut data_car = SegmentId {
        plane: Plane::Data,
        shard: 0,
        seq: 1,
    }
    .header();
    for (c, b) in data.iter().take(8) {
        write_frame(&mut data_car, c, b);
    }
    write(&dir, "car_segment", "catalog.car", &car)?;
    write(&dir, "car_segment", "data.car", &data_car)?;
    let idx = SegmentIndex::from_car(&car).expect("our own segment");
    write(&dir, "car_segment", "catalog.idx", &idx.encode())?;
    println!("seeds written to {}", dir.display());
    Ok(())
}
