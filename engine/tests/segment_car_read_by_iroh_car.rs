//! CAR bytes we write are read back block for block by an independent reader
//! (`iroh-car`), and the segment index built while writing equals the one rebuilt from
//! the CAR alone and locates every block.

use cid::Cid;
use engine::block::{MemoryBlocks, cid_raw};
use engine::chunker::chunk_slice;
use engine::format::{Commit, ObjectManifest, build_chunk_index};
use engine::mst::{Mst, NodeStore};
use engine::segment::{Plane, SegmentId, SegmentIndex, SegmentIndexBuilder, write_frame};
use sha2::{Digest, Sha256};

/// Builds a realistic catalog + data segment pair: chunks of a few bodies, their chunk
/// indexes and manifests, the MST nodes and a commit.
type Blocks = Vec<(Cid, Vec<u8>)>;

fn blocks() -> (Blocks, Blocks) {
    let mut data = Vec::new();
    let mut catalog = MemoryBlocks::new();
    let mut nodes = NodeStore::new(MemoryBlocks::new(), 1 << 20);
    let mut tree = Mst::new();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(i * 997) as usize)
            .map(|j| (j as u32 ^ i) as u8)
            .collect();
        let (chunks, b) = chunk_slice(4096, false, &body);
        data.extend(chunks.into_iter().map(|c| (c.cid, c.data)));
        let key = format!("dir{}/object-{i}", i % 3);
        let index = build_chunk_index(vec![b.run], &mut catalog);
        let mtime_ms = 1_795_305_600_000 + u64::from(i);
        let m = ObjectManifest::new(key.clone(), body.len() as u64, b.md5, mtime_ms, index);
        let bytes = m.encode();
        let cid = m.cid();
        catalog.insert(cid, bytes);
        tree.insert(key.as_bytes(), cid, &mut nodes).unwrap();
    }
    let root = tree.commit(&mut nodes, &mut catalog);
    let commit = Commit {
        bucket: "b".into(),
        root,
        prev: None,
        seq: 1,
        time_ms: 1,
    };
    catalog.insert(commit.cid(), commit.encode());
    let mut catalog: Vec<(Cid, Vec<u8>)> = catalog.iter().map(|(c, b)| (*c, b.to_vec())).collect();
    catalog.sort();
    (data, catalog)
}

fn write_segment(id: SegmentId, blocks: &[(Cid, Vec<u8>)]) -> (Vec<u8>, SegmentIndex) {
    let mut car = id.header();
    let mut idx = SegmentIndexBuilder::new(id);
    for (cid, block) in blocks {
        let start = car.len();
        write_frame(&mut car, cid, block);
        let block_offset = car.len() - block.len();
        assert!(block_offset > start);
        idx.add(cid, block_offset as u64, block.len() as u32)
            .unwrap();
    }
    let sum: [u8; 32] = Sha256::digest(&car).into();
    let index = idx.finish(car.len() as u64, sum);
    (car, index)
}

async fn read_with_iroh_car(car: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let mut reader = iroh_car::CarReader::new(car).await.unwrap();
    let roots = reader.header().roots().to_vec();
    let mut out = Vec::new();
    while let Some(b) = reader.next_block().await.unwrap() {
        out.push(b);
    }
    (roots, out)
}

#[tokio::test]
async fn iroh_car_reads_our_segments_block_for_block() {
    let (data, catalog) = blocks();
    assert!(
        data.len() > 100 && catalog.len() > 80,
        "{} {}",
        data.len(),
        catalog.len()
    );
    for (plane, blocks) in [(Plane::Data, &data), (Plane::Meta, &catalog)] {
        let id = SegmentId {
            plane,
            shard: 3,
            seq: 17,
        };
        let (car, index) = write_segment(id, blocks);
        let (roots, read) = read_with_iroh_car(&car).await;
        assert_eq!(roots, vec![id.header_root()]);
        assert_eq!(&read, blocks, "{plane:?}");

        // The index locates every block, survives encode/decode, and equals the index
        // rebuilt from the CAR alone.
        for (cid, block) in blocks {
            let e = index.get(cid).unwrap();
            let at = e.offset as usize;
            assert_eq!(&car[at..at + e.len as usize], block.as_slice());
        }
        assert!(index.get(&cid_raw(b"absent")).is_none());
        let encoded = index.encode();
        assert_eq!(SegmentIndex::decode(&encoded).unwrap(), index);
        assert_eq!(SegmentIndex::from_car(&car).unwrap(), index);
    }
}

#[test]
fn damaged_index_is_refused() {
    let (data, _) = blocks();
    let (_, index) = write_segment(
        SegmentId {
            plane: Plane::Data,
            shard: 0,
            seq: 1,
        },
        &data[..5],
    );
    let bytes = index.encode();
    for at in [0, 8, 20, 70, 80, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(SegmentIndex::decode(&bad).is_err(), "flip at {at}");
    }
    assert!(SegmentIndex::decode(&bytes[..bytes.len() - 48]).is_err());
}

#[test]
fn torn_segment_tail_is_reported_at_the_last_good_frame() {
    let (data, _) = blocks();
    let id = SegmentId {
        plane: Plane::Data,
        shard: 0,
        seq: 2,
    };
    let (car, _) = write_segment(id, &data[..6]);
    let torn = &car[..car.len() - 10];
    let err = SegmentIndex::from_car(torn).unwrap_err();
    assert!(
        matches!(err, engine::segment::IndexError::Frame { .. }),
        "{err}"
    );
}
