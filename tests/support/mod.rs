//! Shared test helpers: watchdogs and "run this body on a plain thread and inside a fiber".
#![allow(dead_code)]
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on a new OS thread; fails the test if it has not finished within `secs`.
pub(crate) fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            r
        })
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join().unwrap() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: test body still running after {secs} s")
        }
    }
}

/// Where a test body runs: on plain OS threads, or inside fibers of a runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plain OS threads: sockets wait in poll(2).
    Thread,
    /// Fibers on a 2-worker runtime: sockets park the fiber and the reactor wakes it.
    Fiber,
}

/// A helper task spawned by a test body, in the body's mode.
pub(crate) enum Task<T> {
    Thread(thread::JoinHandle<T>),
    Fiber(fiber::JoinHandle<T>),
}

impl<T> Task<T> {
    /// Waits for the task; re-raises its panic.
    pub(crate) fn join(self) -> T {
        let r = match self {
            Task::Thread(h) => h.join(),
            Task::Fiber(h) => h.join(),
        };
        match r {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Mode {
    /// Spawns a helper task (a thread, or a fiber) in this mode.
    pub(crate) fn spawn<T: Send + 'static>(
        self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        match self {
            Mode::Thread => Task::Thread(thread::spawn(f)),
            Mode::Fiber => Task::Fiber(fiber::spawn(f)),
        }
    }
}

/// Runs `body` inside a fiber of a fresh 2-worker runtime.
pub(crate) fn in_fiber<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(|| {
        assert!(fiber::is_fiber());
        body()
    })
}

/// Runs `body` in every mode, each under a 30 s watchdog.
pub(crate) fn both(body: fn(Mode)) {
    both_timeout(30, body)
}

/// Runs `body` in every mode, each under a watchdog of `secs`.
pub(crate) fn both_timeout(secs: u64, body: fn(Mode)) {
    watchdog(secs, move || body(Mode::Thread));
    watchdog(secs, move || in_fiber(|| body(Mode::Fiber)));
}

/// Number of open fds of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
