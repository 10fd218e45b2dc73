//! `Runtime`: a set of worker threads running fibers; its builder; the global default runtime.
mod panic_note;
pub(crate) mod spawn;

use std::io;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle as ThreadHandle;

use crossbeam_deque::Worker as Deque;

use crate::coro::stack;
use crate::monitor::metrics::{self, Metrics};
use crate::monitor::watchdog::{self, ReportHandler, Watchdog, WatchdogReport};
use crate::scheduler::spare::Spares;
use crate::scheduler::{context, worker, Handle};
use crate::task::join::JoinHandle;
use crate::util::steal::steal_with;
use spawn::{run_borrowed, spawn_in};

/// The default virtual stack size of a fiber: 256 KiB.
///
/// Only the pages a fiber touches are resident (one page for a fiber that sleeps), so the size is
/// address space, not memory. It is chosen from measurement with a wide margin:
/// `cargo run --release --example stack_depth` finds that formatting, std file I/O and a caught
/// panic fit in 16 KiB, and a panic whose hook prints a symbolised backtrace in 28 KiB. The margin
/// (about 9×) is there for user code (recursion, buffers on the stack) and because an overflow of
/// an unguarded stack is detected only after the fact (see docs/caveats.md).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// The smallest stack size a fiber may have.
pub const MIN_STACK_SIZE: usize = stack::MIN_STACK_SIZE;
/// The largest stack size a fiber may have.
pub const MAX_STACK_SIZE: usize = stack::MAX_STACK_SIZE;
/// The most worker threads a runtime may have.
pub const MAX_WORKER_THREADS: usize = 1024;

/// A runtime: worker threads that run fibers, with their reactor and timers.
///
/// Dropping a runtime shuts it down: every fiber it started is unwound (its destructors run),
/// unstarted fibers are dropped (their join handles return `Err`), and the worker threads are
/// joined.
pub struct Runtime {
    shared: Arc<Handle>,
    threads: Vec<ThreadHandle<()>>,
    watchdog: Option<Watchdog>,
}

/// Configures and builds a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    stack_size: usize,
    thread_name: String,
    /// `None`: not set (`FIBER_WATCHDOG_MS`, else the default); `Some(None)`: off.
    watchdog: Option<Option<std::time::Duration>>,
    on_watchdog_report: Option<ReportHandler>,
    /// `None`: as many as `worker_threads`.
    spare_workers: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available CPU, [`DEFAULT_STACK_SIZE`].
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "fiber-worker".into(),
            watchdog: None,
            on_watchdog_report: None,
            spare_workers: None,
        }
    }

    /// Number of worker threads (default: `std::thread::available_parallelism()`).
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n);
        self
    }

    /// Default stack size of the runtime's fibers, in bytes (rounded up to whole pages).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// Name prefix of the worker threads (`<name>-<index>`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// The watchdog's threshold: a fiber that holds its worker longer than this without
    /// switching is reported once (docs/observability.md, "Watchdog"); `None` (or a zero
    /// threshold) turns the watchdog off, and with it the spare workers. If not called, the
    /// environment variable `FIBER_WATCHDOG_MS` sets it (milliseconds, `0`: off), else it is
    /// [`WATCHDOG_THRESHOLD`](crate::WATCHDOG_THRESHOLD) (100 ms).
    pub fn watchdog(mut self, threshold: Option<std::time::Duration>) -> Builder {
        self.watchdog = Some(threshold.filter(|t| !t.is_zero()));
        self
    }

    /// Sends watchdog reports to `handler` (called on the watchdog's thread) instead of writing
    /// them to stderr. It should return promptly: dropping the runtime waits for that thread.
    pub fn on_watchdog_report(
        mut self,
        handler: impl Fn(&WatchdogReport) + Send + Sync + 'static,
    ) -> Builder {
        self.on_watchdog_report = Some(ReportHandler(Arc::new(handler)));
        self
    }

    /// How many spare workers the watchdog may start, one at a time, when every worker is held
    /// by a fiber past the threshold while unstarted fibers wait (docs/observability.md). Default:
    /// as many as [`worker_threads`](Builder::worker_threads); `0`: none. A started spare stays
    /// until the runtime is dropped. Without a watchdog there are none.
    pub fn spare_workers(mut self, n: usize) -> Builder {
        self.spare_workers = Some(n);
        self
    }

    /// Builds the runtime and starts its workers.
    ///
    /// Errors (`InvalidInput`) on zero or more than [`MAX_WORKER_THREADS`] workers and on a stack
    /// size outside [`MIN_STACK_SIZE`]..=[`MAX_STACK_SIZE`]; otherwise on OS failures.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.worker_threads {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers == 0 || workers > MAX_WORKER_THREADS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "worker_threads must be between 1 and {MAX_WORKER_THREADS} (got {workers})"
                ),
            ));
        }
        let stack_size = validate_stack_size(self.stack_size)?;
        if self.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread_name must not contain NUL bytes (it becomes the OS thread name)",
            ));
        }
        crate::coro::overflow::install_handler();
        panic_note::install();
        let threshold = self.watchdog.unwrap_or_else(watchdog::threshold_from_env);
        // With a watchdog, spare slots (as many as workers unless set): it starts one when every
        // worker is held (scheduler/spare.rs).
        let spares = match threshold {
            Some(_) => self
                .spare_workers
                .unwrap_or(workers)
                .min(MAX_WORKER_THREADS),
            None => 0,
        };
        let mut deques: Vec<Deque<Arc<crate::task::Task>>> =
            (0..workers + spares).map(|_| Deque::new_lifo()).collect();
        let stealers = deques.iter().map(Deque::stealer).collect();
        let spare_deques = Spares::new(deques.split_off(workers), self.thread_name.clone());
        let (shared, pollers) = Handle::new(stealers, workers, spare_deques, stack_size)?;
        let shared = Arc::new(shared);
        let source: Arc<dyn crate::observe::registry::Source> = shared.clone();
        crate::observe::registry::add_runtime(Arc::downgrade(&source));
        drop(source);
        crate::observe::signal::install_from_env();
        let mut threads = Vec::with_capacity(workers);
        for (index, (deque, poller)) in deques.into_iter().zip(pollers).enumerate() {
            let shared2 = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || worker::run(shared2, index, deque, poller));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(err) => {
                    shared.shut_down();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(err);
                }
            }
        }
        let mut runtime = Runtime {
            shared,
            threads,
            watchdog: None,
        };
        if let Some(threshold) = threshold {
            // On failure the runtime is dropped, which shuts its workers down.
            runtime.watchdog = Some(Watchdog::start(
                runtime.shared.clone(),
                threshold,
                self.on_watchdog_report,
                &self.thread_name,
            )?);
        }
        Ok(runtime)
    }
}

