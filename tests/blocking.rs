//! `spawn_blocking`: values, panics, concurrency; on plain threads and inside fibers.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
        // The calls overlapped on the pool (timing bounds would flake on a loaded machine).
        assert!(peak.load(Ordering::SeqCst) > 1);
    });
}
