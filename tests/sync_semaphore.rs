//! fiber::sync: Semaphore tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber::sync::Semaphore;
use support::{fibers, mixed, scale, threads, watchdog};

#[test]
fn never_exceeds_permits() {
    watchdog(30, || {
        let n = scale(10_000, 2_000);
        let s = Semaphore::new(3);
        let inside = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        let total = AtomicUsize::new(0);
        threads(8, |_| {
            for _ in 0..n {
                let _p = s.acquire();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                total.fetch_add(1, Ordering::Relaxed);
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        });
        assert!(max.load(Ordering::SeqCst) <= 3);
        assert_eq!(total.load(Ordering::Relaxed), 8 * n);
        assert_eq!(s.available_permits(), 3);
    });
}

#[test]
fn try_and_timeout() {
    watchdog(10, || {
        let s = Semaphore::new(1);
        let p = s.try_acquire().unwrap();
        assert!(s.try_acquire().is_none());
        let t = Instant::now();
        assert!(s.acquire_timeout(Duration::from_millis(40)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(40));
        drop(p);
        assert!(s.acquire_timeout(Duration::from_millis(40)).is_some());
        let p = s.acquire();
        p.forget();
        assert_eq!(s.available_permits(), 0);
        s.add_permits(2);
        assert_eq!(s.available_permits(), 2);
    });
}

#[test]
fn timeouts_race_with_releases() {
    watchdog(30, || {
        let s = Semaphore::new(2);
        let n = scale(5_000, 1_000);
        threads(6, |_| {
            for _ in 0..n {
                if let Some(p) = s.acquire_timeout(Duration::from_micros(30)) {
                    drop(p);
                }
            }
        });
        assert_eq!(s.available_permits(), 2);
    });
}

#[test]
fn add_permits_wakes_waiters() {
    watchdog(10, || {
        let s = Semaphore::new(0);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| s.acquire().forget());
            }
            std::thread::sleep(Duration::from_millis(20));
            s.add_permits(4);
        });
        assert_eq!(s.available_permits(), 0);
    });
}

#[test]
fn fibers_never_exceed_permits() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let s = Semaphore::new(3);
        let inside = AtomicUsize::new(0);
        let total = AtomicUsize::new(0);
        fibers(2, 1_000, |_| {
            for _ in 0..ops {
                let _p = s.acquire();
                assert!(inside.fetch_add(1, Ordering::SeqCst) < 3);
                total.fetch_add(1, Ordering::Relaxed);
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 1_000 * ops);
        assert_eq!(s.available_permits(), 3);
    });
}

#[test]
fn fibers_and_threads_with_timeouts() {
    watchdog(60, || {
        let ops = scale(500, 100);
        let s = Semaphore::new(2);
        mixed(100, 4, |i| {
            for _ in 0..ops {
                if i % 2 == 0 {
                    drop(s.acquire());
                } else if let Some(p) = s.acquire_timeout(Duration::from_micros(50)) {
                    drop(p);
                }
            }
        });
        assert_eq!(s.available_permits(), 2);
    });
}

/// Issue 11: dropping a runtime whose fibers wait on a `Semaphore` left it one permit short per
/// hand-off. The holders are unwound first; each release hands its permit to a waiter that is
/// unwound next and must release it again.
#[test]
fn runtime_shutdown_returns_handed_over_permits() {
    use std::sync::Arc;
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let s = Arc::new(Semaphore::new(2));
        let rt = one_worker_runtime();
        let other = one_worker_runtime();
        for _ in 0..2 {
            let s = s.clone();
            spawn_parked(&rt, move || {
                let _p = s.acquire();
                loop {
                    fiber::park();
                }
            });
        }
        for _ in 0..3 {
            let s = s.clone();
            spawn_parked(&rt, move || {
                let _p = s.acquire();
                unreachable!("no permit is released before shutdown");
            });
        }
        let s2 = s.clone();
        let survivor = spawn_parked(&other, move || drop(s2.acquire()));
        drop(rt);
        survivor
            .join()
            .expect("the other runtime's waiter got a permit");
        // Exactly the two permits are back.
        assert_eq!(s.available_permits(), 2);
        let (a, b) = (s.try_acquire(), s.try_acquire());
        assert!(a.is_some() && b.is_some());
        assert!(s.try_acquire().is_none());
        drop((a, b));
        assert_eq!(s.available_permits(), 2);
    });
}
