//! fiber::sync: Condvar tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{Condvar, Mutex};
use support::{fibers, mixed, scale, threads, watchdog};

#[test]
fn wait_while_producer_consumer() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        let state = Mutex::new(std::collections::VecDeque::new());
        let cv = Condvar::new();
        let sum = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=n {
                    state.lock().unwrap().push_back(i);
                    cv.notify_one();
                }
            });
            s.spawn(|| {
                let mut got = 0;
                while got < n {
                    let mut q = cv
                        .wait_while(state.lock().unwrap(), |q| q.is_empty())
                        .unwrap();
                    while let Some(v) = q.pop_front() {
                        sum.fetch_add(v, Ordering::Relaxed);
                        got += 1;
                    }
                }
            });
        });
        assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
    });
}

#[test]
fn ping_pong_no_lost_wakeup() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        let turn = Mutex::new(0usize);
        let cv = Condvar::new();
        threads(2, |me| {
            for _ in 0..n {
                let mut t = cv
                    .wait_while(turn.lock().unwrap(), |t| *t % 2 != me)
                    .unwrap();
                *t += 1;
                drop(t);
                cv.notify_all();
            }
        });
        assert_eq!(*turn.lock().unwrap(), 2 * n);
    });
}

#[test]
fn notify_all_wakes_everyone() {
    watchdog(30, || {
        for _ in 0..scale(200, 50) {
            let go = Mutex::new(false);
            let cv = Condvar::new();
            let woke = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        let _g = cv.wait_while(go.lock().unwrap(), |g| !*g).unwrap();
                        woke.fetch_add(1, Ordering::Relaxed);
                    });
                }
                *go.lock().unwrap() = true;
                cv.notify_all();
            });
            assert_eq!(woke.load(Ordering::Relaxed), 8);
        }
    });
}

#[test]
fn wait_timeout_times_out() {
    watchdog(10, || {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let t = Instant::now();
        let (g, r) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        drop(g);
        assert!(r.timed_out());
        assert!(t.elapsed() >= Duration::from_millis(50));
        let (g, r) = cv
            .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(30), |_| true)
            .unwrap();
        assert!(r.timed_out());
        drop(g);
    });
}

#[test]
fn wait_timeout_while_wakes_on_condition() {
    watchdog(10, || {
        let m = Mutex::new(false);
        let cv = Condvar::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                *m.lock().unwrap() = true;
                cv.notify_one();
            });
            let (g, r) = cv
                .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(5), |v| !*v)
                .unwrap();
            assert!(*g);
            assert!(!r.timed_out());
        });
    });
}

#[test]
fn poison_propagates_through_wait() {
    watchdog(10, || {
        let m = Mutex::new(0);
        let cv = Condvar::new();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let g = m.lock().unwrap();
                let r = cv.wait_while(g, |v| *v == 0);
                assert!(r.is_err(), "mutex was poisoned while we waited");
            });
            std::thread::sleep(Duration::from_millis(20));
            let _ = std::thread::scope(|s2| {
                s2.spawn(|| {
                    let mut g = m.lock().unwrap();
                    *g = 1;
                    panic!("poison");
                })
                .join()
            });
            cv.notify_all();
            h.join().unwrap();
        });
    });
}

#[test]
fn fibers_ping_pong_no_lost_wakeup() {
    watchdog(60, || {
        let n = scale(20_000, 5_000);
        let turn = Mutex::new(0usize);
        let cv = Condvar::new();
        fibers(2, 2, |me| {
            for _ in 0..n {
                let mut t = cv
                    .wait_while(turn.lock().unwrap(), |t| *t % 2 != me)
                    .unwrap();
                *t += 1;
                drop(t);
                cv.notify_all();
            }
        });
        assert_eq!(*turn.lock().unwrap(), 2 * n);
    });
}

