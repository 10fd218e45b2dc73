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

/// A runtime with `workers` worker threads.
pub(crate) fn runtime(workers: usize) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Runs `f(i)` in `n` fibers on a fresh runtime with `workers` workers, and waits for them.
pub(crate) fn fibers<F: Fn(usize) + Sync>(workers: usize, n: usize, f: F) {
    let rt = runtime(workers);
    rt.block_on(|| {
        fiber::scope(|s| {
            for i in 0..n {
                let f = &f;
                s.spawn(move || f(i));
            }
        })
    });
}

/// Runs `f(i)` for `i in 0..n_fibers` in fibers on a 2-worker runtime and, at the same time, for
/// `i in n_fibers..n_fibers + n_threads` on OS threads: the same primitive shared by both worlds.
pub(crate) fn mixed<F: Fn(usize) + Sync>(n_fibers: usize, n_threads: usize, f: F) {
    let rt = runtime(2);
    std::thread::scope(|s| {
        for i in 0..n_threads {
            let f = &f;
            s.spawn(move || f(n_fibers + i));
        }
        rt.block_on(|| {
            fiber::scope(|fs| {
                for i in 0..n_fibers {
                    let f = &f;
                    fs.spawn(move || f(i));
                }
            })
        });
    });
}
