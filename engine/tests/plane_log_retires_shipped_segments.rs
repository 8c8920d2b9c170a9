//! Retiring a shipped segment (the lifecycle's last steps) on the simulated disk: only a
//! `Shipped` segment with a location can be retired; retiring removes the local CAR and
//! keeps its index, so every block is still placed (reads of it say where it went);
//! the state survives a power loss, and a retirement cut short by a crash is finished by
//! recovery.

mod common;

use cid::Cid;
use engine::block::cid_raw;
use engine::catalog::{Catalog, MemoryCatalog, SegmentState, SegmentUpdate};
use engine::io::sim::SimDisk;
use engine::plane::{Location, PlaneConfig, PlaneError, PlaneLog, car_name, index_name};
use engine::segment::{Plane, SegmentId};
use std::rc::Rc;
use std::sync::Arc;

const SHARD: u32 = 2;
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
    let bytes: Vec<u8> = (0..1000 + (i as usize * 131) % 2000)
        .map(|k| (k as u32 ^ i.wrapping_mul(2_654_435_761)) as u8)
        .collect();
    (cid_raw(&bytes), bytes)
}

async fn open(disk: &SimDisk, catalog: &Arc<MemoryCatalog>) -> PlaneLog<SimDisk, MemoryCatalog> {
    PlaneLog::open(
        Rc::new(disk.clone()),
        catalog.clone(),
        Plane::Data,
        SHARD,
        CONFIG,
    )
    .await
    .expect("open plane log")
    .0
}

async fn ship(catalog: &MemoryCatalog, seq: u64) -> String {
    let location = format!("file:///cold/{}", car_name(id(seq)));
    catalog
        .transition_segment(
            id(seq),
            SegmentState::Sealed,
            SegmentState::Shipped,
            SegmentUpdate {
                location: Some(location.clone()),
                now_ms: 1,
                ..SegmentUpdate::default()
            },
        )
        .await
        .expect("mark shipped");
    location
}

async fn state(catalog: &MemoryCatalog, seq: u64) -> SegmentState {
    catalog.segment(id(seq)).await.unwrap().unwrap().state
}

/// Every block reads back exactly, except those of `retired` segments, which answer
/// `Retired` with their segment's location.
async fn check_reads(
    log: &PlaneLog<SimDisk, MemoryCatalog>,
    written: &[(Cid, Vec<u8>, Location)],
    retired: &[(u64, &str)],
) {
    for (cid, bytes, loc) in written {
        match retired.iter().find(|(seq, _)| *seq == loc.seq) {
            Some((_, location)) => match log.read(*loc).await {
                Err(PlaneError::Retired { location: l, .. }) => assert_eq!(l, *location),
                other => panic!("block in retired segment {}: {other:?}", loc.seq),
            },
            None => {
                let got = log.read(*loc).await.expect("read");
                assert_eq!(cid_raw(&got), *cid);
                assert_eq!(&got, bytes);
            }
        }
    }
}

#[test]
fn only_shipped_segments_retire_and_their_blocks_stay_placed() {
    // On monoio, as in the engine: a roll seals in the background on a task of
    // the shard's runtime.
    common::block_on(only_shipped_segments_retire_and_their_blocks_stay_placed_async());
}

async fn only_shipped_segments_retire_and_their_blocks_stay_placed_async() {
    let disk = SimDisk::new();
    let catalog = Arc::new(MemoryCatalog::new());
    let mut log = open(&disk, &catalog).await;
    let mut written = Vec::new();
    for i in 0..60 {
        let (cid, bytes) = block(i);
        let loc = log.append(&cid, &bytes).await.unwrap();
        written.push((cid, bytes, loc));
        if i % 5 == 4 {
            log.commit().await.unwrap();
        }
    }
    log.roll().await.unwrap();
    let sealed: Vec<u64> = log.sealed_indexes().map(|(s, _)| s).collect();
    assert!(sealed.len() >= 3, "sealed {sealed:?}");
    let (first, second) = (sealed[0], sealed[1]);

    // Sealed but not shipped: refused, nothing changes.
    let r = log.retire(first).await;
    assert!(matches!(r, Err(PlaneError::Corrupt(_))), "{r:?}");
    assert_eq!(state(&catalog, first).await, SegmentState::Sealed);
    assert!(disk.live_bytes(&car_name(id(first))).is_some());
    check_reads(&log, &written, &[]).await;

    let loc1 = ship(&catalog, first).await;
    log.retire(first).await.unwrap();
    assert_eq!(state(&catalog, first).await, SegmentState::Retired);
    assert!(disk.live_bytes(&car_name(id(first))).is_none(), "CAR left");
    assert!(
        disk.live_bytes(&index_name(id(first))).is_some(),
        "index gone"
    );
    assert!(
        log.sealed_indexes().any(|(s, _)| s == first),
        "index dropped"
    );
    check_reads(&log, &written, &[(first, &loc1)]).await;
    // A retired segment cannot be retired again.
    assert!(log.retire(first).await.is_err());
    assert_eq!(state(&catalog, first).await, SegmentState::Retired);

    // Power loss: the retirement is durable, every block still placed.
    drop(log);
    let disk = disk.crash(|_, _| false);
    let log = open(&disk, &catalog).await;
    assert!(disk.live_bytes(&car_name(id(first))).is_none());
    assert!(log.sealed_indexes().any(|(s, _)| s == first));
    check_reads(&log, &written, &[(first, &loc1)]).await;

    // A retirement cut short after its mark (the unlink fails: the process died).
    let mut log = log;
    let loc2 = ship(&catalog, second).await;
    disk.die_after(0);
    assert!(log.retire(second).await.is_err());
    assert_eq!(state(&catalog, second).await, SegmentState::Retiring);
    drop(log);
    let disk = disk.crash(|_, _| false);
    let log = open(&disk, &catalog).await;
    assert_eq!(state(&catalog, second).await, SegmentState::Retired);
    assert!(disk.live_bytes(&car_name(id(second))).is_none(), "CAR left");
    assert!(
        disk.live_bytes(&index_name(id(second))).is_some(),
        "index gone"
    );
    check_reads(&log, &written, &[(first, &loc1), (second, &loc2)]).await;
}