#[test]
fn fibers_and_threads_share_a_condvar() {
    // A counter passed round-robin between 100 fibers and 2 threads.
    watchdog(60, || {
        let rounds = scale(100, 20);
        let parties = 102;
        let turn = Mutex::new(0usize);
        let cv = Condvar::new();
        mixed(100, 2, |me| {
            for _ in 0..rounds {
                let mut t = cv
                    .wait_while(turn.lock().unwrap(), |t| *t % parties != me)
                    .unwrap();
                *t += 1;
                drop(t);
                cv.notify_all();
            }
        });
        assert_eq!(*turn.lock().unwrap(), parties * rounds);
    });
}

#[test]
fn fibers_wait_timeout() {
    watchdog(20, || {
        let m = Mutex::new(());
        let cv = Condvar::new();
        fibers(2, 100, |_| {
            let (_g, r) = cv
                .wait_timeout(m.lock().unwrap(), Duration::from_millis(20))
                .unwrap();
            assert!(r.timed_out());
        });
    });
}

/// Sets the flag and notifies one waiter when dropped (here: while its fiber is unwound).
struct NotifyOnDrop(Arc<(Mutex<bool>, Condvar)>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_one();
    }
}

/// Issue 11: a `notify_one` that chose a waiter which is then unwound by a runtime shutdown must
/// reach another waiter; and the unwound waiter, which did not hold the mutex, must neither
/// unlock nor poison it.
#[test]
fn runtime_shutdown_passes_notify_one_on() {
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let rt = one_worker_runtime();
        let other = one_worker_runtime();
        let p = pair.clone();
        spawn_parked(&rt, move || {
            let _n = NotifyOnDrop(p);
            loop {
                fiber::park();
            }
        });
        let p = pair.clone();
        spawn_parked(&rt, move || {
            let g = p.0.lock().unwrap();
            drop(p.1.wait_while(g, |ready| !*ready));
            unreachable!("nobody notifies before shutdown");
        });
        let p = pair.clone();
        let survivor = spawn_parked(&other, move || {
            let g = p.0.lock().unwrap();
            let g = p.1.wait_while(g, |ready| !*ready).unwrap();
            assert!(*g);
        });
        drop(rt);
        survivor
            .join()
            .expect("the other runtime's waiter was notified");
        assert!(
            !pair.0.is_poisoned(),
            "an unwound waiter poisoned a mutex it did not hold"
        );
        assert!(pair.0.try_lock().is_ok());
    });
}

/// Records, when dropped, whether its mutex was (correctly) still locked.
struct CheckLocked(Arc<(Mutex<bool>, Condvar)>, Arc<AtomicUsize>);

impl Drop for CheckLocked {
    fn drop(&mut self) {
        // (Not just `is_err`: a wrongly unlocked mutex may also be poisoned.)
        if matches!(
            self.0 .0.try_lock(),
            Err(fiber::sync::TryLockError::WouldBlock)
        ) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A waiter unwound out of `Condvar::wait` used to drop its guard and so unlock the mutex that
/// another fiber held at that moment.
#[test]
fn runtime_shutdown_does_not_unlock_a_mutex_held_by_another() {
    use support::{one_worker_runtime, spawn_parked};
    watchdog(30, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let still_locked = Arc::new(AtomicUsize::new(0));
        let rt = one_worker_runtime();
        let p = pair.clone();
        spawn_parked(&rt, move || {
            let g = p.0.lock().unwrap();
            drop(p.1.wait(g));
            unreachable!("nobody notifies");
        });
        let (p, still) = (pair.clone(), still_locked.clone());
        spawn_parked(&rt, move || {
            let _g = p.0.lock().unwrap();
            // Dropped before the guard: checks that the lock is still held by this fiber after
            // the waiter above was unwound (it is unwound first).
            let _check = CheckLocked(p.clone(), still);
            loop {
                fiber::park();
            }
        });
        drop(rt);
        assert_eq!(
            still_locked.load(Ordering::SeqCst),
            1,
            "the mutex was unlocked under its holder"
        );
        // The holder was unwound holding the guard: free, and not poisoned (a cancellation is
        // not a panic, docs/cancellation.md).
        assert!(pair.0.try_lock().is_ok());
    });
}
