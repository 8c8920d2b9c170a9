//! Crash tests of one open segment on the simulated disk: thousands of seeded cases
//! append, commit and crash at random points (unsynced pages kept or dropped at random),
//! then recover. Every acknowledged frame must come back with its exact bytes, nothing
//! but a prefix of what was appended may appear, and the recovered segment keeps working.

use cid::Cid;
use engine::block::cid_raw;
use engine::io::sim::SimDisk;
use engine::io::{Disk, SegmentFile};
use engine::plane::{OpenSegment, PlaneError, car_name, recover};
use engine::segment::{Plane, SegmentId, SegmentIndex};

mod common;
use common::Rng;

fn block(rng: &mut Rng, n: usize) -> (Cid, Vec<u8>) {
    let len = match rng.below(4) {
        0 => rng.below(64),
        1 => rng.below(4096),
        _ => rng.below(9000),
    } as usize;
    let seed = rng.next();
    let bytes: Vec<u8> = (0..len)
        .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8 ^ n as u8)
        .collect();
    (cid_raw(&bytes), bytes)
}

const ID: SegmentId = SegmentId {
    plane: Plane::Data,
    shard: 7,
    seq: 42,
};

/// One seeded case; returns (appended, acknowledged, recovered) counts.
async fn case(seed: u64) -> (usize, usize, usize) {
    let mut rng = Rng::seeded(seed);
    let disk = SimDisk::new();
    let capacity = 64 * 1024 + rng.below(4) * 4096;
    let mut seg = OpenSegment::create(&disk, ID, capacity).await.unwrap();
    let mut appended: Vec<(Cid, Vec<u8>)> = Vec::new();
    let mut acked = 0;
    let ops = rng.below(40);
    if rng.below(5) == 0 {
        // A sync fails somewhere: the commit reports it and the segment refuses more.
        disk.fail_sync_after(rng.below(6));
    }
    for _ in 0..ops {
        if rng.below(3) == 0 {
            match seg.commit().await {
                Ok(end) => {
                    assert_eq!(end, seg.end());
                    acked = appended.len();
                }
                Err(PlaneError::Io(_) | PlaneError::Poisoned) => {
                    assert!(seg.is_poisoned());
                    break;
                }
                Err(e) => panic!("seed {seed}: {e}"),
            }
        } else {
            let (cid, bytes) = block(&mut rng, appended.len());
            match seg.append(&cid, &bytes) {
                Ok(_) => appended.push((cid, bytes)),
                Err(PlaneError::Full) => break,
                Err(e) => panic!("seed {seed}: {e}"),
            }
        }
    }
    // Power loss: each unsynced page reached the disk or not.
    let keep = rng.below(3);
    let mut page_rng = Rng(rng.next() | 1);
    let crashed = disk.crash(|_, _| match keep {
        0 => false,
        1 => true,
        _ => page_rng.below(2) == 0,
    });
    let file = crashed
        .open(&car_name(ID))
        .await
        .expect("created segments survive");
    let Some(rec) = recover(&file).await.unwrap() else {
        assert_eq!(acked, 0, "seed {seed}: acknowledged frames but no header");
        return (appended.len(), acked, 0);
    };
    assert_eq!(rec.id, ID);
    let n = rec.blocks.len();
    assert!(
        n >= acked,
        "seed {seed}: lost acknowledged frames ({n} < {acked})"
    );
    assert!(n <= appended.len(), "seed {seed}: invented frames");
    for (i, (cid, offset, len)) in rec.blocks.iter().enumerate() {
        assert_eq!(
            *cid, appended[i].0,
            "seed {seed}: frame {i} is not the one appended"
        );
        let got = file.read_at(*offset, *len as usize).await.unwrap();
        assert_eq!(got, appended[i].1, "seed {seed}: frame {i} bytes");
    }
    // The recovered segment takes more frames, commits and seals into a valid CAR.
    let mut seg = OpenSegment::reopen(file, &rec).await.unwrap();
    let (cid, bytes) = block(&mut rng, 10_000);
    if seg.fits(&cid, bytes.len()) {
        seg.append(&cid, &bytes).unwrap();
    }
    let index = seg.seal(&crashed).await.unwrap();
    let car = crashed.live_bytes(&car_name(ID)).unwrap();
    assert_eq!(
        SegmentIndex::from_car(&car).unwrap(),
        index,
        "seed {seed}: sealed CAR and index agree"
    );
    (appended.len(), acked, n)
}

#[test]
fn thousands_of_crashes_keep_every_acknowledged_frame() {
    // On monoio, as in the engine: a roll seals in the background on a task of
    // the shard's runtime.
    common::block_on(thousands_of_crashes_keep_every_acknowledged_frame_async());
}

async fn thousands_of_crashes_keep_every_acknowledged_frame_async() {
    let (mut appended, mut acked, mut recovered, mut beyond) = (0, 0, 0, 0);
    for seed in 0..3000 {
        let (a, k, r) = case(seed).await;
        appended += a;
        acked += k;
        recovered += r;
        beyond += usize::from(r > k);
    }
    // The cases exercise what they should: many frames, many acknowledged, and crashes
    // that both lose and keep unacknowledged frames.
    assert!(
        acked > 5_000 && appended > acked && recovered >= acked,
        "{appended} {acked} {recovered}"
    );
    assert!(
        beyond > 100,
        "unsynced pages that reached the disk were recovered in {beyond} cases"
    );
}

#[test]
fn failed_sync_poisons_the_segment_and_nothing_after_it_is_acknowledged() {
    // On monoio, as in the engine: a roll seals in the background on a task of
    // the shard's runtime.
    common::block_on(failed_sync_poisons_the_segment_and_nothing_after_it_is_acknowledged_async());
}

async fn failed_sync_poisons_the_segment_and_nothing_after_it_is_acknowledged_async() {
    let disk = SimDisk::new();
    let mut seg = OpenSegment::create(&disk, ID, 64 * 1024).await.unwrap();
    let (c1, b1) = (cid_raw(b"one"), b"one".to_vec());
    seg.append(&c1, &b1).unwrap();
    let durable = seg.commit().await.unwrap();
    disk.fail_sync_after(0);
    let (c2, b2) = (cid_raw(b"two"), b"two".to_vec());
    seg.append(&c2, &b2).unwrap();
    assert!(matches!(seg.commit().await, Err(PlaneError::Io(_))));
    assert!(seg.is_poisoned());
    assert_eq!(
        seg.durable_end(),
        durable,
        "the failed commit reports nothing durable"
    );
    assert!(matches!(seg.append(&c2, &b2), Err(PlaneError::Poisoned)));
    assert!(
        matches!(seg.commit().await, Err(PlaneError::Poisoned)),
        "no retry of a failed fsync"
    );
}