/// Checks a requested stack size and rounds it up to whole pages.
pub(crate) fn validate_stack_size(bytes: usize) -> io::Result<usize> {
    if bytes < MIN_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack size {bytes} bytes is below the minimum of {MIN_STACK_SIZE} bytes (fiber::MIN_STACK_SIZE)"),
        ));
    }
    if bytes > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack size {bytes} bytes is above the maximum of {MAX_STACK_SIZE} bytes (fiber::MAX_STACK_SIZE)"),
        ));
    }
    Ok(stack::round_to_pages(bytes))
}

impl Runtime {
    /// A runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Spawns a fiber on this runtime. Panics, as `std::thread::spawn` does, if the runtime cannot
    /// take it (see [`crate::Builder::spawn_on`] for the fallible form).
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let site = std::panic::Location::caller();
        spawn_in(self.shared.clone(), None, site, None, f, None)
            .unwrap_or_else(|err| panic!("failed to spawn fiber: {err}"))
    }

    /// Runs `f` as a fiber on this runtime and blocks the calling thread until it returns; a panic
    /// in `f` resumes in the caller. Called from a fiber, it parks only that fiber.
    ///
    /// `f` may borrow from the caller: the call does not return before `f` has finished.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let result = run_borrowed(&self.shared, f);
        match result {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// A snapshot of this runtime's counters and gauges (docs/observability.md, "Metrics").
    pub fn metrics(&self) -> Metrics {
        metrics::collect(&self.shared)
    }

    pub(crate) fn shared(&self) -> &Arc<Handle> {
        &self.shared
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.shut_down();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.stop();
        }
        let on_own_worker =
            context::with_worker(|w| Arc::ptr_eq(w.shared(), &self.shared)).unwrap_or(false);
        if on_own_worker {
            // Joining would wait for ourselves; the workers finish the shutdown on their own.
            return;
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // No spare starts after the watchdog stopped.
        for thread in self.shared.spares.take_threads() {
            let _ = thread.join();
        }
        // Every worker has exited: what is left in the injector never ran.
        while let Some(task) = steal_with(|| self.shared.injector.steal()) {
            task.cancel_unrun();
            self.shared
                .finished_outside
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.shared.active())
            .finish()
    }
}

/// The runtime that `fiber::spawn` uses outside any runtime, started on first use.
pub(crate) fn default_runtime() -> &'static Runtime {
    static DEFAULT: OnceLock<Runtime> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        Builder::new()
            .thread_name("fiber-default")
            .build()
            .unwrap_or_else(|err| panic!("failed to start the default fiber runtime: {err}"))
    })
}

/// The runtime of the calling fiber or worker, else the default runtime.
pub(crate) fn current_or_default() -> Arc<Handle> {
    context::with_worker(|w| w.shared().clone())
        .unwrap_or_else(|| default_runtime().shared().clone())
}

/// The metrics of the calling fiber's runtime, else of the default runtime (which this starts if
/// it is not running): see [`Runtime::metrics`].
pub fn current_metrics() -> Metrics {
    metrics::collect(&current_or_default())
}

/// Runs `f` on the default runtime and blocks until it returns, as [`Runtime::block_on`].
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    match context::with_worker(|w| w.shared().clone()) {
        Some(shared) => match run_borrowed(&shared, f) {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        None => default_runtime().block_on(f),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::task::{context, park::park, Wakeup};

    /// A notifier that took a parked fiber's run token (under its lock) may deliver the wake-up
    /// after the fiber's home worker finished its shutdown. Before the fix the task stayed in that
    /// worker's inbox for good, and with it the runtime's shared state (a reference cycle): its
    /// reactors' fds and its memory leaked with every such runtime drop.
    #[test]
    fn a_wake_up_delivered_after_shutdown_does_not_keep_the_runtime_alive() {
        let rt = super::Runtime::builder().worker_threads(1).build().unwrap();
        let shared = Arc::downgrade(&rt.shared);
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(move || {
            tx.send(context::task().expect("in a fiber")).unwrap();
            loop {
                park();
            }
        });
        let task = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // Take the run token as a notifier does, once the fiber is parked.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let wakeup = loop {
            match task.prepare_wakeup() {
                wakeup @ Wakeup::Requeue(_) => break wakeup,
                Wakeup::Unpark(_) => {
                    assert!(
                        std::time::Instant::now() < give_up,
                        "the fiber never parked"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        drop(rt); // the worker unwinds the fiber anyway, drains its inbox and exits
        wakeup.wake(); // too late for the inbox's last drain
        drop(task);
        assert!(
            shared.upgrade().is_none(),
            "a late wake-up kept the dropped runtime's shared state alive"
        );
    }
}
