//! ListMultipartUploads pages, read with a cursor from the catalog's index, are exactly
//! the pages of a plain model over the whole sorted list (the frontend's former
//! implementation): prefix, delimiter, key-marker, upload-id-marker and max-uploads,
//! on the in-memory and the redb catalog. Following the next markers visits every
//! upload once, in order.

mod common;

use common::block_on;
use engine::catalog::{Catalog, EmbeddedCatalog, MemoryCatalog, UploadRecord};
use engine::format::{ObjectManifest, UploadTemplate};
use engine::handle::upload_pages::list_upload_page;
use engine::{UploadListing, UploadPage};
use proptest::prelude::*;

fn record(key: &str, id: &str, created_ms: u64) -> UploadRecord {
    let template = UploadTemplate {
        manifest: ObjectManifest::new(key.into(), 0, [0; 16], created_ms, None),
        checksum: None,
    };
    UploadRecord {
        upload_id: id.into(),
        bucket: "b".into(),
        key: key.into(),
        created_ms,
        template: template.encode(),
    }
}

/// What a page shows, in a form both sides produce.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    uploads: Vec<(String, String)>,
    prefixes: Vec<String>,
    truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

fn shown(p: UploadPage) -> Shown {
    Shown {
        uploads: p
            .uploads
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect(),
        prefixes: p.prefixes,
        truncated: p.truncated,
        next_key_marker: p.next_key_marker,
        next_upload_id_marker: p.next_upload_id_marker,
    }
}

/// The model: a scan over every upload in listing order (key, created, id).
fn model(all: &[UploadRecord], q: &UploadListing) -> Shown {
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let after_markers = |u: &UploadRecord| {
        let Some(km) = q.key_marker.as_deref() else {
            return true;
        };
        match u.key.as_str().cmp(km) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                let Some(im) = q.upload_id_marker.as_deref() else {
                    return false;
                };
                let pos = |id: &str| all.iter().position(|x| x.key == km && x.upload_id == id);
                matches!((pos(&u.upload_id), pos(im)), (Some(a), Some(b)) if a > b)
            }
        }
    };
    let mut out = Shown {
        uploads: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next_key_marker: None,
        next_upload_id_marker: None,
    };
    for u in all.iter().filter(|u| u.key.starts_with(&q.prefix)) {
        if !after_markers(u) {
            continue;
        }
        let rolled = delimiter.and_then(|d| {
            let rest = &u.key[q.prefix.len()..];
            rest.find(d)
                .map(|i| u.key[..q.prefix.len() + i + d.len()].to_owned())
        });
        if let Some(p) = &rolled {
            if out.prefixes.last() == Some(p) {
                continue;
            }
            if q.key_marker.as_deref().is_some_and(|km| p.as_str() <= km) {
                continue;
            }
        }
        if out.uploads.len() + out.prefixes.len() == q.max_uploads {
            out.truncated = true;
            break;
        }
        match rolled {
            Some(p) => {
                out.next_key_marker = Some(p.clone());
                out.next_upload_id_marker = None;
                out.prefixes.push(p);
            }
            None => {
                out.next_key_marker = Some(u.key.clone());
                out.next_upload_id_marker = Some(u.upload_id.clone());
                out.uploads.push((u.key.clone(), u.upload_id.clone()));
            }
        }
    }
    if !out.truncated {
        out.next_key_marker = None;
        out.next_upload_id_marker = None;
    }
    out
}

fn sorted(mut all: Vec<UploadRecord>) -> Vec<UploadRecord> {
    all.sort_by(|a, b| {
        (&a.key, a.created_ms, &a.upload_id).cmp(&(&b.key, b.created_ms, &b.upload_id))
    });
    all
}

async fn store(c: &impl Catalog, all: &[UploadRecord]) {
    for u in all {
        c.create_upload(u.clone()).await.expect("create upload");
    }
}

