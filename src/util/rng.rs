//! One fast, non-cryptographic random number generator for the places that need a cheap spread:
//! which worker a thief visits first, which `select!` arm is tried first, the jitter of a wait
//! queue's fairness interval.
use std::cell::Cell;

/// Marsaglia's xorshift64 in a `Cell`: one multiply-free step per number, never zero.
#[derive(Debug)]
pub(crate) struct FastRng(Cell<u64>);

impl FastRng {
    /// A generator started from `seed` (0 is replaced, xorshift would stay at 0 forever).
    pub(crate) const fn new(seed: u64) -> FastRng {
        FastRng(Cell::new(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        }))
    }

    /// The next number.
    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }

    /// A number in `0..n`; `n` must not be 0.
    #[inline]
    pub(crate) fn below(&self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::FastRng;

    #[test]
    fn spreads_over_the_whole_range_and_never_sticks_at_zero() {
        let rng = FastRng::new(0);
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            seen[rng.below(7)] += 1;
        }
        // Each of 7 buckets expects 1,000; xorshift64 lands well within ±30 %.
        assert!(seen.iter().all(|&n| (700..1300).contains(&n)), "{seen:?}");
    }
}
