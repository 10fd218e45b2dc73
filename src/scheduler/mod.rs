//! The M:N scheduler: worker threads, run queues, stealing, and idle sleep.
//!
//! Queues (see `README.md` for the full protocol):
//! - per worker, a stealable deque of *unstarted* fibers (spawned on that worker), LIFO for the
//!   owner (depth-first: few stacks live at once) and FIFO for thieves;
//! - per worker, a local run queue and a one-slot `next` of *started* fibers, which never leave
//!   their worker (carrier affinity);
//! - per worker, an `inbox` of started fibers woken from other threads;
//! - one global injector of unstarted fibers spawned from outside the workers.
pub(crate) mod context;
pub(crate) mod idle;
pub(crate) mod spare;
pub(crate) mod stats;
pub(crate) mod worker;

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_deque::{Injector, Stealer};

use crate::coro::stack::StackPool;
use crate::driver::{Poller, Reactor};
use crate::observe::registry::{Registry, Source};
use crate::task::{Schedule, Task};
use crate::util::steal::steal_with;
use idle::Idle;
use spare::Spares;
use stats::WorkerStats;

/// What other threads may touch of one worker.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Arc<Task>>,
    pub(crate) inbox: Injector<Arc<Task>>,
    pub(crate) sleep: AtomicU8,
    /// How many started fibers the worker carries (written by it, read for spawn placement).
    pub(crate) live: AtomicUsize,
    /// The shared half of the worker's own reactor: sources its fibers wait on register here,
    /// and its waker interrupts the worker's sleep (the worker owns the `Poller`). Set at build,
    /// or, for a spare slot, when the spare starts (`spare.rs`).
    pub(crate) reactor: OnceLock<Reactor>,
    /// Set by the worker at the end of its shutdown, before its last drain of `inbox`. From then
    /// on whoever pushes into the inbox drains it (`push_inbox`): a notifier that took a fiber's
    /// run token before the fiber was cancelled may deliver the wake-up only now, and a task left
    /// in the inbox would keep this `Handle` alive through its own reference (a cycle).
    pub(crate) exited: AtomicBool,
    /// The worker sleeps with nothing that could wake it by itself: no timer, no registered fd
    /// (for the global deadlock check, `worker::Worker::sleep`).
    pub(crate) stalled: AtomicBool,
    /// The fibers this worker started, for dumps (src/observe/registry.rs).
    pub(crate) registry: Registry,
    /// Counters and the watchdog probe this worker publishes (`stats.rs`).
    pub(crate) stats: Arc<WorkerStats>,
}

impl Remote {
    fn new(stealer: Stealer<Arc<Task>>, reactor: OnceLock<Reactor>) -> Remote {
        Remote {
            stealer,
            inbox: Injector::new(),
            sleep: AtomicU8::new(idle::RUNNING),
            live: AtomicUsize::new(0),
            reactor,
            exited: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            registry: Registry::default(),
            stats: Arc::new(WorkerStats::new()),
        }
    }

    /// The reactor of a started worker.
    #[inline]
    pub(crate) fn reactor(&self) -> &Reactor {
        self.reactor
            .get()
            .expect("a started worker has its reactor")
    }

    /// Drops every task in the inbox. Once the worker has exited they are all finished (or
    /// leaked with their coroutine), so dropping them only drops references.
    pub(crate) fn drain_inbox(&self) {
        while steal_with(|| self.inbox.steal()).is_some() {}
    }

    /// The worker's last act of shutdown: mark it exited, then empty the inbox (see `exited`).
    pub(crate) fn drain_after_exit(&self) {
        self.exited.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.drain_inbox();
    }
}

/// State shared by all workers of one runtime.
pub(crate) struct Handle {
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) injector: Injector<Arc<Task>>,
    pub(crate) idle: Idle,
    pub(crate) stacks: StackPool,
    pub(crate) shutdown: AtomicBool,
    /// Bumped by a worker each time it wakes from sleep for a reason other than its own
    /// deadlock grace period: the global deadlock check (`worker::Worker::sleep`) reports only
    /// if no worker woke during the grace period.
    pub(crate) wakeups: AtomicUsize,
    /// Fibers spawned from threads that are not workers of this runtime (each worker counts its
    /// own spawns in its `stats`), and unstarted fibers dropped after the workers exited.
    pub(crate) spawned_outside: AtomicU64,
    pub(crate) finished_outside: AtomicU64,
    /// Watchdog reports made (`monitor::watchdog`).
    pub(crate) watchdog_reports: AtomicU64,
    /// When the runtime was built: busy time is the time since, less idle time.
    pub(crate) started: std::time::Instant,
    /// Workers started (`spare.rs`): the first `active` slots of `remotes` run; the rest are
    /// spares not started.
    pub(crate) active: AtomicUsize,
    pub(crate) spares: Spares,
    pub(crate) runtime_id: u64,
}

