//! Crash tests of a whole plane log (segments rolling, sealing, lifecycle records) on the
//! simulated disk: the process "dies" after a random number of I/O operations — inside
//! appends that roll segments, seals, creations or commits — then the power fails
//! (unsynced pages kept or dropped at random) and the log is reopened. Every
//! acknowledged block reads back with its exact bytes, every file has its catalog
//! record and every record its file, and the recovered log keeps working.

use cid::Cid;
use engine::block::cid_raw;
use engine::catalog::{Catalog, MemoryCatalog, SegmentState};
use engine::io::sim::SimDisk;
use engine::io::{Disk, SegmentFile};
use engine::plane::{Location, PlaneConfig, PlaneLog, car_name, index_name};
use engine::segment::Plane;
use sha2::{Digest, Sha256};
use std::rc::Rc;
use std::sync::Arc;

mod common;
use common::Rng;

fn block(rng: &mut Rng) -> (Cid, Vec<u8>) {
    let len = rng.below(6000) as usize;
    let seed = rng.next();
    let bytes: Vec<u8> = (0..len)
        .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
        .collect();
    (cid_raw(&bytes), bytes)
}

const SHARD: u32 = 3;

/// Every record has its files and every file its record.
async fn check_files_match_records(disk: &SimDisk, catalog: &MemoryCatalog, seed: u64) {
    let files = disk.list().await.unwrap();
    let records = catalog.segments().await.unwrap();
    for f in &files {
        let known = records
            .iter()
            .any(|r| car_name(r.id) == *f || index_name(r.id) == *f);
        assert!(known, "seed {seed}: file {f} has no record");
    }
    for r in &records {
        let has_car = files.contains(&car_name(r.id));
        match r.state {
            SegmentState::Open | SegmentState::Sealed | SegmentState::Shipped => {
                assert!(has_car, "seed {seed}: {:?} record without its file", r.id);
            }
            SegmentState::Retired => assert!(!has_car, "seed {seed}: retired file left"),
            other => panic!("seed {seed}: unfinished state {other:?} after recovery"),
        }
        if r.state == SegmentState::Sealed {
            assert!(
                files.contains(&index_name(r.id)),
                "seed {seed}: sealed without index"
            );
            // The digest recorded at the seal (hashed off the appending thread, and
            // for a recovered segment from the bytes recovery read) is the file's.
            let f = disk.open(&car_name(r.id)).await.unwrap();
            let car = f
                .read_at(0, f.file_len().await.unwrap() as usize)
                .await
                .unwrap();
            let file_sha: [u8; 32] = Sha256::digest(&car).into();
            assert_eq!(r.sha256, Some(file_sha), "seed {seed}: {:?} digest", r.id);
            assert_eq!(
                r.size_bytes,
                car.len() as u64,
                "seed {seed}: {:?} size",
                r.id
            );
        }
    }
}

/// One case: the workload of `seed`, with the process dying after `death` I/O
/// operations (`None`: a random point).
async fn case(seed: u64, death: Option<u64>) -> (usize, usize) {
    let mut rng = Rng::seeded(seed);
    let disk = SimDisk::new();
    let catalog = Arc::new(MemoryCatalog::new());
    let config = PlaneConfig {
        seal_bytes: 8192 * (2 + rng.below(4)),
    };
    let (mut log, _) = PlaneLog::open(
        Rc::new(disk.clone()),
        catalog.clone(),
        Plane::Data,
        SHARD,
        config,
    )
    .await
    .unwrap();
    let random_death = rng.below(150);
    disk.die_after(death.unwrap_or(random_death));
    let mut acked: Vec<(Cid, Vec<u8>, Location)> = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..rng.below(80) {
        if rng.below(4) == 0 {
            if log.commit().await.is_err() {
                break;
            }
            acked.append(&mut pending);
        } else {
            let (cid, bytes) = block(&mut rng);
            match log.append(&cid, &bytes).await {
                Ok(loc) => pending.push((cid, bytes, loc)),
                Err(_) => break,
            }
        }
    }
    drop(log);
    let keep = rng.below(3);
    let mut page_rng = Rng(rng.next() | 1);
    let crashed = disk.crash(|_, _| match keep {
        0 => false,
        1 => true,
        _ => page_rng.below(2) == 0,
    });

    let (mut log, report) = PlaneLog::open(
        Rc::new(crashed.clone()),
        catalog.clone(),
        Plane::Data,
        SHARD,
        config,
    )
    .await
    .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    for (i, (cid, bytes, loc)) in acked.iter().enumerate() {
        let got = log
            .read(*loc)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: block {i}: {e}"));
        assert_eq!(
            cid_raw(&got),
            *cid,
            "seed {seed}: acknowledged block {i} changed"
        );
        assert_eq!(&got, bytes);
    }
    // Recovered blocks are real blocks of the log, at the locations they were written.
    for (cid, loc) in &report.recovered_blocks {
        assert_eq!(cid_raw(&log.read(*loc).await.unwrap()), *cid, "seed {seed}");
    }
    check_files_match_records(&crashed, &catalog, seed).await;

    // The recovered log takes new writes.
    let (cid, bytes) = block(&mut rng);
    let loc = log.append(&cid, &bytes).await.unwrap();
    log.commit().await.unwrap();
    assert_eq!(log.read(loc).await.unwrap(), bytes);
    (acked.len(), report.recovered_blocks.len())
}

#[test]
fn process_death_at_any_io_then_power_loss_keeps_acknowledged_blocks() {
    // On monoio, as in the engine: a roll seals in the background on a task of
    // the shard's runtime.
    common::block_on(process_death_at_any_io_then_power_loss_keeps_acknowledged_blocks_async());
}

async fn process_death_at_any_io_then_power_loss_keeps_acknowledged_blocks_async() {
    let (mut acked, mut recovered) = (0, 0);
    for seed in 0..1500 {
        let (a, r) = case(seed, None).await;
        acked += a;
        recovered += r;
    }
    // And every single I/O point of a few workloads, each with every kind of power loss.
    for seed in 0..12 {
        for death in 0..160 {
            let (a, r) = case(seed * 1_000_003, Some(death)).await;
            acked += a;
            recovered += r;
        }
    }
    assert!(acked > 2_000, "cases acknowledged {acked} blocks");
    assert!(
        recovered > 500,
        "cases recovered {recovered} blocks from open segments"
    );
}
