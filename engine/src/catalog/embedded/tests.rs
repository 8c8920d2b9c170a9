//! The catalog thread: who runs the requests, how writes share commits, and that a
//! failing write leaves its neighbours alone. Each test holds the thread while it
//! queues requests, so what lands in one round does not depend on timing.

use super::*;
use crate::block::cid_dag_cbor;
use crate::segment::Plane;
use std::sync::mpsc;

/// Runs `f` on a monoio runtime, as a shard thread would.
fn on_monoio<F: Future>(f: F) -> F::Output {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .expect("monoio runtime");
    rt.block_on(f)
}

/// Holds the catalog thread until the returned sender is dropped; returns once the
/// thread is held, with the name of the thread that runs the hold.
fn hold(c: &EmbeddedCatalog) -> (String, mpsc::Sender<()>) {
    let (release, held) = mpsc::channel::<()>();
    let (name_tx, name_rx) = mpsc::channel();
    c.run_on_thread(move || {
        let name = std::thread::current().name().map(str::to_owned);
        name_tx.send(name.unwrap_or_default()).expect("test waits");
        // Returns when the test drops `release`.
        let _ = held.recv();
    });
    (name_rx.recv().expect("thread runs the hold"), release)
}

fn segment(seq: u64) -> SegmentRecord {
    SegmentRecord {
        id: SegmentId {
            plane: Plane::Data,
            shard: 3,
            seq,
        },
        state: SegmentState::Creating,
        size_bytes: 0,
        sha256: None,
        location: None,
        created_ms: 1,
        updated_ms: 1,
    }
}

fn head(bucket: &str, seq: u64) -> HeadCheckpoint {
    HeadCheckpoint {
        bucket: bucket.to_owned(),
        commit: cid_dag_cbor(&seq.to_be_bytes()),
        seq,
        segment_seq: 0,
        offset: seq,
    }
}

#[test]
fn calls_from_a_monoio_thread_are_run_by_the_catalog_thread_in_one_commit() {
    const WRITES: u64 = 32;
    let dir = tempfile::tempdir().expect("dir");
    let c = EmbeddedCatalog::open(&dir.path().join("c.redb")).expect("open");
    on_monoio(async {
        let before = c.stats();
        let (name, release) = hold(&c);
        assert_eq!(name, THREAD_NAME, "requests run on the catalog thread");
        assert_ne!(
            std::thread::current().name(),
            Some(THREAD_NAME),
            "the caller is another thread"
        );
        // Sent at the call: all queue behind the hold.
        let pending: Vec<_> = (0..WRITES).map(|s| c.create_segment(segment(s))).collect();
        drop(release);
        for p in pending {
            p.await.expect("create");
        }
        let after = c.stats();
        assert_eq!(after.writes - before.writes, WRITES, "every write answered");
        assert_eq!(
            after.commits - before.commits,
            1,
            "writes queued together share one commit"
        );
        assert_eq!(c.segments().await.expect("list").len(), WRITES as usize);
    });
}

#[test]
fn a_failing_write_in_a_group_does_not_fail_the_others() {
    use SegmentState::*;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.redb");
    let c = EmbeddedCatalog::open(&path).expect("open");
    let up = || SegmentUpdate {
        now_ms: 2,
        ..Default::default()
    };
    on_monoio(async {
        let b = BucketRecord {
            name: "b".into(),
            shard: 0,
            created_ms: 1,
        };
        c.create_bucket(b.clone()).await.expect("bucket");
        let before = c.stats();
        // Writes b's head at 5, then meets a missing bucket: none of it may stay.
        let partial_heads = [head("b", 5), head("missing", 1)];
        let later_heads = [head("b", 2)];
        let (_, release) = hold(&c);
        let partial = c.checkpoint_heads(&partial_heads);
        let first = c.create_segment(segment(1));
        let conflict = c.transition_segment(segment(1).id, Open, Sealed, up());
        let second = c.create_segment(segment(2));
        let moved = c.transition_segment(segment(1).id, Creating, Open, up());
        let checkpoint = c.checkpoint_heads(&later_heads);
        let duplicate = c.create_bucket(b);
        drop(release);

        assert!(matches!(partial.await, Err(CatalogError::NotFound(_))));
        first.await.expect("a write before a failing one commits");
        assert!(matches!(conflict.await, Err(CatalogError::Conflict { .. })));
        second.await.expect("a write after a failing one commits");
        assert_eq!(moved.await.expect("moved").state, Open);
        checkpoint.await.expect("checkpoint");
        assert!(matches!(
            duplicate.await,
            Err(CatalogError::AlreadyExists(_))
        ));

        let after = c.stats();
        assert_eq!(after.writes - before.writes, 7);
        // [first] | conflict alone, aborted | [second, moved, checkpoint] | duplicate
        // alone, aborted; the failing checkpoint first, alone, aborted.
        assert_eq!(after.commits - before.commits, 2, "failures cost no commit");
    });
    drop(c);
    let c = EmbeddedCatalog::open(&path).expect("reopen after the thread stopped");
    on_monoio(async {
        let heads = c.heads().await.expect("heads");
        let seqs: Vec<_> = heads.iter().map(|h| (h.bucket.as_str(), h.seq)).collect();
        assert_eq!(
            seqs,
            [("b", 2)],
            "the failed checkpoint left nothing behind"
        );
        let states: Vec<_> = c
            .segments()
            .await
            .expect("segments")
            .into_iter()
            .map(|s| (s.id.seq, s.state))
            .collect();
        assert_eq!(
            states,
            [(1, Open), (2, Creating)],
            "committed writes durable"
        );
    });
}

#[test]
fn a_read_sees_every_write_sent_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let c = EmbeddedCatalog::open(&dir.path().join("c.redb")).expect("open");
    on_monoio(async {
        let (_, release) = hold(&c);
        let before = c.segment(segment(7).id);
        let write = c.create_segment(segment(7));
        let after = c.segment(segment(7).id);
        drop(release);
        assert_eq!(before.await.expect("read"), None);
        write.await.expect("write");
        assert_eq!(after.await.expect("read"), Some(segment(7)));
    });
}

#[test]
fn dropping_the_handle_answers_what_was_queued_and_releases_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.redb");
    let c = EmbeddedCatalog::open(&path).expect("open");
    let (_, release) = hold(&c);
    // The trait's futures borrow the handle; the inner one does not, so it can
    // outlive the drop.
    let queued = c.write(|txn| tables::create_segment(txn, &segment(9)));
    drop(release);
    drop(c);
    on_monoio(async { queued.await.expect("answered before the thread stopped") });
    let c = EmbeddedCatalog::open(&path).expect("the lock is released");
    let rec = on_monoio(c.segment(segment(9).id)).expect("read");
    assert_eq!(rec, Some(segment(9)));
}
