//! The conformance suite every [`Catalog`] implementation must pass. Each check takes a
//! fresh, empty catalog and panics (with a message naming the rule) when the behaviour
//! is wrong; [`run_all`] runs them all. The embedded catalog runs it in
//! `tests/catalog_conformance.rs`; a PostgreSQL catalog runs the same function.

use super::{
    AccessKey, BucketRecord, Catalog, CatalogError, HeadCheckpoint, PartRecord, SegmentRecord,
    SegmentState, SegmentUpdate, UploadCursor, UploadRecord,
};
use crate::block::cid_dag_cbor;
use crate::segment::{Plane, SegmentId};
use std::future::Future;

/// Runs every check, each on a fresh catalog from `fresh`.
pub async fn run_all<C, F, Fut>(mut fresh: F)
where
    C: Catalog,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    buckets(&fresh().await).await;
    heads(&fresh().await).await;
    segment_lifecycle(&fresh().await).await;
    multipart(&fresh().await).await;
    access_keys(&fresh().await).await;
}

fn bucket(name: &str, shard: u32) -> BucketRecord {
    BucketRecord {
        name: name.into(),
        shard,
        created_ms: 1_000 + u64::from(shard),
    }
}

pub async fn buckets(c: &impl Catalog) {
    c.create_bucket(bucket("photos", 1)).await.expect("create");
    c.create_bucket(bucket("docs", 0))
        .await
        .expect("create second");
    let again = c.create_bucket(bucket("photos", 0)).await;
    assert!(
        matches!(again, Err(CatalogError::AlreadyExists(_))),
        "duplicate bucket: {again:?}"
    );
    assert_eq!(
        c.bucket("photos").await.expect("get"),
        Some(bucket("photos", 1)),
        "placement kept"
    );
    assert_eq!(c.bucket("nope").await.expect("get"), None);
    let names: Vec<String> = c
        .buckets()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["docs", "photos"], "buckets listed by name");
    c.delete_bucket("docs").await.expect("delete");
    let gone = c.delete_bucket("docs").await;
    assert!(
        matches!(gone, Err(CatalogError::NotFound(_))),
        "delete twice: {gone:?}"
    );
    assert_eq!(c.buckets().await.expect("list").len(), 1);
}

fn head(bucket: &str, seq: u64) -> HeadCheckpoint {
    HeadCheckpoint {
        bucket: bucket.into(),
        commit: cid_dag_cbor(&seq.to_be_bytes()),
        seq,
        segment_seq: seq / 10,
        offset: seq * 100,
    }
}

pub async fn heads(c: &impl Catalog) {
    c.create_bucket(bucket("a", 0)).await.expect("create");
    c.create_bucket(bucket("b", 1)).await.expect("create");
    c.checkpoint_heads(&[head("a", 5), head("b", 2)])
        .await
        .expect("checkpoint");
    c.checkpoint_heads(&[head("a", 7), head("b", 1)])
        .await
        .expect("checkpoint");
    assert_eq!(
        c.heads().await.expect("heads"),
        [head("a", 7), head("b", 2)],
        "heads never go back"
    );
    let missing = c.checkpoint_heads(&[head("a", 9), head("zz", 1)]).await;
    assert!(
        matches!(missing, Err(CatalogError::NotFound(_))),
        "unknown bucket: {missing:?}"
    );
    assert_eq!(
        c.heads().await.expect("heads")[0],
        head("a", 7),
        "a failed checkpoint changes nothing"
    );
    c.delete_bucket("a").await.expect("delete");
    assert_eq!(
        c.heads().await.expect("heads"),
        [head("b", 2)],
        "deleting a bucket drops its head"
    );
}

fn segment(plane: Plane, shard: u32, seq: u64) -> SegmentRecord {
    SegmentRecord {
        id: SegmentId { plane, shard, seq },
        state: SegmentState::Creating,
        size_bytes: 0,
        sha256: None,
        location: None,
        created_ms: seq,
        updated_ms: seq,
    }
}

pub async fn segment_lifecycle(c: &impl Catalog) {
    let id = segments_are_listed_in_order(c).await;
    refused_transitions(c, id).await;
    full_lifecycle(c, id).await;
    let unknown = SegmentId {
        plane: Plane::Meta,
        shard: 9,
        seq: 9,
    };
    assert!(matches!(
        c.transition_segment(unknown, SegmentState::Open, SegmentState::Sealed, update(1))
            .await,
        Err(CatalogError::NotFound(_))
    ));
    // An unfinished creation can be dropped (recovery of a crash before the file existed).
    c.remove_segment(SegmentId {
        plane: Plane::Data,
        shard: 0,
        seq: 2,
    })
    .await
    .expect("drop creating");
}

