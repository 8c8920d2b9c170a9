//! Helpers for the tests and benchmarks of the engine and of the crates above it, behind
//! the `testing` feature so a production build carries none of them.

/// `n` deterministic pseudo-random bytes (xorshift64 from `seed`): no chunk repeats
/// within a body or across seeds, so deduplication cannot hide a write.
pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
