//! Body hashing throughput: the chunker (1 MiB chunks, chunk SHA-256 + whole-body MD5 in
//! one pass) next to raw MD5, raw SHA-256 and both back to back on the same bytes. The
//! target is chunker ≥ 90% of `md5_then_sha256` (the unavoidable hashing work).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::chunker::{Chunker, DEFAULT_CHUNK_BYTES};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::hint::black_box;

const BODY_BYTES: usize = 64 << 20;
/// Network-sized pieces, as a body arrives from a socket.
const PIECE_BYTES: usize = 64 << 10;

fn chunk_body(body: &[u8], whole_sha256: bool) -> usize {
    let mut c = Chunker::new(DEFAULT_CHUNK_BYTES, whole_sha256);
    let mut n = 0;
    for mut piece in body.chunks(PIECE_BYTES) {
        while !piece.is_empty() {
            piece = &piece[c.push(piece)..];
            if let Some(chunk) = c.take_chunk() {
                n += 1;
                c.recycle(chunk.data);
            }
        }
    }
    let b = c.finish();
    n + usize::from(b.last_chunk.is_some()) + usize::from(b.md5[0])
}

fn hashing(c: &mut Criterion) {
    let body: Vec<u8> = (0..BODY_BYTES)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9) as u8)
        .collect();
    let mut g = c.benchmark_group("hash_64MiB");
    g.throughput(Throughput::Bytes(BODY_BYTES as u64));
    g.bench_function("md5", |b| b.iter(|| black_box(Md5::digest(&body))));
    g.bench_function("sha256", |b| b.iter(|| black_box(Sha256::digest(&body))));
    g.bench_function("md5_then_sha256", |b| {
        b.iter(|| black_box((Md5::digest(&body), Sha256::digest(&body))))
    });
    g.bench_function("chunker", |b| {
        b.iter(|| black_box(chunk_body(&body, false)))
    });
    g.bench_function("chunker_with_whole_sha256", |b| {
        b.iter(|| black_box(chunk_body(&body, true)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = hashing
}
criterion_main!(benches);