impl Handle {
    /// The shared state of a runtime with one worker slot per stealer, and the pollers of the
    /// first `workers` (the others are spare slots, started by `start_spare`, whose deques
    /// `spares` holds).
    pub(crate) fn new(
        stealers: Vec<Stealer<Arc<Task>>>,
        workers: usize,
        spares: Spares,
        stack_size: usize,
    ) -> std::io::Result<(Handle, Vec<Poller>)> {
        let slots = stealers.len();
        let runtime = crate::driver::new_runtime_id();
        let mut pollers = Vec::with_capacity(workers);
        let remotes = stealers
            .into_iter()
            .enumerate()
            .map(|(index, stealer)| {
                let reactor = OnceLock::new();
                if index >= workers {
                    return Ok(Remote::new(stealer, reactor));
                }
                // Three fds per worker (epoll, its registry's dup, the waker's eventfd): a large
                // runtime under a low `ulimit -n` fails here, so say what failed.
                let (reactor_half, poller) = crate::driver::new_reactor(runtime).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("fiber: could not create the reactor of worker {index} (epoll and eventfd): {e}"),
                    )
                })?;
                pollers.push(poller);
                let _ = reactor.set(reactor_half);
                Ok(Remote::new(stealer, reactor))
            })
            .collect::<std::io::Result<_>>()?;
        let shared = Handle {
            remotes,
            injector: Injector::new(),
            idle: Idle::new(slots),
            stacks: StackPool::new(stack_size),
            shutdown: AtomicBool::new(false),
            wakeups: AtomicUsize::new(0),
            spawned_outside: AtomicU64::new(0),
            finished_outside: AtomicU64::new(0),
            watchdog_reports: AtomicU64::new(0),
            started: std::time::Instant::now(),
            active: AtomicUsize::new(workers),
            spares,
            runtime_id: runtime,
        };
        Ok((shared, pollers))
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Queues a new, unstarted fiber: on the calling worker's deque if it belongs to this runtime,
    /// else on the injector; then makes sure some worker will look.
    pub(crate) fn schedule_new(self: &Arc<Self>, task: Arc<Task>) {
        let mut task = Some(task);
        let mut counted = false;
        context::with_worker(|w| {
            if std::ptr::eq(&**w.shared(), &**self) {
                stats::add(&self.remotes[w.index()].stats.spawned, 1);
                counted = true;
            }
            task = w.push_new(self, task.take().expect("set above"));
        });
        if !counted {
            self.spawned_outside.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(task) = task {
            self.injector.push(task);
        }
        self.notify_work();
    }

    /// Puts a woken fiber in its home worker's inbox and makes sure that worker notices.
    fn push_inbox(&self, home: usize, task: Arc<Task>) {
        let remote = &self.remotes[home];
        remote.inbox.push(task);
        // Pairs with the fence in `Remote::drain_after_exit`: either the worker's last drain sees
        // this push, or this load sees `exited` and the push is undone here. The same fence
        // serves the sleep check of `wake_worker_fenced`.
        fence(Ordering::SeqCst);
        if remote.exited.load(Ordering::Relaxed) {
            remote.drain_inbox();
            return;
        }
        self.wake_worker_fenced(home);
    }

    /// Stealable work was added: wake a sleeping worker unless someone is already searching.
    pub(crate) fn notify_work(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.wake_worker(index);
        }
    }

    /// Makes sure worker `index` notices new work: a syscall only if it sleeps and nobody else
    /// already woke it.
    pub(crate) fn wake_worker(&self, index: usize) {
        fence(Ordering::SeqCst);
        self.wake_worker_fenced(index);
    }

    /// `wake_worker` for a caller that has just issued the `fence(SeqCst)` after publishing work.
    fn wake_worker_fenced(&self, index: usize) {
        let remote = &self.remotes[index];
        if idle::claim_wake(&remote.sleep) {
            if let Some(reactor) = remote.reactor.get() {
                reactor.wake();
            }
        }
    }

    /// Begins shutdown and wakes every worker.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        for remote in self.remotes.iter() {
            remote.sleep.store(idle::NOTIFIED, Ordering::SeqCst);
            if let Some(reactor) = remote.reactor.get() {
                reactor.wake();
            }
        }
    }
}

impl Handle {
    /// Is `scheduler` (a task's) this runtime's?
    #[inline]
    pub(crate) fn is(&self, scheduler: &Arc<dyn Schedule>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(scheduler), self as *const Handle)
    }
}

impl Source for Handle {
    fn workers(&self) -> usize {
        self.remotes.len()
    }

    fn fibers(&self, index: usize) -> Vec<Arc<Task>> {
        self.remotes[index].registry.snapshot()
    }

    fn started(&self, index: usize) -> usize {
        self.remotes[index].live.load(Ordering::Relaxed)
    }

    fn unstarted(&self) -> usize {
        self.injector.len() + self.remotes.iter().map(|r| r.stealer.len()).sum::<usize>()
    }
}

impl Schedule for Handle {
    /// A started fiber became runnable (unpark, I/O readiness): it goes to its home worker,
    /// straight into that worker's `next` slot when called on it, else into its inbox.
    fn wake(&self, task: Arc<Task>) {
        crate::task::trace::unparked(task.id.as_u64());
        let home = task.home.load(Ordering::Relaxed) as usize;
        let mut task = Some(task);
        context::with_worker(|w| {
            let t = task.take().expect("set above");
            task = w.push_woken(home, t).and_then(|t| {
                if !std::ptr::eq(&**w.shared(), self) {
                    return Some(t);
                }
                // Another worker of our runtime: the calling worker's own reference keeps the
                // runtime (`self`) alive past the push.
                self.push_inbox(home, t);
                None
            });
        });
        let Some(task) = task else { return };
        // Not on a worker of this runtime: once in the inbox the task (and its reference to the
        // runtime, which may be what `self` is borrowed from) may be gone at any moment, so hold
        // one of our own (see `Schedule::wake`).
        let _keep = task.scheduler.clone();
        self.push_inbox(home, task);
    }

    fn should_yield(&self) -> bool {
        context::with_worker(|w| !self.is_shutdown() && w.coop_work_waits()).unwrap_or(false)
    }
}