fn update(now_ms: u64) -> SegmentUpdate {
    SegmentUpdate {
        now_ms,
        ..SegmentUpdate::default()
    }
}

/// Creates four segments (one twice) and checks their order; returns the one the
/// lifecycle checks walk.
async fn segments_are_listed_in_order(c: &impl Catalog) -> SegmentId {
    let s = segment(Plane::Data, 0, 3);
    let id = s.id;
    c.create_segment(s.clone()).await.expect("create");
    assert!(matches!(
        c.create_segment(s.clone()).await,
        Err(CatalogError::AlreadyExists(_))
    ));
    c.create_segment(segment(Plane::Meta, 0, 1))
        .await
        .expect("create");
    c.create_segment(segment(Plane::Data, 1, 1))
        .await
        .expect("create");
    c.create_segment(segment(Plane::Data, 0, 2))
        .await
        .expect("create");
    let order: Vec<SegmentId> = c
        .segments()
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    let want = [
        SegmentId {
            plane: Plane::Data,
            shard: 0,
            seq: 2,
        },
        SegmentId {
            plane: Plane::Data,
            shard: 0,
            seq: 3,
        },
        SegmentId {
            plane: Plane::Data,
            shard: 1,
            seq: 1,
        },
        SegmentId {
            plane: Plane::Meta,
            shard: 0,
            seq: 1,
        },
    ];
    assert_eq!(order, want, "segments listed by (plane, shard, seq)");
    id
}

/// Opens `id`, then checks the moves the lifecycle refuses.
async fn refused_transitions(c: &impl Catalog, id: SegmentId) {
    use SegmentState::*;
    let up = update;
    c.transition_segment(id, Creating, Open, up(10))
        .await
        .expect("open");
    let stale = c.transition_segment(id, Creating, Open, up(11)).await;
    assert!(
        matches!(stale, Err(CatalogError::Conflict { found: Open, .. })),
        "CAS on state: {stale:?}"
    );
    let skip = c.transition_segment(id, Open, Shipped, up(11)).await;
    assert!(
        matches!(skip, Err(CatalogError::InvalidTransition { .. })),
        "no skipping: {skip:?}"
    );
    assert!(
        matches!(
            c.remove_segment(id).await,
            Err(CatalogError::InvalidTransition { .. })
        ),
        "an open segment's record cannot be dropped"
    );
}

/// Walks the open segment `id` to retired and drops its record.
async fn full_lifecycle(c: &impl Catalog, id: SegmentId) {
    use SegmentState::*;
    let up = update;
    let sealed = SegmentUpdate {
        size_bytes: Some(4096),
        sha256: Some([7; 32]),
        now_ms: 12,
        location: None,
    };
    let r = c
        .transition_segment(id, Open, Sealed, sealed)
        .await
        .expect("seal");
    assert_eq!(
        (r.state, r.size_bytes, r.sha256, r.updated_ms),
        (Sealed, 4096, Some([7; 32]), 12)
    );
    let shipped = SegmentUpdate {
        location: Some("file:///cold/x.car".into()),
        now_ms: 13,
        ..Default::default()
    };
    c.transition_segment(id, Sealed, Shipped, shipped)
        .await
        .expect("ship");
    c.transition_segment(id, Shipped, Retiring, up(14))
        .await
        .expect("retire intent");
    let r = c
        .transition_segment(id, Retiring, Retired, up(15))
        .await
        .expect("retired");
    assert_eq!(
        r.location.as_deref(),
        Some("file:///cold/x.car"),
        "location survives retirement"
    );
    assert_eq!(r.size_bytes, 4096, "fields not in an update are kept");
    assert_eq!(c.segment(id).await.expect("get"), Some(r));
    c.remove_segment(id).await.expect("drop retired record");
    assert_eq!(c.segment(id).await.expect("get"), None);
}

fn upload(id: &str, bucket: &str, key: &str, created_ms: u64) -> UploadRecord {
    UploadRecord {
        upload_id: id.into(),
        bucket: bucket.into(),
        key: key.into(),
        created_ms,
        template: format!("template of {id}").into_bytes(),
    }
}

fn part(id: &str, n: u32, size_bytes: u64) -> PartRecord {
    PartRecord {
        upload_id: id.into(),
        part_number: n,
        size_bytes,
        md5: [n as u8; 16],
        chunks: vec![n as u8; 3],
        created_ms: u64::from(n),
    }
}

