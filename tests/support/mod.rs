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

/// `runtime` without spare workers, for a test that shows a worker blocked for good: with spares,
/// the watchdog would start one and the fibers not started yet would run there
/// (docs/observability.md, "Watchdog").
pub(crate) fn runtime_without_spares(n: usize, name: &str) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(n)
        .thread_name(name)
        .spare_workers(0)
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

// ---- net/fs tests: run one body on plain threads and inside fibers ---------------------------

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
    Thread(std::thread::JoinHandle<T>),
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
            Mode::Thread => Task::Thread(std::thread::spawn(f)),
            Mode::Fiber => Task::Fiber(fiber::spawn(f)),
        }
    }
}

/// Runs `body` inside a fiber of a fresh 2-worker runtime.
pub(crate) fn in_fiber<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    let rt = runtime(2, "net-test");
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

// ---- sync tests: OS threads, fibers, and both at once ------------------------------------------

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

// ---- shutdown tests: fibers parked in a known order ---------------------------------------------

/// A runtime with a single worker: fibers start, park and are unwound at shutdown in a known
/// order (the order they started), which the hand-off-on-shutdown tests rely on.
pub(crate) fn one_worker_runtime() -> fiber::Runtime {
    runtime(1, "shutdown-order")
}

/// Spawns `f` on `rt`, which must have a single worker, and returns once `f` has started and then
/// suspended (parked in whatever it waits on). Deterministic: a fiber runs until it suspends, so
/// the empty `block_on` fiber issued after `f` was seen to start can run only once `f` has parked.
pub(crate) fn spawn_parked(
    rt: &fiber::Runtime,
    f: impl FnOnce() + Send + 'static,
) -> fiber::JoinHandle<()> {
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = started.clone();
    let handle = rt.spawn(move || {
        flag.store(true, Ordering::SeqCst);
        f();
    });
    assert!(
        eventually(30, || started.load(Ordering::SeqCst)),
        "the fiber did not start"
    );
    rt.block_on(|| ());
    handle
}

/// Ambiguous for `T: Send`, unambiguous otherwise (the trick of `static_assertions`).
pub(crate) trait AmbiguousIfSend<A> {}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

/// Compiles only if `T` is not `Send`: call as `assert_not_send::<T, _>()`.
pub(crate) fn assert_not_send<T: ?Sized + AmbiguousIfSend<A>, A>() {}

/// Runs the test `name` of this test binary in a child process with `CHILD_ENV` set (the test
/// returns at once without it) and `FIBER_HOOK=0`, under a watchdog, and asserts that it passed:
/// how the hook tests show what happens with the hooks switched off at run time.
pub(crate) fn run_hooks_off_child(name: &str, child_env: &'static str) {
    let exe = std::env::current_exe().unwrap();
    let name = name.to_owned();
    let out = watchdog(60, move || {
        std::process::Command::new(exe)
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(child_env, "1")
            .env("FIBER_HOOK", "0")
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
