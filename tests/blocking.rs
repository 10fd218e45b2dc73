//! `spawn_blocking`: values, panics, concurrency; on plain threads and inside fibers.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::both;

#[test]
fn returns_value() {
    both(|_| {
        assert_eq!(fiber::spawn_blocking(|| 6 * 7), 42);
        let s = fiber::spawn_blocking(|| String::from("owned"));
        assert_eq!(s, "owned");
    });
}

#[test]
fn panic_resumes_in_caller_and_pool_survives() {
    both(|_| {
        let r = std::panic::catch_unwind(|| {
            fiber::spawn_blocking(|| -> u8 { panic!("blocking boom") })
        });
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"blocking boom"));
        // The pool (or thread) keeps working afterwards.
        assert_eq!(fiber::spawn_blocking(|| 1), 1);
    });
}

#[test]
fn many_concurrent_callers_overlap() {
    both(|m| {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (running, peak) = (running.clone(), peak.clone());
                m.spawn(move || {
                    fiber::spawn_blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
            })
            .collect();
        let sum: usize = tasks.into_iter().map(|t| t.join()).sum();
        assert_eq!(sum, (0..16).sum());
        // 16 × 50 ms of sleeping, run concurrently, takes far less than 800 ms.
        assert!(
            t0.elapsed() < Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
        assert!(peak.load(Ordering::SeqCst) > 1);
    });
}
