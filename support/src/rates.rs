//! Spawn and switch rates of fibers, tokio tasks and std threads (the `stress` demo's stages).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cpu::{pin_to_cpu0, restore_affinity};

/// Nanoseconds per spawn + join of `n` trivial fibers (spawned from a fiber; all spawned, then all
/// joined). Best of `rounds`.
pub fn spawn_rate_fiber(rt: &fiber::Runtime, n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        rt.block_on(|| {
            let start = Instant::now();
            let hs: Vec<_> = (0..n).map(|i| fiber::spawn(move || i)).collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, n * (n - 1) / 2);
            start.elapsed()
        })
    }) / n as f64
}

/// As [`spawn_rate_fiber`] for tokio tasks (spawned from a task).
pub fn spawn_rate_tokio(rt: &tokio::runtime::Runtime, n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        rt.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
                start.elapsed()
            })
            .await
            .unwrap()
        })
    }) / n as f64
}

/// As [`spawn_rate_fiber`] for std threads.
pub fn spawn_rate_threads(n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        let start = Instant::now();
        let hs: Vec<_> = (0..n).map(|i| std::thread::spawn(move || i)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        start.elapsed()
    }) / n as f64
}

// ---- switch cost --------------------------------------------------------------------------------

/// Nanoseconds per switch between two std threads pinned to one CPU, handing a turn back and
/// forth with park/unpark (each handoff is one kernel context switch). total / (2 × `per_side`).
pub fn switch_threads(per_side: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        let turn = Arc::new(AtomicU64::new(0));
        let limit = 2 * per_side;
        let main = std::thread::current();
        let t2 = turn.clone();
        let partner = std::thread::spawn(move || {
            pin_to_cpu0();
            loop {
                let t = t2.load(Ordering::Acquire);
                if t >= limit {
                    return;
                }
                if t % 2 == 1 {
                    t2.store(t + 1, Ordering::Release);
                    main.unpark();
                } else {
                    std::thread::park();
                }
            }
        });
        let other = partner.thread().clone();
        let restore = pin_to_cpu0();
        let start = Instant::now();
        loop {
            let t = turn.load(Ordering::Acquire);
            if t >= limit {
                break;
            }
            if t % 2 == 0 {
                turn.store(t + 1, Ordering::Release);
                other.unpark();
            } else {
                std::thread::park();
            }
        }
        let elapsed = start.elapsed();
        partner.join().unwrap();
        restore_affinity(restore);
        elapsed
    }) / (2 * per_side) as f64
}

/// The shortest of `rounds` runs of `f`, in nanoseconds.
pub fn best_of(rounds: u32, mut f: impl FnMut() -> Duration) -> f64 {
    (0..rounds.max(1))
        .map(|_| f().as_nanos() as f64)
        .fold(f64::INFINITY, f64::min)
}
