//! Sleeping fibers: wake-up order, accuracy (generous bounds only), many concurrent sleepers,
//! and that a sleep parks only the fiber.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{runtime, watchdog};

#[test]
fn sleepers_on_one_worker_wake_in_deadline_order() {
    watchdog(60, || {
        // One worker: all timers are in one place, so the order is exact however late the worker
        // gets to them.
        let rt = runtime(1, "order1");
        let order = Arc::new(Mutex::new(Vec::new()));
        // Spawned in a scrambled order; fiber k sleeps until `base + k * 20 ms`. The 100 ms
        // lead makes every fiber start before the first deadline.
        let ks = [7u32, 2, 9, 0, 5, 1, 8, 3, 6, 4, 12, 10, 11];
        let base = Instant::now() + Duration::from_millis(100);
        let handles: Vec<_> = ks
            .iter()
            .map(|&k| {
                let order = order.clone();
                rt.spawn(move || {
                    let deadline = base + Duration::from_millis(20) * k;
                    fiber::sleep(deadline.saturating_duration_since(Instant::now()));
                    assert!(Instant::now() >= deadline);
                    order.lock().unwrap().push(k);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let order = order.lock().unwrap().clone();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(order.len(), ks.len());
    });
}

#[test]
fn sleepers_on_two_workers_wake_in_order_when_far_apart() {
    watchdog(60, || {
        // Two workers, deadlines 200 ms apart: each wakes after its own deadline; the order is
        // checked from the wake-up instants, which a busy machine can only delay.
        let rt = runtime(2, "order2");
        let start = Instant::now();
        let ks = [3u32, 0, 2, 1];
        let handles: Vec<_> = ks
            .iter()
            .map(|&k| {
                rt.spawn(move || {
                    let dur = Duration::from_millis(200) * k;
                    fiber::time::sleep(dur);
                    (k, start.elapsed(), dur)
                })
            })
            .collect();
        let mut woke: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for &(k, at, dur) in &woke {
            assert!(at >= dur, "fiber {k} woke at {at:?}, before its {dur:?}");
        }
        woke.sort_by_key(|w| w.1);
        let order: Vec<u32> = woke.iter().map(|w| w.0).collect();
        assert_eq!(order, [0, 1, 2, 3], "wake-up instants: {woke:?}");
    });
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    watchdog(60, || {
        let rt = runtime(2, "accuracy");
        for ms in [1u64, 5, 20, 50, 120] {
            let d = Duration::from_millis(ms);
            let took = rt.block_on(move || {
                let t = Instant::now();
                fiber::sleep(d);
                t.elapsed()
            });
            assert!(took >= d, "sleep({d:?}) took only {took:?}");
            assert!(
                took < d + Duration::from_secs(5),
                "sleep({d:?}) took {took:?}"
            );
        }
        // Zero and tiny sleeps return.
        rt.block_on(|| {
            fiber::sleep(Duration::ZERO);
            fiber::sleep(Duration::from_nanos(1));
        });
    });
}

#[test]
fn ten_thousand_concurrent_sleepers() {
    watchdog(120, || {
        let rt = runtime(2, "sleepers");
        let n = 10_000usize;
        let woke = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let woke = woke.clone();
                rt.spawn(move || {
                    // 100..=199 ms, spread over the set.
                    let d = Duration::from_millis(100 + (i * 37 % 100) as u64);
                    let t = Instant::now();
                    fiber::sleep(d);
                    let took = t.elapsed();
                    woke.fetch_add(1, Ordering::Relaxed);
                    (took >= d, took)
                })
            })
            .collect();
        let mut early = 0;
        for h in handles {
            let (ok, _) = h.join().unwrap();
            if !ok {
                early += 1;
            }
        }
        assert_eq!(early, 0, "{early} sleepers woke before their deadline");
        assert_eq!(woke.load(Ordering::Relaxed), n);
        // All sleeps overlap: far less than the sum of the durations, with a wide margin.
        let total = start.elapsed();
        assert!(
            total < Duration::from_secs(30),
            "10k sleepers took {total:?}"
        );
    });
}

#[test]
fn a_sleeping_fiber_does_not_block_its_worker() {
    watchdog(30, || {
        let rt = runtime(1, "nonblocking");
        let other_ran = Arc::new(AtomicBool::new(false));
        let flag = other_ran.clone();
        let saw = rt.block_on(move || {
            // Queued behind us on the only worker: it can only run while we sleep.
            let h = fiber::spawn(move || flag.store(true, Ordering::SeqCst));
            fiber::sleep(Duration::from_millis(200));
            let saw = other_ran.load(Ordering::SeqCst);
            h.join().unwrap();
            saw
        });
        assert!(saw, "the other fiber did not run while this one slept");
    });
}

#[test]
fn sleep_is_not_cut_short_by_unpark_and_keeps_the_token() {
    watchdog(30, || {
        let rt = runtime(2, "sleep-token");
        let h = rt.spawn(|| {
            let t = Instant::now();
            fiber::sleep(Duration::from_millis(150));
            let slept = t.elapsed();
            // The unpark that arrived during the sleep left its token: park returns at once.
            let t = Instant::now();
            fiber::park_timeout(Duration::from_secs(300));
            (slept, t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(30));
        h.fiber().unpark();
        let (slept, parked) = h.join().unwrap();
        assert!(
            slept >= Duration::from_millis(150),
            "unpark cut the sleep short: {slept:?}"
        );
        assert!(
            parked < Duration::from_secs(100),
            "the token was lost: parked {parked:?}"
        );
    });
}

#[test]
fn sleep_in_a_fiber_that_yields_a_lot() {
    watchdog(30, || {
        // A fiber spinning on yield_now keeps the only worker busy; a sleeper must still wake
        // (timers are checked even when there is always runnable work).
        let rt = runtime(1, "busy-timers");
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let spinner = rt.spawn(move || {
            let mut spins = 0u64;
            while !d2.load(Ordering::SeqCst) {
                fiber::yield_now();
                spins += 1;
            }
            spins
        });
        let sleeper = rt.spawn(move || {
            fiber::sleep(Duration::from_millis(50));
            done.store(true, Ordering::SeqCst);
        });
        sleeper.join().unwrap();
        assert!(spinner.join().unwrap() > 0);
    });
}

#[test]
fn sleep_on_a_plain_thread_sleeps_the_thread() {
    let t = Instant::now();
    fiber::sleep(Duration::from_millis(30));
    assert!(t.elapsed() >= Duration::from_millis(30));
    fiber::time::sleep(Duration::ZERO);
}
