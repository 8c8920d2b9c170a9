//! MST hot paths on a 1,000,000-key tree with every node cached:
//! - `commit_one_new_key`: insert one new key and hash/write the changed path (the work
//!   one PUT adds to a commit batch);
//! - `commit_one_update`: overwrite a random existing key's value and commit;
//! - `get_cached`: a point lookup (a working set of 4,096 random keys);
//! - `list_1000`: one LIST page of 1,000 keys from a random start.
//!
//! The node cache (2 GiB) holds the whole live tree, and commits drop replaced nodes from
//! it, so no node is ever missing: blocks go to a counting sink, as they would go to a
//! segment buffer. Only insert + commit are timed.

mod fixtures;

use criterion::{Criterion, criterion_group, criterion_main};
use engine::mst::{ListQuery, Lister};
use fixtures::{CountingSink, Rng, bench_key, bench_value, build_tree};
use std::hint::black_box;
use std::time::{Duration, Instant};

// The server binary uses mimalloc too: glibc malloc costs ~30% more here (fragmentation).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TREE_KEYS: u64 = 1_000_000;

fn mst(c: &mut Criterion) {
    let (mut tree, mut nodes) = build_tree(TREE_KEYS);
    eprintln!(
        "tree: {TREE_KEYS} keys, root height {}, cached nodes {}",
        tree.height(),
        nodes.cache().len()
    );
    let mut g = c.benchmark_group("mst_1m");
    let mut next_new = TREE_KEYS;
    g.bench_function("commit_one_new_key", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                next_new += 1;
                let key = bench_key(next_new);
                let mut sink = CountingSink::default();
                let start = Instant::now();
                tree.insert(key.as_bytes(), bench_value(next_new), &mut nodes)
                    .unwrap();
                black_box(tree.commit(&mut nodes, &mut sink));
                spent += start.elapsed();
            }
            spent
        })
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    g.bench_function("commit_one_update", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let key = bench_key(rng.next_u64() % TREE_KEYS);
                let value = bench_value(rng.next_u64());
                let mut sink = CountingSink::default();
                let start = Instant::now();
                tree.insert(key.as_bytes(), value, &mut nodes).unwrap();
                black_box(tree.commit(&mut nodes, &mut sink));
                spent += start.elapsed();
            }
            spent
        })
    });
    let keys: Vec<String> = (0..4096)
        .map(|_| bench_key(rng.next_u64() % TREE_KEYS))
        .collect();
    let mut k = 0;
    g.bench_function("get_cached", |b| {
        b.iter(|| {
            k = (k + 1) % keys.len();
            black_box(tree.get(keys[k].as_bytes(), &mut nodes).unwrap())
        })
    });
    g.bench_function("list_1000", |b| {
        b.iter(|| {
            k = (k + 1) % keys.len();
            let q = ListQuery {
                start_after: Some(keys[k].as_bytes().to_vec()),
                max_keys: 1000,
                ..ListQuery::default()
            };
            black_box(Lister::new(&tree, q).run(&mut nodes).unwrap().items.len())
        })
    });
    let (hits, misses) = nodes.cache().stats();
    eprintln!(
        "node cache: {} nodes, {hits} hits, {misses} misses",
        nodes.cache().len()
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = mst
}
criterion_main!(benches);
