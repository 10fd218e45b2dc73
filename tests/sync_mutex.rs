//! fiber::sync: Mutex tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{Mutex, MutexGuard, RawMutex, TryLockError};
use support::{fibers, mixed, scale, sync_runtime, threads, watchdog};

#[test]
fn exact_count_os_threads() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        let m = Mutex::new(0usize);
        threads(8, |_| {
            for _ in 0..n {
                *m.lock().unwrap() += 1;
            }
        });
        assert_eq!(m.into_inner().unwrap(), 8 * n);
    });
}

#[test]
fn exact_count_with_try_lock() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        let m = Mutex::new(0usize);
        threads(4, |i| {
            let mut done = 0;
            while done < n {
                if i % 2 == 0 {
                    *m.lock().unwrap() += 1;
                    done += 1;
                } else if let Ok(mut g) = m.try_lock() {
                    *g += 1;
                    done += 1;
                }
            }
        });
        assert_eq!(*m.lock().unwrap(), 4 * n);
    });
}

#[test]
fn try_lock_would_block() {
    let m = Mutex::new(1);
    let g = m.lock().unwrap();
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 1);
}

#[test]
fn poisoning() {
    let m = Arc::new(Mutex::new(5));
    let m2 = m.clone();
    let r = std::thread::spawn(move || {
        let _g = m2.lock().unwrap();
        panic!("poison it");
    })
    .join();
    assert!(r.is_err());
    assert!(m.is_poisoned());
    let err = m.lock().unwrap_err();
    assert_eq!(**err.get_ref(), 5);
    drop(err);
    assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
    m.clear_poison();
    assert!(!m.is_poisoned());
    *m.lock().unwrap() = 6;
    let m = Arc::try_unwrap(m).unwrap();
    assert_eq!(m.into_inner().unwrap(), 6);
}

#[test]
fn poisoned_into_inner_and_get_mut() {
    let mut m = Mutex::new(vec![1]);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = m.lock().unwrap();
        panic!("x");
    }));
    assert!(m.get_mut().is_err());
    assert_eq!(m.into_inner().unwrap_err().into_inner(), vec![1]);
}

#[test]
fn const_static_and_debug() {
    static M: Mutex<u32> = Mutex::new(3);
    *M.lock().unwrap() += 1;
    assert_eq!(format!("{:?}", M.lock().unwrap()), "4");
    assert!(format!("{M:?}").contains('4'));
    assert_eq!(M.lock().unwrap().to_string(), "4");
}

/// As std: `Mutex<T>` is `Send + Sync` for `T: Send`; its guard is `Sync` but not `Send`.
#[test]
fn send_sync_as_std() {
    fn send_sync<T: Send + Sync>() {}
    fn sync<T: Sync>() {}
    send_sync::<Mutex<std::cell::Cell<u32>>>();
    sync::<MutexGuard<'static, u32>>();
    support::assert_not_send::<MutexGuard<'static, u32>, _>();
}

