//! fiber::sync: WaitGroup tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fiber::sync::WaitGroup;
use support::{fibers, scale, sync_runtime, watchdog};

#[test]
fn waits_for_all() {
    watchdog(30, || {
        for _ in 0..scale(500, 100) {
            let wg = WaitGroup::new();
            let done = AtomicUsize::new(0);
            wg.add(8);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        done.fetch_add(1, Ordering::SeqCst);
                        wg.done();
                    });
                }
                wg.wait();
                assert_eq!(done.load(Ordering::SeqCst), 8);
            });
        }
    });
}

#[test]
fn wait_timeout_and_zero() {
    let wg = WaitGroup::new();
    wg.wait();
    wg.add(1);
    assert!(!wg.wait_timeout(Duration::from_millis(20)));
    wg.done();
    assert!(wg.wait_timeout(Duration::from_millis(20)));
    assert_eq!(wg.count(), 0);
}

#[test]
#[should_panic(expected = "more often than add")]
fn negative_counter_panics() {
    WaitGroup::new().done();
}

#[test]
fn thread_waits_for_thousand_fibers() {
    watchdog(60, || {
        let rt = sync_runtime(2);
        let wg = std::sync::Arc::new(WaitGroup::new());
        let done = std::sync::Arc::new(AtomicUsize::new(0));
        wg.add(1_000);
        for _ in 0..1_000 {
            let (wg, done) = (wg.clone(), done.clone());
            rt.spawn(move || {
                fiber::sleep(Duration::from_millis(1));
                done.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(done.load(Ordering::SeqCst), 1_000);
    });
}

#[test]
fn fibers_wait_for_fibers() {
    watchdog(60, || {
        let wg = WaitGroup::new();
        wg.add(500);
        let done = AtomicUsize::new(0);
        fibers(2, 1_000, |i| {
            if i % 2 == 0 {
                done.fetch_add(1, Ordering::SeqCst);
                wg.done();
            } else {
                wg.wait();
                assert_eq!(done.load(Ordering::SeqCst), 500);
            }
        });
    });
}
