//! fiber::sync: RwLock tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fiber::sync::{Barrier, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use support::{fibers, mixed, scale, threads, watchdog};

#[test]
fn exact_count_readers_and_writers() {
    watchdog(30, || {
        let n = scale(10_000, 2_000);
        let l = RwLock::new(0usize);
        threads(6, |i| {
            for _ in 0..n {
                if i % 2 == 0 {
                    *l.write().unwrap() += 1;
                } else {
                    let g = l.read().unwrap();
                    assert!(*g <= 3 * n);
                }
            }
        });
        assert_eq!(*l.read().unwrap(), 3 * n);
    });
}

#[test]
fn readers_share() {
    watchdog(10, || {
        let l = RwLock::new(1);
        let b = Barrier::new(3);
        threads(3, |_| {
            let g = l.read().unwrap();
            b.wait(); // all three hold a read lock at once
            assert_eq!(*g, 1);
        });
    });
}

#[test]
fn try_variants() {
    let l = RwLock::new(());
    let r = l.read().unwrap();
    assert!(l.try_read().is_ok());
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    drop(r);
    let w = l.try_write().unwrap();
    assert!(matches!(l.try_read(), Err(TryLockError::WouldBlock)));
    drop(w);
}

#[test]
fn writer_not_starved_by_readers() {
    watchdog(30, || {
        let l = RwLock::new(0);
        let stop = AtomicBool::new(false);
        let wrote = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let _g = l.read().unwrap();
                        std::hint::spin_loop();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..100 {
                    *l.write().unwrap() += 1;
                    wrote.fetch_add(1, Ordering::Relaxed);
                }
                stop.store(true, Ordering::Relaxed);
            });
        });
        assert_eq!(wrote.load(Ordering::Relaxed), 100);
        assert_eq!(*l.read().unwrap(), 100);
    });
}

#[test]
fn poisoning() {
    let l = Arc::new(RwLock::new(1));
    let l2 = l.clone();
    let _ = std::thread::spawn(move || {
        let _g = l2.write().unwrap();
        panic!("poison");
    })
    .join();
    assert!(l.is_poisoned());
    assert!(l.read().is_err());
    assert!(l.write().is_err());
    l.clear_poison();
    assert!(l.read().is_ok());
    // A panicking reader does not poison.
    let l3 = l.clone();
    let _ = std::thread::spawn(move || {
        let _g = l3.read().unwrap();
        panic!("no poison");
    })
    .join();
    assert!(!l.is_poisoned());
}

#[test]
fn hand_off_chain_stress() {
    watchdog(30, || {
        let l = RwLock::new(0usize);
        let n = scale(2_000, 500);
        threads(4, |i| {
            for k in 0..n {
                if (i + k) % 3 == 0 {
                    *l.write().unwrap() += 1;
                } else {
                    let _g = l.read().unwrap();
                    if k % 50 == 0 {
                        std::thread::sleep(Duration::from_micros(10));
                    }
                }
            }
        });
        let expected: usize = (0..4)
            .map(|i| (0..n).filter(|k| (i + k) % 3 == 0).count())
            .sum();
        assert_eq!(*l.read().unwrap(), expected);
    });
}

#[test]
fn fibers_exact_count_1000x1000_on_2_workers() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let l = RwLock::new(0usize);
        fibers(2, 1_000, |i| {
            for _ in 0..ops {
                if i % 4 == 0 {
                    *l.write().unwrap() += 1;
                } else {
                    drop(l.read().unwrap());
                }
            }
        });
        assert_eq!(*l.read().unwrap(), 250 * ops);
    });
}

#[test]
fn fibers_mixed_with_threads() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let l = RwLock::new(0usize);
        mixed(200, 4, |i| {
            for _ in 0..ops {
                if i % 2 == 0 {
                    *l.write().unwrap() += 1;
                } else {
                    drop(l.read().unwrap());
                }
            }
        });
        assert_eq!(*l.read().unwrap(), 102 * ops);
    });
}