#[test]
fn lock_api_timed_lock_times_out() {
    watchdog(10, || {
        let m = lock_api::Mutex::<RawMutex, i32>::new(0);
        let held = m.lock();
        let t = Instant::now();
        assert!(m.try_lock_for(Duration::from_millis(50)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(50));
        std::thread::scope(|s| {
            s.spawn(|| {
                let g = m.try_lock_for(Duration::from_secs(5));
                assert!(g.is_some());
            });
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
        });
    });
}

#[test]
fn timeouts_race_with_unlocks() {
    // Waiters time out while the lock is handed around: no hand-off may be lost (a lost one
    // would leave the lock held forever and hang the watchdog).
    watchdog(30, || {
        let m = lock_api::Mutex::<RawMutex, usize>::new(0);
        let n = scale(5_000, 1_000);
        let ok = AtomicUsize::new(0);
        threads(4, |_| {
            for _ in 0..n {
                if let Some(mut g) = m.try_lock_for(Duration::from_micros(20)) {
                    *g += 1;
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        assert_eq!(*m.lock(), ok.load(Ordering::Relaxed));
    });
}

#[test]
fn no_lost_wakeup_handoff_chain() {
    // Two threads alternate strictly through the mutex many times. Every turn needs an OS-thread
    // wake-up, which takes milliseconds on a loaded machine: keep the count moderate.
    watchdog(60, || {
        let n = scale(2_000, 500);
        let m = Mutex::new((0usize, 0usize));
        threads(2, |me| loop {
            let mut g = m.lock().unwrap();
            if g.0 >= 2 * n {
                break;
            }
            if g.0 % 2 == me {
                g.0 += 1;
                g.1 += me;
            }
        });
        assert_eq!(m.lock().unwrap().1, n);
    });
}

#[test]
fn worst_case_wait_is_bounded() {
    // Barging with eventual hand-off: under saturation no thread waits for long.
    watchdog(30, || {
        let m = Mutex::new(0u64);
        let stop = AtomicBool::new(false);
        let worst = AtomicUsize::new(0);
        let acquisitions = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let mut g = m.lock().unwrap();
                        let waited = t.elapsed().as_micros() as usize;
                        worst.fetch_max(waited, Ordering::Relaxed);
                        acquisitions.fetch_add(1, Ordering::Relaxed);
                        // Hold it for a while: a hot loop that would starve the others without
                        // hand-off.
                        for _ in 0..200 {
                            *g = std::hint::black_box(*g + 1);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
        });
        let worst = worst.load(Ordering::Relaxed);
        eprintln!(
            "mutex: {} acquisitions in 0.5 s on 4 threads, worst wait {worst} us",
            acquisitions.load(Ordering::Relaxed)
        );
        // Generous bound: a shared 2-core VM deschedules threads for long stretches. Without
        // hand-off a waiter could starve for the whole run.
        assert!(worst < 2_000_000, "worst wait {worst} us");
    });
}

#[test]
fn fibers_exact_count_1000x1000_on_2_workers() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let m = Mutex::new(0usize);
        fibers(2, 1_000, |_| {
            for _ in 0..ops {
                *m.lock().unwrap() += 1;
            }
        });
        assert_eq!(*m.lock().unwrap(), 1_000 * ops);
    });
}

#[test]
fn fibers_mixed_with_threads_exact_count() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let m = Mutex::new(0usize);
        mixed(500, 4, |_| {
            for _ in 0..ops {
                *m.lock().unwrap() += 1;
            }
        });
        assert_eq!(*m.lock().unwrap(), 504 * ops);
    });
}

#[test]
fn waiting_parks_the_fiber_not_the_worker() {
    // One worker: the holder sleeps (a fiber sleep) while another fiber waits for the lock. If
    // waiting blocked the worker thread, the holder could never resume.
    watchdog(20, || {
        let rt = sync_runtime(1);
        let m = Mutex::new(0);
        rt.block_on(|| {
            fiber::scope(|s| {
                let g = m.lock().unwrap();
                s.spawn(|| *m.lock().unwrap() += 1);
                fiber::sleep(Duration::from_millis(20));
                drop(g);
            })
        });
        assert_eq!(*m.lock().unwrap(), 1);
    });
}

#[test]
fn fibers_timed_lock() {
    watchdog(20, || {
        let rt = sync_runtime(2);
        let m = lock_api::Mutex::<RawMutex, i32>::new(0);
        rt.block_on(|| {
            let g = m.lock();
            fiber::scope(|s| {
                s.spawn(|| assert!(m.try_lock_for(Duration::from_millis(20)).is_none()));
            });
            drop(g);
            assert!(m.try_lock_for(Duration::from_millis(20)).is_some());
        });
    });
}

#[test]
fn fibers_poisoning() {
    watchdog(20, || {
        let rt = sync_runtime(2);
        let m = Mutex::new(1);
        rt.block_on(|| {
            let r = fiber::scope(|s| {
                s.spawn(|| {
                    let _g = m.lock().unwrap();
                    panic!("poison from a fiber");
                })
                .join()
            });
            assert!(r.is_err());
        });
        assert!(m.is_poisoned());
    });
}

/// Unlocks its guard with `unlock_fair` (a hand-off to the first waiter) when dropped.
struct UnlockFairOnDrop<'a>(Option<lock_api::MutexGuard<'a, RawMutex, usize>>);

impl Drop for UnlockFairOnDrop<'_> {
    fn drop(&mut self) {
        lock_api::MutexGuard::unlock_fair(self.0.take().unwrap());
    }
}

