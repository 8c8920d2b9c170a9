//! Retry delays for shipping: capped exponential backoff with full jitter. A failed
//! upload is retried forever (a target that is down costs local disk, never data), so
//! the delay must stop growing at a cap, and many segments failing at once must not
//! retry in lockstep: each delay is drawn uniformly from `[0, min(cap, base · 2^n))`.

use std::time::Duration;

/// The delay schedule of one segment (or one target).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// `base` after the first failure (before jitter), doubling up to `cap`. `seed`
    /// varies the jitter between instances (any value; zero is replaced).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap: cap.max(base),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        // xorshift64: jitter needs no cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 { 0 } else { self.rng % nanos })
    }

    /// The upper bound of the delay after `failures` earlier failures.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts again from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_under_their_ceiling() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(60);
        let mut b = Backoff::new(base, cap, 42);
        let mut prev_ceiling = Duration::ZERO;
        for n in 0..200u32 {
            let ceiling = b.ceiling(n);
            assert!(ceiling >= prev_ceiling && ceiling <= cap);
            let d = b.next_delay();
            assert!(d < ceiling, "failure {n}: {d:?} not below {ceiling:?}");
            prev_ceiling = ceiling;
        }
        assert_eq!(b.ceiling(0), base);
        assert_eq!(b.ceiling(3), base * 8);
        assert_eq!(b.ceiling(200), cap);
        assert_eq!(b.failures(), 200);
        b.reset();
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn jitter_spreads_delays_and_differs_between_seeds() {
        let cap = Duration::from_secs(10);
        let draws = |seed| {
            let mut b = Backoff::new(cap, cap, seed);
            (0..1000).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let a = draws(1);
        assert_ne!(a, draws(2));
        // Uniform on [0, 10 s): about a tenth of the draws in each tenth of the range.
        for tenth in 0..10u32 {
            let lo = cap * tenth / 10;
            let hi = cap * (tenth + 1) / 10;
            let n = a.iter().filter(|d| **d >= lo && **d < hi).count();
            assert!((50..=150).contains(&n), "tenth {tenth}: {n} of 1000");
        }
    }
}
