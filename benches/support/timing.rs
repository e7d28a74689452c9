//! Timing shared by the benchmarks that compare two costs in one run.

use std::time::{Duration, Instant};

/// Median over `rounds` of the mean time per call of `iters` calls of `f`.
pub(crate) fn median_per_call(rounds: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    v.sort();
    v[rounds / 2]
}
