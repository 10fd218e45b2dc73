//! Helpers shared by the integration tests: a watchdog for anything that could hang, counting
//! drop guards, and load scaling for debug builds.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Runs `f` on a fresh OS thread and returns its result; a panic in `f` is resumed here.
///
/// If `f` has not finished after `secs` seconds, panics with a message naming the test, so a lost
/// wake-up or a deadlock fails the test instead of hanging the whole suite. The stuck thread is
/// left behind (it cannot be killed); the test binary exits regardless.
pub(crate) fn watchdog<T, F>(secs: u64, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watched:{test}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .expect("could not start the watched thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "WATCHDOG: `{test}` did not finish within {secs} s \
             (lost wake-up, deadlock or starvation?)"
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            unreachable!("the watched thread always sends its result")
        }
    }
}

/// `release` in an optimised build, `debug` otherwise: scales stress loads so that the debug
/// suite stays quick.
pub(crate) fn scaled(release: usize, debug: usize) -> usize {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// Counts how many of its guards were dropped.
#[derive(Clone, Default)]
pub(crate) struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub(crate) fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A guard that increments this counter when dropped.
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    /// Guards dropped so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Increments its [`DropCounter`] when dropped (also while unwinding).
pub(crate) struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A runtime with `n` workers whose threads are named `<name>-<index>`.
pub(crate) fn runtime(n: usize, name: &str) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(n)
        .thread_name(name)
        .build()
        .expect("could not build a runtime")
}

/// The panic payload as text (`&str` or `String` payloads), for asserting on messages.
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// Polls `cond` until it holds or `secs` seconds pass; returns whether it held.
pub(crate) fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Alias of [`scaled`] used by the sync tests.
pub(crate) fn scale(release: usize, debug: usize) -> usize {
    scaled(release, debug)
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

/// A runtime with `workers` workers for the sync tests.
pub(crate) fn sync_runtime(workers: usize) -> fiber::Runtime {
    runtime(workers, "sync")
}

/// Runs `f(i)` in `n` fibers on a fresh runtime with `workers` workers, and waits for them.
pub(crate) fn fibers<F: Fn(usize) + Sync>(workers: usize, n: usize, f: F) {
    let rt = sync_runtime(workers);
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
    let rt = sync_runtime(2);
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
