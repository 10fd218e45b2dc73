//! Shared helpers for the sync tests.
#![allow(dead_code)]
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it has not finished within `secs` seconds
/// (a hang usually means a lost wake-up or a deadlock). A panic inside `f` is propagated.
pub(crate) fn watchdog<F: FnOnce() + Send + 'static>(secs: u64, f: F) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!(),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: test body still running after {secs} s (deadlock or lost wake-up?)")
        }
    }
}

/// `release` in optimised builds, `debug` otherwise (exact counts are asserted either way).
pub(crate) fn scale(release: usize, debug: usize) -> usize {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// Runs `f(i)` on `n` OS threads and joins them.
pub(crate) fn threads<F: Fn(usize) + Sync>(n: usize, f: F) {
    std::thread::scope(|s| {
        for i in 0..n {
            let f = &f;
            s.spawn(move || f(i));
        }
    });
}
