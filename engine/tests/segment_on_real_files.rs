//! An open segment on real files (O_DIRECT on the test directory's filesystem, buffered
//! where it is refused): commit, recover after a torn tail, seal, and read the result
//! with an independent CAR reader.

mod common;

use engine::block::cid_raw;
use engine::io::std_disk::StdDisk;
use engine::io::{AlignedBuf, Disk, SegmentFile};
use engine::plane::{OpenSegment, car_name, index_name, recover};
use engine::segment::{Plane, SegmentId, SegmentIndex};

#[test]
fn commit_tear_recover_seal_and_read_back() {
    // On monoio, as in the engine: a roll seals in the background on a task of
    // the shard's runtime.
    common::block_on(commit_tear_recover_seal_and_read_back_async());
}

async fn commit_tear_recover_seal_and_read_back_async() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = StdDisk::new(dir.path()).unwrap();
    let id = SegmentId {
        plane: Plane::Data,
        shard: 1,
        seq: 9,
    };
    let mut seg = OpenSegment::create(&disk, id, 1 << 20).await.unwrap();
    let blocks: Vec<Vec<u8>> = (0..50u32)
        .map(|i| vec![i as u8; (i as usize * 997) % 20_000])
        .collect();
    for (i, b) in blocks.iter().enumerate() {
        seg.append(&cid_raw(b), b).unwrap();
        if i % 7 == 0 {
            seg.commit().await.unwrap();
        }
    }
    let durable = seg.commit().await.unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join(car_name(id)))
            .unwrap()
            .len(),
        1 << 20,
        "pre-written"
    );
    drop(seg);

    // A torn frame after the durable end: half a frame of garbage.
    let file = disk.open(&car_name(id)).await.unwrap();
    let page = durable - durable % 4096;
    let mut head = file.read_at(page, 4096).await.unwrap();
    head.resize(8192, 0);
    let cut = (durable - page) as usize;
    head[cut..cut + 100].copy_from_slice(&[0x80; 100]);
    let (r, _) = file.write_at(AlignedBuf::from_padded(&head), page).await;
    r.unwrap();
    file.sync_data().await.unwrap();

    let rec = recover(&file).await.unwrap().unwrap();
    assert_eq!(rec.end, durable);
    assert_eq!(rec.blocks.len(), blocks.len());
    assert!(rec.stopped_by.is_some(), "the garbage stopped the scan");
    let seg = OpenSegment::reopen(file, &rec).await.unwrap();
    let index = seg.seal(&disk).await.unwrap();

    let car = std::fs::read(dir.path().join(car_name(id))).unwrap();
    assert_eq!(car.len() as u64, durable, "sealed at the logical length");
    let mut reader = iroh_car::CarReader::new(car.as_slice()).await.unwrap();
    let mut n = 0;
    while let Some((cid, data)) = reader.next_block().await.unwrap() {
        assert_eq!(cid, cid_raw(&blocks[n]));
        assert_eq!(data, blocks[n]);
        n += 1;
    }
    assert_eq!(n, blocks.len());
    let idx = std::fs::read(dir.path().join(index_name(id))).unwrap();
    assert_eq!(SegmentIndex::decode(&idx).unwrap(), index);
}