/// Keys over a small alphabet, so prefixes, delimiters and markers meet often; several
/// uploads per key, some started in the same millisecond.
fn uploads() -> impl Strategy<Value = Vec<UploadRecord>> {
    let key = "[ab/é]{1,4}";
    prop::collection::vec((key, 0u64..3), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (k, t))| record(&k, &format!("{:02x}", (i * 7919) % 251), t))
            .collect()
    })
}

/// A listing, and whether its key marker should be the key of the upload its
/// upload-id marker names (so the marker names a real upload of that key).
fn listing(ids: usize) -> impl Strategy<Value = (UploadListing, bool)> {
    (
        "[ab/]{0,2}",
        prop::option::of(prop::sample::select(vec!["/", "b", "a/", ""])),
        prop::option::of("[ab/é]{0,4}"),
        prop::option::of(0..ids.max(1) + 2),
        0usize..6,
        any::<bool>(),
    )
        .prop_map(
            |(prefix, delimiter, key_marker, id, max_uploads, same_key)| {
                let q = UploadListing {
                    prefix,
                    delimiter: delimiter.map(str::to_owned),
                    key_marker,
                    // Ids of stored uploads (of any key), and some that never existed.
                    upload_id_marker: id.map(|i| format!("{:02x}", (i * 7919) % 251)),
                    max_uploads,
                };
                (q, same_key)
            },
        )
}

/// `q`, with its key marker moved to the key of the upload its id marker names when
/// `same_key` asks for it and that upload exists.
fn resolve(all: &[UploadRecord], (mut q, same_key): (UploadListing, bool)) -> UploadListing {
    let named = all
        .iter()
        .find(|u| Some(&u.upload_id) == q.upload_id_marker.as_ref());
    if let (true, Some(u)) = (same_key, named) {
        q.key_marker = Some(u.key.clone());
    }
    q
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pages_match_the_model_on_the_memory_catalog(
        all in uploads(),
        queries in prop::collection::vec(listing(40), 8),
    ) {
        block_on(async {
            let c = MemoryCatalog::default();
            store(&c, &all).await;
            let all = sorted(all);
            for q in queries {
                let q = resolve(&all, q);
                let got = shown(list_upload_page(&c, "b", &q).await.expect("page"));
                assert_eq!(got, model(&all, &q), "{q:?}");
            }
        });
    }
}

#[test]
fn pages_match_the_model_on_the_redb_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = EmbeddedCatalog::open(&dir.path().join("catalog.redb")).expect("catalog");
    let mut rng = common::Rng::seeded(11);
    let keys = [
        "a", "a/a", "a/b", "a/é/a", "ab", "b", "b/", "b/a", "é", "é/a",
    ];
    let all: Vec<UploadRecord> = (0..120)
        .map(|i| {
            let key = keys[rng.below(keys.len() as u64) as usize];
            record(key, &format!("{:02x}", (i * 7919) % 251), rng.below(3))
        })
        .collect();
    block_on(store(&c, &all));
    let elsewhere = UploadRecord {
        bucket: "c".into(),
        ..record("a", "other-bucket", 0)
    };
    block_on(c.create_upload(elsewhere)).expect("an upload of another bucket");
    let all = sorted(all);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(&listing(120), |q| {
            let q = resolve(&all, q);
            let got = block_on(list_upload_page(&c, "b", &q)).expect("page");
            prop_assert_eq!(shown(got), model(&all, &q), "{:?}", q);
            Ok(())
        })
        .expect("every page matches the model");
}

/// Follows the next markers from the first page to the last.
async fn every_page(c: &impl Catalog, q: &UploadListing) -> (Vec<(String, String)>, Vec<String>) {
    let (mut uploads, mut prefixes) = (Vec::new(), Vec::new());
    let mut q = q.clone();
    for _ in 0..10_000 {
        let page = shown(list_upload_page(c, "b", &q).await.expect("page"));
        uploads.extend(page.uploads);
        prefixes.extend(page.prefixes);
        if !page.truncated {
            return (uploads, prefixes);
        }
        q.key_marker = page.next_key_marker;
        q.upload_id_marker = page.next_upload_id_marker;
    }
    panic!("the pages never end");
}