pub async fn multipart(c: &impl Catalog) {
    uploads_are_listed_in_order(c).await;
    parts_are_kept_by_number(c).await;
    removing_an_upload_drops_its_parts(c).await;
}

async fn uploads_are_listed_in_order(c: &impl Catalog) {
    c.create_upload(upload("u2", "b", "k2", 5))
        .await
        .expect("create");
    c.create_upload(upload("u1", "b", "k1", 9))
        .await
        .expect("create");
    c.create_upload(upload("u3", "b", "k1", 7))
        .await
        .expect("create");
    c.create_upload(upload("u4", "other", "k0", 1))
        .await
        .expect("create");
    assert!(matches!(
        c.create_upload(upload("u1", "b", "x", 1)).await,
        Err(CatalogError::AlreadyExists(_))
    ));
    let ids: Vec<String> = c
        .uploads("b")
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(
        ids,
        ["u3", "u1", "u2"],
        "uploads by key, then initiation time"
    );
    assert_eq!(
        c.upload("u2").await.expect("get"),
        Some(upload("u2", "b", "k2", 5))
    );
    let places = |from: UploadCursor, limit| async move {
        let got = c.upload_places("b", &from, limit).await.expect("places");
        got.into_iter().map(|p| p.upload_id).collect::<Vec<_>>()
    };
    assert_eq!(
        places(UploadCursor::default(), 10).await,
        ["u3", "u1", "u2"]
    );
    assert_eq!(places(UploadCursor::default(), 2).await, ["u3", "u1"]);
    let u3 = UploadCursor::of(&upload("u3", "b", "k1", 7));
    assert_eq!(
        places(u3.clone(), 10).await,
        ["u3", "u1", "u2"],
        "from a place, inclusive"
    );
    assert_eq!(places(u3.next(), 10).await, ["u1", "u2"], "after a place");
    assert_eq!(places(UploadCursor::at_key("k1\0"), 10).await, ["u2"]);
    assert!(
        places(UploadCursor::at_key("k3"), 10).await.is_empty(),
        "past the bucket's last key: not into the next bucket"
    );
}

async fn parts_are_kept_by_number(c: &impl Catalog) {
    c.put_part(part("u1", 2, 20)).await.expect("part");
    c.put_part(part("u1", 10, 100)).await.expect("part");
    c.put_part(part("u1", 1, 10)).await.expect("part");
    c.put_part(part("u1", 2, 22))
        .await
        .expect("part again replaces");
    c.put_part(part("u3", 1, 1))
        .await
        .expect("part of another upload");
    let parts = c.parts("u1").await.expect("parts");
    let got: Vec<(u32, u64)> = parts
        .iter()
        .map(|p| (p.part_number, p.size_bytes))
        .collect();
    assert_eq!(
        got,
        [(1, 10), (2, 22), (10, 100)],
        "parts by number, re-upload replaces"
    );
    assert_eq!(parts[0], part("u1", 1, 10));
    assert!(matches!(
        c.put_part(part("nope", 1, 1)).await,
        Err(CatalogError::NotFound(_))
    ));
}

async fn removing_an_upload_drops_its_parts(c: &impl Catalog) {
    c.remove_upload("u1").await.expect("remove");
    assert_eq!(c.upload("u1").await.expect("get"), None);
    assert!(
        c.parts("u1").await.expect("parts").is_empty(),
        "parts go with their upload"
    );
    assert_eq!(
        c.parts("u3").await.expect("parts").len(),
        1,
        "other uploads keep theirs"
    );
    let ids: Vec<String> = c
        .uploads("b")
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(ids, ["u3", "u2"]);
    assert!(matches!(
        c.remove_upload("u1").await,
        Err(CatalogError::NotFound(_))
    ));
}

pub async fn access_keys(c: &impl Catalog) {
    let k = |id: &str, secret: &str| AccessKey {
        access_key_id: id.into(),
        secret_key: secret.into(),
        created_ms: 3,
    };
    c.put_key(k("AKB", "s1")).await.expect("put");
    c.put_key(k("AKA", "s2")).await.expect("put");
    c.put_key(k("AKB", "s3")).await.expect("replace");
    assert_eq!(c.key("AKB").await.expect("get"), Some(k("AKB", "s3")));
    let ids: Vec<String> = c
        .keys()
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.access_key_id)
        .collect();
    assert_eq!(ids, ["AKA", "AKB"]);
    c.remove_key("AKA").await.expect("remove");
    assert!(matches!(
        c.remove_key("AKA").await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(c.key("AKA").await.expect("get"), None);
}
