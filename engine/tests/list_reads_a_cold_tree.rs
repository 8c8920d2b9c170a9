//! LIST on a shard whose caches cannot hold the bucket: every page is read from the
//! segments (nodes with read-ahead, manifests many at a time), while other pages and
//! writes run at the same time. Every page must equal the one computed from a model
//! (BTreeMap of key → size), whatever was cached or read ahead.

mod common;

use common::{Rng, block_on, body_of, open_shard};
use engine::catalog::MemoryCatalog;
use engine::io::sim::SimDisk;
use engine::{ListRequest, ListResponse, PutOptions, ShardConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Caches far smaller than the tree (a few dozen nodes, a few dozen blocks).
fn tiny_caches() -> ShardConfig {
    ShardConfig {
        seal_bytes: 1 << 20,
        chunk_bytes: 4096,
        node_cache_bytes: 16 << 10,
        block_cache_bytes: 64 << 10,
        ..ShardConfig::default()
    }
}

fn key(i: u64) -> String {
    // Directory-like keys so delimiters produce common prefixes.
    format!("d{:02}/f{:05}", i % 37, i)
}

/// The page S3 semantics give for `req` over `model`.
fn expected(model: &BTreeMap<String, u64>, req: &ListRequest) -> (Vec<(String, u64)>, Vec<String>) {
    let mut objects = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut n = 0;
    for (k, size) in model.range(req.prefix.clone()..) {
        if !k.starts_with(&req.prefix) {
            break;
        }
        if req.start_after.as_ref().is_some_and(|a| k <= a) {
            continue;
        }
        let rest = &k[req.prefix.len()..];
        let cp = req.delimiter.as_ref().and_then(|d| {
            rest.find(d.as_str())
                .map(|at| format!("{}{}", req.prefix, &rest[..at + d.len()]))
        });
        match cp {
            Some(p) if prefixes.last() == Some(&p) => continue,
            Some(p) if req.start_after.as_ref().is_some_and(|a| a.starts_with(&p)) => continue,
            Some(p) => {
                if n == req.max_keys {
                    break;
                }
                prefixes.push(p);
                n += 1;
            }
            None => {
                if n == req.max_keys {
                    break;
                }
                objects.push((k.clone(), *size));
                n += 1;
            }
        }
    }
    (objects, prefixes)
}

fn got(page: &ListResponse) -> (Vec<(String, u64)>, Vec<String>) {
    (
        page.objects
            .iter()
            .map(|o| (o.key.clone(), o.size))
            .collect(),
        page.common_prefixes.clone(),
    )
}

fn random_request(rng: &mut Rng, model: &BTreeMap<String, u64>) -> ListRequest {
    let start_after = match rng.below(3) {
        0 => None,
        _ => Some(key(rng.below(model.len() as u64 + 50))),
    };
    ListRequest {
        prefix: match rng.below(3) {
            0 => format!("d{:02}/", rng.below(37)),
            1 => "d1".into(),
            _ => String::new(),
        },
        delimiter: (rng.below(3) == 0).then(|| "/".into()),
        start_after,
        max_keys: [1, 7, 100, 1000][rng.below(4) as usize],
    }
}

#[test]
fn pages_from_a_cold_tree_match_the_model_while_writes_go_on() {
    block_on(async {
        let disk = SimDisk::new();
        let catalog = Arc::new(MemoryCatalog::new());
        let shard = open_shard(&disk, &catalog, tiny_caches()).await;
        shard.create_bucket("cold").await.unwrap();
        let mut model = BTreeMap::new();
        let mut rng = Rng::seeded(7);
        const KEYS: u64 = 3000;
        for batch in 0..KEYS / 100 {
            let puts: Vec<_> = (batch * 100..(batch + 1) * 100)
                .map(|i| {
                    let size = 1 + rng.below(300) as usize;
                    model.insert(key(i), size as u64);
                    let shard = shard.clone();
                    monoio::spawn(async move {
                        let body = vec![i as u8; size];
                        shard
                            .put_object("cold", &key(i), PutOptions::default(), body_of(&body))
                            .await
                    })
                })
                .collect();
            for p in puts {
                p.await.expect("put");
            }
        }
        shard.close().await.expect("close");

        // Reopened: nothing of the tree or the manifests is cached.
        let shard = open_shard(&disk, &catalog, tiny_caches()).await;
        for round in 0..40 {
            // Eight pages at once, and a write that changes the tree but no page's answer
            // (an existing key rewritten with a body of the same size).
            let reqs: Vec<ListRequest> = (0..8).map(|_| random_request(&mut rng, &model)).collect();
            let pages: Vec<_> = reqs
                .iter()
                .cloned()
                .map(|req| {
                    let shard = shard.clone();
                    monoio::spawn(async move { shard.list_objects("cold", req).await })
                })
                .collect();
            let writer = {
                let shard = shard.clone();
                let i = rng.below(KEYS);
                let size = model[&key(i)] as usize;
                monoio::spawn(async move {
                    let body = vec![round as u8; size];
                    shard
                        .put_object("cold", &key(i), PutOptions::default(), body_of(&body))
                        .await
                })
            };
            for (req, page) in reqs.iter().zip(pages) {
                let page = page.await.expect("list");
                let want = expected(&model, req);
                assert_eq!(got(&page), want, "page for {req:?}");
            }
            writer.await.expect("put during lists");
        }
        let m = shard.metrics();
        assert!(
            m.block_cache_misses
                .load(std::sync::atomic::Ordering::Relaxed)
                > 1000,
            "the pages were read from the segments, not served from cache"
        );
    });
}
