//! A roll by size seals the full segment in the background (simulated disk): appends
//! and commits to the next segment go on while the old one's truncate fsync is held;
//! its blocks read back from its file meanwhile; it is recorded `Sealed`, with the
//! file's size and SHA-256, only once every step is done; and a failed background seal
//! poisons the log so that no later commit succeeds.

mod common;

use cid::Cid;
use engine::block::cid_raw;
use engine::catalog::{Catalog, MemoryCatalog, SegmentRecord, SegmentState};
use engine::io::sim::SimDisk;
use engine::io::{Disk, SegmentFile};
use engine::plane::{Location, PlaneConfig, PlaneLog, car_name};
use engine::segment::{Plane, SegmentId};
use sha2::{Digest, Sha256};
use std::rc::Rc;
use std::sync::Arc;

const SHARD: u32 = 5;
const CONFIG: PlaneConfig = PlaneConfig {
    seal_bytes: 16 << 10,
};

fn id(seq: u64) -> SegmentId {
    SegmentId {
        plane: Plane::Data,
        shard: SHARD,
        seq,
    }
}

fn block(i: u32) -> (Cid, Vec<u8>) {
    let bytes: Vec<u8> = (0..900 + (i as usize * 157) % 1500)
        .map(|k| (k as u32 ^ i.wrapping_mul(2_246_822_519)) as u8)
        .collect();
    (cid_raw(&bytes), bytes)
}

/// Lets every other ready task of the runtime run (the background seal among them).
async fn let_others_run() {
    monoio::spawn(async {}).await;
}

type Written = Vec<(Cid, Vec<u8>, Location)>;

/// Opens a log and appends (committing now and then) until an append rolls to a new
/// segment. Returns the log, the blocks of the first segment and its number.
async fn fill_first_segment(
    disk: &SimDisk,
    catalog: &Arc<MemoryCatalog>,
) -> (PlaneLog<SimDisk, MemoryCatalog>, Written, u64) {
    let (mut log, _) = PlaneLog::open(
        Rc::new(disk.clone()),
        catalog.clone(),
        Plane::Data,
        SHARD,
        CONFIG,
    )
    .await
    .expect("open");
    let first = log.open_seq().expect("an open segment");
    let mut written = Vec::new();
    for i in 0.. {
        let (cid, bytes) = block(i);
        let loc = log.append(&cid, &bytes).await.expect("append");
        if loc.seq != first {
            return (log, written, first);
        }
        written.push((cid, bytes, loc));
        if i % 3 == 2 {
            log.commit().await.expect("commit");
        }
    }
    unreachable!("appends roll eventually")
}

async fn record(catalog: &MemoryCatalog, seq: u64) -> SegmentRecord {
    catalog
        .segment(id(seq))
        .await
        .expect("catalog")
        .expect("record")
}

async fn state(catalog: &MemoryCatalog, seq: u64) -> SegmentState {
    record(catalog, seq).await.state
}

#[test]
fn appends_go_on_while_the_full_segment_seals_and_its_blocks_stay_readable() {
    common::block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let (mut log, written, old) = fill_first_segment(&disk, &catalog).await;
        // The roll made every frame durable before returning; the rest of the seal
        // waits on its first fsync.
        let hold = disk.hold_next_sync(&car_name(id(old)));
        for _ in 0..4 {
            let_others_run().await;
        }
        assert!(hold.is_waiting(), "the background seal reached its fsync");

        // The new segment takes appends and commits meanwhile.
        let mut later = Vec::new();
        for i in 1000..1004 {
            let (cid, bytes) = block(i);
            let loc = log
                .append(&cid, &bytes)
                .await
                .expect("append during the seal");
            assert_ne!(loc.seq, old);
            later.push((cid, bytes, loc));
        }
        log.commit().await.expect("commit during the seal");
        assert!(hold.is_waiting(), "the seal is still held");
        assert_eq!(state(&catalog, old).await, SegmentState::Open);
        // The sealing segment's blocks read back from its file.
        for (cid, bytes, loc) in written.iter().chain(&later) {
            let got = log.read(*loc).await.expect("read");
            assert_eq!(cid_raw(&got), *cid);
            assert_eq!(&got, bytes);
        }

        hold.release();
        log.finish_sealing().await.expect("seal");
        let rec = record(&catalog, old).await;
        assert_eq!(rec.state, SegmentState::Sealed);
        let file = disk.open(&car_name(id(old))).await.expect("car");
        let car = file
            .read_at(0, file.file_len().await.expect("len") as usize)
            .await
            .expect("read car");
        assert_eq!(rec.size_bytes, car.len() as u64, "truncated to its frames");
        assert_eq!(rec.sha256, Some(<[u8; 32]>::from(Sha256::digest(&car))));
        for (cid, bytes, loc) in written.iter().chain(&later) {
            assert_eq!(&log.read(*loc).await.expect("read sealed"), bytes, "{cid}");
        }
    });
}

#[test]
fn a_failed_background_seal_poisons_the_log() {
    common::block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let (mut log, written, old) = fill_first_segment(&disk, &catalog).await;
        // The next sync is the background seal's (the roll's own commit is done).
        disk.fail_sync_after(0);
        for _ in 0..4 {
            let_others_run().await;
        }
        let (cid, bytes) = block(2000);
        let appended = log.append(&cid, &bytes).await;
        assert!(
            appended.is_err(),
            "an append after a failed seal is refused"
        );
        assert!(log.commit().await.is_err(), "and so is every commit");
        assert!(log.is_poisoned());
        assert_eq!(
            state(&catalog, old).await,
            SegmentState::Open,
            "a failed seal records nothing"
        );
        // What was durable before still reads back.
        for (_, bytes, loc) in &written {
            assert_eq!(&log.read(*loc).await.expect("read"), bytes);
        }
    });
}