/// Issue 11: dropping a runtime whose fibers wait on an `RwLock` left it write-locked with no
/// holder. The holder is unwound first and its unlock hands the lock to the first waiter, which is
/// unwound next; it must pass the lock on instead of discarding it.
#[test]
fn runtime_shutdown_passes_a_handed_over_lock_on() {
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let l = Arc::new(RwLock::new(0usize));
        let rt = one_worker_runtime();
        let other = one_worker_runtime();
        let holder = l.clone();
        spawn_parked(&rt, move || {
            let _g = holder.write().unwrap();
            loop {
                fiber::park();
            }
        });
        // Waiters in queue order: writer, reader, reader, writer (all unwound at shutdown).
        for write in [true, false, false, true] {
            let l = l.clone();
            spawn_parked(&rt, move || {
                if write {
                    drop(l.write());
                } else {
                    drop(l.read());
                }
                unreachable!("the lock is never released before shutdown");
            });
        }
        // Queued behind them, a writer on another runtime that must get the lock in the end.
        let writer = l.clone();
        let survivor = spawn_parked(&other, move || {
            *writer.write().unwrap_or_else(|e| e.into_inner()) += 1;
        });
        drop(rt);
        survivor
            .join()
            .expect("the other runtime's writer got the lock");
        // The lock is free (poisoned: the holder was unwound holding it): a plain thread takes it.
        let g = match l.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => panic!("the RwLock is still locked by nobody"),
        };
        assert_eq!(*g, 1);
        drop(g);
        assert!(matches!(
            l.try_read(),
            Ok(_) | Err(TryLockError::Poisoned(_))
        ));
    });
}

/// std's `test_read_guard_covariance`: compiles only if `RwLockReadGuard` is covariant in `T`.
#[test]
fn read_guard_covariance() {
    fn do_stuff<'a>(guard: RwLockReadGuard<'_, &'a i32>, other: &'a i32) {
        assert_eq!(**guard + 1, *other);
    }
    let j: i32 = 5;
    let lock = RwLock::new(&j);
    {
        let i = 6;
        do_stuff(lock.read().unwrap(), &i);
    }
    assert_eq!(*lock.into_inner().unwrap(), 5);
}

/// As std: the locks are `Send + Sync` for `T: Send + Sync`; the guards are `Sync` but not `Send`.
#[test]
fn send_sync_as_std() {
    fn send_sync<T: Send + Sync>() {}
    fn sync<T: Sync>() {}
    send_sync::<RwLock<u32>>();
    sync::<RwLockReadGuard<'static, u32>>();
    sync::<RwLockWriteGuard<'static, u32>>();
    support::assert_not_send::<RwLockReadGuard<'static, u32>, _>();
    support::assert_not_send::<RwLockWriteGuard<'static, u32>, _>();
}

#[test]
fn guards_format_as_their_data() {
    let lock = RwLock::new(7);
    assert_eq!(
        format!("{:?} {}", lock.read().unwrap(), lock.read().unwrap()),
        "7 7"
    );
    assert_eq!(format!("{:?} {}", lock.write().unwrap(), 8), "7 8");
    assert_eq!(lock.write().unwrap().to_string(), "7");
    assert!(format!("{lock:?}").contains('7'));
}

#[test]
fn downgrade_lets_queued_readers_in() {
    watchdog(30, || {
        let l = RwLock::new(0);
        let mut w = l.write().unwrap();
        *w = 1;
        std::thread::scope(|s| {
            let reader = s.spawn(|| *l.read().unwrap());
            std::thread::sleep(Duration::from_millis(50)); // let it queue
            let r = RwLockWriteGuard::downgrade(w);
            // The reader gets in while we still hold our read lock.
            assert_eq!(reader.join().unwrap(), 1);
            assert_eq!(*r, 1);
            assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        });
        assert_eq!(*l.write().unwrap(), 1);
    });
}

#[test]
fn downgrade_keeps_queued_writers_out() {
    watchdog(30, || {
        let l = RwLock::new(0);
        let done = AtomicBool::new(false);
        let w = l.write().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                *l.write().unwrap() = 2;
                done.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50)); // let it queue
            let r = RwLockWriteGuard::downgrade(w);
            std::thread::sleep(Duration::from_millis(50));
            assert!(!done.load(Ordering::SeqCst));
            assert_eq!(*r, 0);
        });
        assert!(done.load(Ordering::SeqCst));
        assert_eq!(*l.read().unwrap(), 2);
    });
}

#[test]
fn downgrade_stress_mixed() {
    watchdog(60, || {
        let l = RwLock::new(0usize);
        let n = scale(2_000, 300);
        mixed(50, 4, |i| {
            for k in 0..n / 10 {
                if (i + k) % 4 == 0 {
                    let mut w = l.write().unwrap();
                    *w += 1;
                    let seen = *w;
                    let r = RwLockWriteGuard::downgrade(w);
                    // No writer can come in between the write and our reads.
                    assert_eq!(*r, seen);
                    fiber::yield_now();
                    assert_eq!(*r, seen);
                } else {
                    let _g = l.read().unwrap();
                }
            }
        });
        let expected: usize = (0..54)
            .map(|i| (0..n / 10).filter(|k| (i + k) % 4 == 0).count())
            .sum();
        assert_eq!(*l.read().unwrap(), expected);
    });
}