/// Issue 11: a mutex handed over (fair unlock) to a waiter that is then unwound by a runtime
/// shutdown stayed locked with no holder.
#[test]
fn runtime_shutdown_passes_a_handed_over_mutex_on() {
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let m = Arc::new(lock_api::Mutex::<RawMutex, usize>::new(0));
        let rt = one_worker_runtime();
        let other = one_worker_runtime();
        let holder = m.clone();
        spawn_parked(&rt, move || {
            let _g = UnlockFairOnDrop(Some(holder.lock()));
            loop {
                fiber::park();
            }
        });
        for _ in 0..3 {
            let m = m.clone();
            spawn_parked(&rt, move || {
                drop(m.lock());
                unreachable!("the mutex is never released before shutdown");
            });
        }
        let m2 = m.clone();
        let survivor = spawn_parked(&other, move || *m2.lock() += 1);
        drop(rt);
        survivor
            .join()
            .expect("the other runtime's waiter got the mutex");
        let g = m.try_lock().expect("the mutex is still locked by nobody");
        assert_eq!(*g, 1);
    });
}

/// Issue 11, plain wake-up variant: a normal unlock wakes the first waiter to retry; if that
/// waiter is unwound instead, the waiters behind it (here on another runtime) must still be woken.
#[test]
fn runtime_shutdown_passes_a_wake_up_on() {
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let m = Arc::new(Mutex::new(0usize));
        let rt = one_worker_runtime();
        let other = one_worker_runtime();
        let holder = m.clone();
        spawn_parked(&rt, move || {
            let _g = holder.lock().unwrap();
            loop {
                fiber::park();
            }
        });
        let m1 = m.clone();
        spawn_parked(&rt, move || {
            drop(m1.lock());
            unreachable!("the mutex is never released before shutdown");
        });
        let m2 = m.clone();
        let survivor = spawn_parked(&other, move || {
            *m2.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        });
        drop(rt);
        survivor
            .join()
            .expect("the other runtime's waiter got the mutex");
        // Free (poisoned: the holder was unwound holding it), and the survivor's increment is in.
        let g = match m.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => panic!("the mutex is still locked by nobody"),
        };
        assert_eq!(*g, 1);
    });
}

/// Sleeps in its destructor: a fiber unwinding past one parks mid-unwind. Raises `parked` first.
struct ParksWhileUnwinding<'a>(&'a AtomicBool);

impl Drop for ParksWhileUnwinding<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        fiber::sleep(Duration::from_millis(100));
    }
}

/// Runs `a` and, beside it on the same (only) carrier, a fiber that panics and parks in a
/// destructor during its unwind; `a` gets the flag raised once that fiber is parked.
fn beside_a_fiber_parked_while_unwinding(a: impl FnOnce(&AtomicBool) + Send) {
    let rt = sync_runtime(1);
    let parked = AtomicBool::new(false);
    rt.block_on(|| {
        fiber::scope(|s| {
            let parked = &parked;
            let b = s.spawn(move || {
                let _d = ParksWhileUnwinding(parked);
                panic!("unwinds through a destructor that parks");
            });
            s.spawn(move || a(parked)).join().unwrap();
            assert!(b.join().is_err());
        });
    });
}

/// The soak's condvar flake (2026-12-03): `std::thread::panicking()` is per OS thread, so while one
/// fiber was parked mid-unwind every other fiber on its carrier looked as if it were panicking, and
/// a guard it had taken before and dropped then poisoned the mutex.
#[test]
fn a_neighbour_parked_while_unwinding_does_not_poison() {
    watchdog(20, || {
        let m = Mutex::new(0);
        beside_a_fiber_parked_while_unwinding(|parked| {
            let mut g = m.lock().unwrap();
            while !parked.load(Ordering::SeqCst) {
                fiber::yield_now();
            }
            *g += 1;
            drop(g);
            // Taken and dropped entirely inside the neighbour's unwind.
            *m.lock().unwrap() += 1;
        });
        assert!(
            !m.is_poisoned(),
            "a guard dropped by a fiber that did not panic poisoned"
        );
        assert_eq!(m.into_inner().unwrap(), 2);
    });
}

/// The other half: a fiber that panics holding a guard poisons, even while a neighbour on its
/// carrier is parked mid-unwind (std's per-thread answer said "already panicking at lock time").
#[test]
fn a_panic_beside_a_fiber_parked_while_unwinding_still_poisons() {
    watchdog(20, || {
        let m = Mutex::new(0);
        beside_a_fiber_parked_while_unwinding(|parked| {
            while !parked.load(Ordering::SeqCst) {
                fiber::yield_now();
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _g = m.lock().unwrap();
                panic!("poisons");
            }));
            assert!(r.is_err());
        });
        assert!(
            m.is_poisoned(),
            "a panic while holding the guard did not poison"
        );
    });
}