#[test]
fn following_the_markers_lists_5000_uploads_once_each() {
    block_on(async {
        let c = MemoryCatalog::default();
        let all: Vec<UploadRecord> = (0..5_000u64)
            .map(|i| {
                record(
                    &format!("dir{}/k{:03}", i % 7, i % 300),
                    &format!("{i:04}"),
                    i % 5,
                )
            })
            .collect();
        store(&c, &all).await;
        let all = sorted(all);
        let q = UploadListing {
            max_uploads: 97,
            ..UploadListing::default()
        };
        let (uploads, prefixes) = every_page(&c, &q).await;
        let want: Vec<(String, String)> = all
            .iter()
            .map(|u| (u.key.clone(), u.upload_id.clone()))
            .collect();
        assert_eq!(uploads, want);
        assert!(prefixes.is_empty());

        let rolled = UploadListing {
            delimiter: Some("/".into()),
            max_uploads: 3,
            ..UploadListing::default()
        };
        let (uploads, prefixes) = every_page(&c, &rolled).await;
        assert!(uploads.is_empty());
        let want: Vec<String> = (0..7).map(|d| format!("dir{d}/")).collect();
        assert_eq!(prefixes, want);
    });
}

/// The cost of a page in a bucket with 100,000 open uploads, against reading them all
/// (what the frontend did before): run by hand, it prints the numbers kept in
/// ARCHITECTURE.md. `INGOT_MEASURE_DIR` puts the catalog on a fast filesystem (creating
/// 100,000 uploads is 100,000 durable transactions).
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_a_page_of_100000_uploads() {
    let base = std::env::var_os("INGOT_MEASURE_DIR").map(std::path::PathBuf::from);
    let dir = match base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let c = EmbeddedCatalog::open(&dir.path().join("catalog.redb")).expect("catalog");
    block_on(async {
        for i in 0..100_000u64 {
            let key = format!("dir{}/k{:05}", i % 100, i / 7);
            c.create_upload(record(&key, &format!("{i:06}"), i))
                .await
                .expect("create");
        }
        let queries = [
            (
                "first page of 1,000",
                UploadListing {
                    max_uploads: 1000,
                    ..Default::default()
                },
            ),
            (
                "page after a key marker",
                UploadListing {
                    max_uploads: 1000,
                    key_marker: Some("dir50/k07000".into()),
                    upload_id_marker: Some("049050".into()),
                    ..Default::default()
                },
            ),
            (
                "100 prefixes by delimiter",
                UploadListing {
                    max_uploads: 1000,
                    delimiter: Some("/".into()),
                    ..Default::default()
                },
            ),
        ];
        for (what, q) in &queries {
            let started = std::time::Instant::now();
            let page = list_upload_page(&c, "b", q).await.expect("page");
            let took = started.elapsed();
            let n = page.uploads.len() + page.prefixes.len();
            println!("{what}: {n} entries in {took:?}");
        }
        let started = std::time::Instant::now();
        let all = c.uploads("b").await.expect("all");
        println!("reading all {} uploads: {:?}", all.len(), started.elapsed());

        // One key with 10,000 uploads, and an upload-id marker in the middle of them:
        // the former scan placed the marker once per upload of that key.
        for i in 0..10_000u64 {
            c.create_upload(record("hot", &format!("h{i:05}"), i))
                .await
                .expect("create");
        }
        let q = UploadListing {
            max_uploads: 1000,
            key_marker: Some("hot".into()),
            upload_id_marker: Some("h05000".into()),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let page = list_upload_page(&c, "b", &q).await.expect("page");
        println!(
            "page after an upload-id marker of a key with 10,000 uploads: {} in {:?}",
            page.uploads.len(),
            started.elapsed()
        );
        let started = std::time::Instant::now();
        let all = sorted(c.uploads("b").await.expect("all"));
        let old = model(&all, &q);
        println!(
            "the same by reading all {} uploads and scanning them: {} in {:?}",
            all.len(),
            old.uploads.len(),
            started.elapsed()
        );
    });
}
