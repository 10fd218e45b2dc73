//! fiber::sync: Barrier tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use fiber::sync::Barrier;
use support::{fibers, mixed, scale, threads, watchdog};

#[test]
fn one_leader_per_generation() {
    watchdog(30, || {
        let rounds = scale(2_000, 500);
        let b = Barrier::new(4);
        let leaders = AtomicUsize::new(0);
        let phase = AtomicUsize::new(0);
        threads(4, |_| {
            for r in 0..rounds {
                assert!(phase.load(Ordering::SeqCst) >= r * 4);
                phase.fetch_add(1, Ordering::SeqCst);
                if b.wait().is_leader() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        assert_eq!(leaders.load(Ordering::Relaxed), rounds);
        assert_eq!(phase.load(Ordering::SeqCst), rounds * 4);
    });
}

#[test]
fn barrier_of_one_and_zero() {
    assert!(Barrier::new(1).wait().is_leader());
    assert!(Barrier::new(0).wait().is_leader());
}

#[test]
fn thousand_fibers_on_one_barrier() {
    watchdog(60, || {
        let rounds = scale(20, 5);
        let b = Barrier::new(1_000);
        let leaders = AtomicUsize::new(0);
        fibers(2, 1_000, |_| {
            for _ in 0..rounds {
                if b.wait().is_leader() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        assert_eq!(leaders.load(Ordering::Relaxed), rounds);
    });
}

#[test]
fn fibers_and_threads_on_one_barrier() {
    watchdog(60, || {
        let rounds = scale(200, 50);
        let b = Barrier::new(20);
        let leaders = AtomicUsize::new(0);
        mixed(16, 4, |_| {
            for _ in 0..rounds {
                if b.wait().is_leader() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        assert_eq!(leaders.load(Ordering::Relaxed), rounds);
    });
}

/// A waiter unwound by runtime shutdown must not stay counted: before the fix, the next party to
/// arrive at a `Barrier::new(2)` found the count full and passed alone as leader.
#[test]
fn runtime_shutdown_withdraws_an_unwound_waiters_arrival() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let b = Arc::new(Barrier::new(2));
        let rt = one_worker_runtime();
        let b1 = b.clone();
        spawn_parked(&rt, move || {
            b1.wait();
            unreachable!("nobody else arrives before shutdown");
        });
        drop(rt);
        let passed = Arc::new(AtomicBool::new(false));
        let (b2, p2) = (b.clone(), passed.clone());
        let first = std::thread::spawn(move || {
            let leader = b2.wait().is_leader();
            p2.store(true, Ordering::SeqCst);
            leader
        });
        // The barrier needs two live parties: alone, the first must still be waiting.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !passed.load(Ordering::SeqCst),
            "a party passed a barrier of 2 alone: the unwound waiter was still counted"
        );
        let second = b.wait().is_leader();
        let first = first.join().unwrap();
        assert!(first ^ second, "exactly one leader: {first} {second}");
    });
}
