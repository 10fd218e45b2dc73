//! The worker loop.
//!
//! # Design
//!
//! A worker is one OS thread that runs fibers until its runtime shuts down. Each scheduling *tick*
//! it picks one fiber and resumes it until the fiber yields, waits, or finishes:
//!
//! 1. every [`MAINTENANCE_INTERVAL`] ticks: fire due timers, move the inbox to the run queue, poll
//!    its own reactor without blocking, and take one fiber from
//!    the global injector and one from the FIFO end of its own deque, so that neither a busy
//!    run queue nor a LIFO deque can starve older work;
//! 2. the `next` slot (the fiber this worker just woke: messaging locality), at most
//!    [`MAX_NEXT_STREAK`] times in a row, so that two fibers waking each other cannot starve a third;
//! 3. the local run queue (started fibers: yields and local wake-ups), then the inbox;
//! 4. on a worker with I/O sources, the queue of long-running fibers (their last slice took
//!    [`LONG_SLICE`] or more, and every yield): after the run queue, and first once they waited
//!    [`MAX_LONG_WAIT`];
//! 5. its own deque of unstarted fibers (LIFO: depth-first spawn trees keep few stacks live);
//! 6. idle: fire timers, then search — steal a batch from the injector or another worker's deque,
//!    spinning briefly and polling its reactor before each yield — then sleep in its reactor's
//!    `epoll_wait` until woken or the next own timer is due.
//!
//! A fiber that never blocks still lets this loop run: fiber I/O and sync operations spend a
//! cooperative budget, and when it is spent the fiber does the timer, inbox and reactor part of
//! step 1 itself and yields if that left other work here ([`Worker::coop_work_waits`], `coop.rs`, README.md).
//!
//! The worker is reached from its fibers through the thread-local context (spawn pushes to its
//! deque, unpark to its `next` slot, sleep inserts a timer), while the loop itself is suspended in
//! `resume`. So every field that fibers touch is a `Cell`/`RefCell`, the loop only ever holds `&self`,
//! and no `RefCell` borrow is held across a resume.
//!
//! # Shutdown
//!
//! When the runtime is dropped each worker leaves its loop, then resumes every fiber it started
//! with `Resume::Cancel`: the fiber unwinds from its suspension point (destructors run) and
//! finishes. Queued unstarted fibers are cancelled unrun; their join handles report an error.
//! Last, the worker hands its stack cache back and frees the runtime's stack pool
//! (`StackPool::free_unused`), so the stack memory is unmapped before `Runtime::drop` returns.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker as Deque;

use super::context::EnterWorker;
use super::idle;
use super::stats::{self, WorkerStats};
use super::Handle;
use crate::coro::stack::{self, FiberStack};
use crate::coro::{Coro, Outcome, Resume, Suspend};
use crate::driver::timer::{self, TimerAction};
use crate::driver::{Poller, Reactor};
use crate::observe::deadlock;
use crate::task::join::THREAD_JOINERS;
use crate::task::reason::{self, ON_CPU};
use crate::task::{context, coop, trace, Stage, Task};
use crate::util::rng::FastRng;
use crate::util::steal::steal_with;

/// Ticks between maintenance passes (a prime, as the scheduler literature likes).
const MAINTENANCE_INTERVAL: u32 = 61;
/// How many more started fibers than another worker this one may carry before it places new
/// fibers on the injector instead of its own deque.
const BALANCE_SLACK: usize = 16;
/// How often in a row the `next` slot may be preferred to the run queue.
const MAX_NEXT_STREAK: u32 = 3;
/// A fiber whose slice on the CPU lasted this long joins the queue of long-running fibers until
/// a later slice is shorter (slices are timed only on workers with I/O sources: `Worker::timed`).
/// An echo or a small request takes 5-50 µs of CPU here; a millisecond of computation is what
/// should not make each of them wait.
const LONG_SLICE: Duration = Duration::from_micros(100);
/// How long long-running fibers may wait while the run queue goes first: short fibers that keep
/// waking cannot starve them (with 1 ms slices they keep at least a third of the worker).
const MAX_LONG_WAIT: Duration = Duration::from_millis(2);
/// Rounds of waiting for work before going to sleep. A searching worker steals in every round
/// with one other worker, in one round of every `workers - 1` with more (each steal visits all of
/// them), so the stealing effort per idle spell stays bounded.
const IDLE_ROUNDS: usize = 64;
/// How long a worker must stay idle before it gives surplus stack memory back.
const TRIM_DELAY: Duration = Duration::from_millis(100);
/// How often a cancelled fiber is resumed in one pass before the next fiber's turn.
const CANCEL_ATTEMPTS: usize = 4;
/// Passes over the fibers that refuse to unwind before their stacks are leaked.
const CANCEL_PASSES: usize = 32;
/// `Task::live_index` of a started fiber not yet published to the registry: its position in
/// `Worker::started` with this bit set (else its position in the registry).
const UNPUBLISHED: u32 = 1 << 31;

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Handle>,
    deque: Deque<Arc<Task>>,
    runq: RefCell<VecDeque<Arc<Task>>>,
    /// Runnable fibers whose last slice was long (`LONG_SLICE`), and yields, on a timed worker:
    /// served after the run queue, and before it once they have waited `MAX_LONG_WAIT`.
    long: RefCell<VecDeque<Arc<Task>>>,
    /// Since when the long-running fibers have waited: the end of the last long slice, or when
    /// their queue became non-empty (a slice mark: no clock read of its own).
    long_turn: Cell<Instant>,
    next: Cell<Option<Arc<Task>>>,
    next_streak: Cell<u32>,
    /// Slices are timed (one clock read per resume) while this worker's reactor has I/O
    /// sources: a server, where one CPU-heavy request would otherwise delay every other
    /// connection of this worker. Refreshed at maintenance ticks and after idling.
    timed: Cell<bool>,
    /// When the current slice began (the previous slice's end, or the end of idling).
    slice_mark: Cell<Instant>,
    tick: Cell<u32>,
    searching: Cell<bool>,
    /// This worker's half of its reactor: only it polls (see `driver`). Borrowed only while
    /// polling, never across a resume. (Its timers are a thread-local: `driver::timer`.)
    poller: RefCell<Poller>,
    stacks: RefCell<Vec<FiberStack>>,
    /// Fibers this worker started since its last registry pass (src/observe/registry.rs).
    started: RefCell<Vec<Arc<Task>>>,
    /// Published fibers that finished since the last pass: removed from the registry by the next.
    finished: RefCell<Vec<Arc<Task>>>,
    /// How many fibers this worker started that have not finished.
    live: Cell<usize>,
    /// The worker's coarse clock for "since" stamps (`reason::now_stamp`), read at maintenance
    /// ticks and after sleeping (`tick_stamp`).
    stamp: Cell<u32>,
    /// `stamp` with the on-CPU bit: what a resume stores (one load and one store per switch).
    stamp_running: Cell<u32>,
    rng: FastRng,
    /// What this worker publishes (shared with its `Remote`): one pointer away on the switch.
    stats: Arc<WorkerStats>,
    /// Before this instant a budget check does not poll the reactor (`coop_work_waits`).
    coop_poll_at: Cell<Instant>,
}

/// Runs worker `index` of `shared` on the calling thread until shutdown.
pub(crate) fn run(shared: Arc<Handle>, index: usize, deque: Deque<Arc<Task>>, poller: Poller) {
    crate::coro::overflow::ensure_alt_stack();
    let _reactor = crate::driver::context::enter(shared.remotes[index].reactor().handle.clone());
    let stats = shared.remotes[index].stats.clone();
    let worker = Worker {
        index,
        shared,
        deque,
        runq: RefCell::new(VecDeque::new()),
        long: RefCell::new(VecDeque::new()),
        long_turn: Cell::new(Instant::now()),
        next: Cell::new(None),
        next_streak: Cell::new(0),
        timed: Cell::new(false),
        slice_mark: Cell::new(Instant::now()),
        tick: Cell::new(0),
        searching: Cell::new(false),
        poller: RefCell::new(poller),
        stacks: RefCell::new(Vec::new()),
        started: RefCell::new(Vec::new()),
        finished: RefCell::new(Vec::new()),
        live: Cell::new(0),
        stamp: Cell::new(reason::now_stamp()),
        stamp_running: Cell::new(reason::now_stamp() | ON_CPU),
        rng: FastRng::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
        stats,
        coop_poll_at: Cell::new(Instant::now()),
    };
    let _enter = EnterWorker::new(&worker);
    // SAFETY: gettid has no preconditions; it returns the calling thread's kernel id.
    let tid = unsafe { libc::gettid() };
    worker.stats().tid.store(tid, Ordering::Relaxed);
    worker.run();
    worker.shut_down();
}

impl Worker {
    pub(crate) fn shared(&self) -> &Arc<Handle> {
        &self.shared
    }

    /// This worker's index in its runtime.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The counters and watchdog probe this worker publishes.
    #[inline]
    fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The shared half of this worker's own reactor.
    fn reactor(&self) -> &Reactor {
        self.shared.remotes[self.index].reactor()
    }

    /// The loop, in one of two compiled variants: with slices timed (`TIMED`, while the reactor
    /// has I/O sources) or without, so that a worker without I/O pays nothing for the
    /// long-running fibers' queue. The variant changes at a maintenance tick or after idling.
    fn run(&self) {
        loop {
            let shutdown = if self.timed.get() {
                self.run_variant::<true>()
            } else {
                self.run_variant::<false>()
            };
            if shutdown {
                return;
            }
        }
    }

    /// Runs fibers until shutdown (true) or until slice timing is switched (false).
    fn run_variant<const TIMED: bool>(&self) -> bool {
        loop {
            if let Some(task) = self.next_task::<TIMED>() {
                self.run_task::<TIMED>(task);
                continue;
            }
            // `next_task` returns `None` on a maintenance tick that sees shutdown, however busy,
            // or that switched the timing.
            if self.shared.is_shutdown() {
                return true;
            }
            if self.timed.get() != TIMED {
                return false;
            }
            let found = self.idle();
            if self.refresh_timing(true) != TIMED {
                if let Some(task) = found {
                    self.runq.borrow_mut().push_front(task);
                }
                return false;
            }
            if let Some(task) = found {
                self.run_task::<TIMED>(task);
            } else if self.shared.is_shutdown() {
                // Woken, possibly by a wake-up that a cancelled fiber caused: once shutdown has
                // begun, fibers only unwind; none resumes its normal course.
                return true;
            }
        }
    }

    /// Picks the next fiber from the local queues (steps 1-5 of the module docs).
    #[inline]
    fn next_task<const TIMED: bool>(&self) -> Option<Arc<Task>> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % MAINTENANCE_INTERVAL == 0 {
            if self.shared.is_shutdown() || self.refresh_timing(false) != TIMED {
                return None;
            }
            if let Some(task) = self.maintenance() {
                return Some(task);
            }
        }
        if let Some(task) = self.next.take() {
            let streak = self.next_streak.get();
            if streak < MAX_NEXT_STREAK {
                self.next_streak.set(streak + 1);
                return Some(task);
            }
            self.runq.borrow_mut().push_back(task);
        }
        self.next_streak.set(0);
        let short = self.runq.borrow_mut().pop_front();
        if let Some(task) = short {
            if TIMED && self.long_waits() {
                return Some(self.short_or_long(task));
            }
            return Some(task);
        }
        if self.drain_inbox() {
            if let Some(task) = self.runq.borrow_mut().pop_front() {
                return Some(task);
            }
        }
        if TIMED {
            if let Some(task) = self.pop_long() {
                return Some(task);
            }
        }
        self.deque.pop()
    }

    /// Long-running fibers wait: `short` (from the run queue) goes first unless they have
    /// waited `MAX_LONG_WAIT` since their last turn.
    #[cold]
    fn short_or_long(&self, short: Arc<Task>) -> Arc<Task> {
        if self.slice_mark.get().duration_since(self.long_turn.get()) < MAX_LONG_WAIT {
            return short;
        }
        self.runq.borrow_mut().push_front(short);
        self.pop_long().expect("long_waits saw a fiber")
    }

    /// The oldest long-running fiber.
    #[inline(never)]
    fn pop_long(&self) -> Option<Arc<Task>> {
        self.long.borrow_mut().pop_front()
    }

    /// Queues a fiber whose last slice was long.
    #[inline(never)]
    fn push_long(&self, task: Arc<Task>) {
        let mut long = self.long.borrow_mut();
        if long.is_empty() {
            self.long_turn.set(self.slice_mark.get());
        }
        long.push_back(task);
    }

    /// Does a woken fiber of this worker go to the long-running fibers' queue (timed, and its
    /// last slice was long)?
    #[inline]
    fn files_as_long(&self, task: &Task) -> bool {
        self.timed.get() && task.long_slice.get()
    }

    #[inline]
    fn long_waits(&self) -> bool {
        !self.long.borrow().is_empty()
    }

    /// Queues a runnable started fiber of this worker: the run queue, or (timed) the
    /// long-running fibers' queue if its last slice was long.
    #[inline]
    fn requeue(&self, task: Arc<Task>) {
        if self.files_as_long(&task) {
            self.push_long(task);
        } else {
            self.runq.borrow_mut().push_back(task);
        }
    }

    /// Turns slice timing on while the reactor has I/O sources; `restart` begins a new slice now
    /// (after idling: the time waited is nobody's slice). Returns whether timing is on.
    fn refresh_timing(&self, restart: bool) -> bool {
        let on = self.reactor().has_sources();
        let was = self.timed.replace(on);
        if on && (restart || !was) {
            self.slice_mark.set(Instant::now());
        }
        if was && !on {
            // The untimed loop serves only the run queue.
            let mut long = self.long.borrow_mut();
            self.runq.borrow_mut().extend(long.drain(..));
        }
        on
    }

    /// Ends the slice of `task` (timed workers only): marks it long-running or not; true if the
    /// slice was long.
    #[inline(never)]
    fn end_slice(&self, task: &Task) -> bool {
        let now = Instant::now();
        let long = now.duration_since(self.slice_mark.get()) >= LONG_SLICE;
        self.slice_mark.set(now);
        task.long_slice.set(long);
        if long {
            self.long_turn.set(now);
            stats::add(&self.stats().long_slices, 1);
        }
        long
    }

    /// After a long slice: what became ready meanwhile (timers, wake-ups from other threads,
    /// I/O) is queued now, so that short fibers go before the long-running ones queued earlier
    /// instead of waiting for the next maintenance tick (61 ticks: up to 61 long slices).
    #[cold]
    fn catch_up(&self) {
        if self.shared.is_shutdown() {
            return;
        }
        self.fire_timers();
        self.drain_inbox();
        self.poll_now();
    }

    #[cold]
    fn maintenance(&self) -> Option<Arc<Task>> {
        self.tick_stamp();
        self.publish();
        self.fire_timers();
        self.publish_timers();
        self.drain_inbox();
        self.poll_now();
        // Fairness: the oldest unstarted fiber of the injector, then of our own LIFO deque, go
        // before the queues that could otherwise keep them waiting.
        self.oldest_unstarted()
    }

    /// The oldest unstarted fiber of the injector, else the oldest of this worker's deque.
    fn oldest_unstarted(&self) -> Option<Arc<Task>> {
        // `steal` on an empty queue costs a fence; `is_empty` is two loads.
        if !self.shared.injector.is_empty() {
            if let Some(task) = steal_with(|| self.shared.injector.steal()) {
                return Some(task);
            }
        }
        let own = &self.shared.remotes[self.index].stealer;
        if own.is_empty() {
            return None;
        }
        steal_with(|| own.steal())
    }

    /// For a fiber whose cooperative budget is spent (coop.rs), called on that fiber: does what
    /// this loop would do between ticks — fires due timers, drains the inbox, polls the reactor
    /// without blocking (at most once per [`coop::POLL_INTERVAL`]) — and tells whether another
    /// fiber can now run here. If only unstarted fibers wait, the oldest moves to the run queue
    /// (the owner would otherwise pop the yielding fiber again before its deque).
    #[cold]
    pub(super) fn coop_work_waits(&self) -> bool {
        self.fire_timers();
        self.drain_inbox();
        if self.reactor().has_sources() {
            let now = Instant::now();
            if now >= self.coop_poll_at.get() {
                self.coop_poll_at.set(now + coop::POLL_INTERVAL);
                self.poll_now();
            }
        }
        if self.has_next() || !self.runq.borrow().is_empty() || self.long_waits() {
            return true;
        }
        match self.oldest_unstarted() {
            Some(task) => {
                self.runq.borrow_mut().push_back(task);
                true
            }
            None => false,
        }
    }

    /// Publishes how many timers this worker holds (a gauge for `Runtime::metrics`).
    fn publish_timers(&self) {
        let pending = timer::with(|t| t.len()) as u64;
        self.stats().timers.store(pending, Ordering::Relaxed);
    }

    /// Moves fibers woken from other threads to the run queues; true if there were any.
    fn drain_inbox(&self) -> bool {
        let inbox = &self.shared.remotes[self.index].inbox;
        if inbox.is_empty() {
            return false;
        }
        let mut any = false;
        while let Some(task) = steal_with(|| inbox.steal()) {
            self.requeue(task);
            any = true;
        }
        any
    }

    /// Fires due timers; true if any fiber became runnable.
    fn fire_timers(&self) -> bool {
        if timer::with(|t| t.len()) == 0 {
            return false;
        }
        let now = Instant::now();
        let mut fired = false;
        // The borrow ends before the action runs: unparking may touch the timers again.
        while let Some(action) = timer::with(|t| t.pop_due(now)) {
            match action {
                // A sleeper's entry: requeue it unless a cancel request already did (whoever
                // clears `SLEEPING` requeues, src/task/state.rs).
                TimerAction::Resume(task) => {
                    if task.park.leave_sleep() {
                        trace::unparked(task.id.as_u64());
                        self.requeue(task);
                    }
                }
                TimerAction::Unpark(task) => task.unpark(),
                // Fired here, on the fiber's home worker, while the fiber is switched out.
                TimerAction::Deadline(task) => task.expire_deadline(),
            }
            fired = true;
        }
        fired
    }

    // ---- entry points used by fibers and wakers on this thread -------------------------------

    /// Pushes a new fiber to this worker's deque if it belongs to `shared`; else gives it back.
    ///
    /// Placement matters more than for async tasks: a fiber that starts here stays here. So when
    /// this worker already carries clearly more started fibers than another (a random one is
    /// compared, one atomic load), the new fiber goes to the injector instead, where the lighter
    /// worker picks it up. Otherwise an accept loop puts most long-lived connection fibers on its
    /// own worker (seen: 678 of 1,000 on one of two workers).
    pub(crate) fn push_new(&self, shared: &Handle, task: Arc<Task>) -> Option<Arc<Task>> {
        if !std::ptr::eq(&*self.shared, shared) {
            return Some(task);
        }
        let mine = self.live.get();
        let workers = self.shared.active();
        if mine > BALANCE_SLACK && workers > 1 {
            let other = self.random(workers);
            if other != self.index
                && self.shared.remotes[other].live.load(Ordering::Relaxed) + BALANCE_SLACK < mine
            {
                return Some(task);
            }
        }
        self.deque.push(task);
        None
    }

    /// Puts a woken fiber in the `next` slot if this is its home worker (a long-running one in
    /// its queue); else gives it back.
    #[inline]
    pub(crate) fn push_woken(&self, home: usize, task: Arc<Task>) -> Option<Arc<Task>> {
        if home != self.index || !self.shared.is(&task.scheduler) {
            return Some(task);
        }
        if self.files_as_long(&task) {
            self.push_long(task);
            return None;
        }
        if let Some(previous) = self.next.replace(Some(task)) {
            self.runq.borrow_mut().push_back(previous);
        }
        None
    }

    // ---- running a fiber ----------------------------------------------------------------------

    #[inline(always)]
    fn run_task<const TIMED: bool>(&self, task: Arc<Task>) {
        if self.searching.get() {
            self.stop_searching();
        }
        if task.stage.get() == Stage::Unstarted {
            if self.shared.is_shutdown() || task.park.cancel_requested() {
                // Never start a fiber once shutdown has begun, or that was cancelled before it
                // started: drop it unrun.
                task.stage.set(Stage::Done);
                self.cancel_unrun(&task);
                return;
            }
            if !self.start(&task) {
                return;
            }
        }
        self.resume::<TIMED>(task, Resume::Run);
    }

    /// Turns an unstarted task into a coroutine on a stack of this worker; false if no stack
    /// could be had (the job is cancelled: its join handle reports an error).
    #[inline(always)]
    fn start(&self, task: &Arc<Task>) -> bool {
        let stack = match self.take_stack(task.stack_size()) {
            Ok(stack) => stack,
            Err(err) => {
                eprintln!("fiber: could not start fiber {:?}: {err}", task.id);
                task.stage.set(Stage::Done);
                self.cancel_unrun(task);
                return false;
            }
        };
        // SAFETY: the name lives in the task, which outlives its coroutine: the worker's lists
        // (`started`, then the registry) hold the task until the coroutine finished, and a
        // coroutine that cannot be finished is leaked together with the task (see `shut_down`).
        let name: Option<&'static String> =
            task.label.name().map(|n| unsafe { &*(n as *const String) });
        let coro = Coro::new(stack, task.id.as_u64(), name, |yielder| {
            // TASK points at this fiber while its worker resumes it.
            let me = context::task_ptr().expect("a fiber runs with its task published");
            // SAFETY: `me` is the running task (set by `resume`), alive for the whole run; the
            // yielder is valid until this closure returns, and the fiber only uses it until then.
            let me = unsafe { me.as_ref() };
            me.yielder.set(yielder);
            me.job.run();
        });
        // SAFETY: we hold the run token; nobody else touches `coro`.
        unsafe { *task.coro.get() = Some(coro) };
        task.stage.set(Stage::Running);
        // Worker indices are below 2 × MAX_WORKER_THREADS (workers and spare slots: 2,048).
        task.home.store(self.index as u16, Ordering::Relaxed);
        let mut started = self.started.borrow_mut();
        // Published to the registry at the next pass (src/observe/registry.rs).
        task.live_index.set(UNPUBLISHED | started.len() as u32);
        started.push(task.clone());
        drop(started);
        let live = self.live.get() + 1;
        self.live.set(live);
        self.shared.remotes[self.index]
            .live
            .store(live, Ordering::Relaxed);
        true
    }

    /// Reads the coarse clock of "since" stamps.
    fn tick_stamp(&self) {
        let now = reason::now_stamp();
        self.stamp.set(now);
        self.stamp_running.set(now | ON_CPU);
    }

    /// Publishes the fibers started and finished since the last pass to this worker's registry
    /// (src/observe/registry.rs): one short lock, only if there is something to publish.
    fn publish(&self) {
        let mut started = self.started.borrow_mut();
        let mut finished = self.finished.borrow_mut();
        if started.is_empty() && finished.is_empty() {
            return;
        }
        self.shared.remotes[self.index]
            .registry
            .publish(&mut started, &mut finished);
    }

    /// Resumes a started fiber and files it according to how it stopped; true if it finished.
    /// Takes the caller's reference so that a yield requeues it without touching the refcount.
    #[inline(always)]
    fn resume<const TIMED: bool>(&self, task: Arc<Task>, msg: Resume) -> bool {
        // SAFETY: we hold the run token of a task whose home is this worker: nobody else touches
        // its coroutine, and the fiber itself never does.
        let Some(coro) = (unsafe { &mut *task.coro.get() }) else {
            return true;
        };
        let stats = &*self.stats;
        stats.enter(task.id.as_u64(), &task.label);
        let previous = context::set_task(NonNull::new(Arc::as_ptr(&task).cast_mut()));
        coop::refill();
        // For dumps: running since (coarse).
        task.since
            .store(self.stamp_running.get(), Ordering::Relaxed);
        // The fiber runs inside its span (feature `tracing`; else nothing is compiled in).
        let entered = trace::enter(&task.span);
        let outcome = coro.resume(msg);
        let long = TIMED && self.end_slice(&task);
        let suspended = match outcome {
            Outcome::Suspended(how) => Some(how),
            Outcome::Finished(_) => None,
        };
        trace::switched_out(entered, suspended, &task);
        context::set_task(previous);
        // One match on the outcome (it stays in registers). Each arm calls `stats.leave()`
        // before anything may drop the task: the watchdog may be reading its name.
        let how = match outcome {
            Outcome::Suspended(how) => how,
            Outcome::Finished(stack) => {
                stats.leave();
                // SAFETY: as above; the coroutine has returned, nothing refers to it.
                unsafe { *task.coro.get() = None };
                task.stage.set(Stage::Done);
                self.put_stack(stack, task.stack_size());
                self.remove_live(&task);
                if long {
                    self.catch_up();
                }
                return true;
            }
        };
        // For dumps: switched out since (coarse).
        task.since.store(self.stamp.get(), Ordering::Relaxed);
        stats.leave();
        match how {
            Suspend::Yield => {
                stats::add(&stats.yields, 1);
                // A yield lets the others run: on a timed worker that includes the long-running
                // fibers, so it goes behind them (a fiber yielding in a loop until a long-running
                // one is done must not keep it waiting for `MAX_LONG_WAIT` each time).
                if TIMED {
                    self.push_long(task);
                } else {
                    self.runq.borrow_mut().push_back(task);
                }
            }
            Suspend::Wait => stats.parked(task.wait.load(Ordering::Relaxed)),
            Suspend::Park => {
                // Read before the reference is given up (the fiber cannot run again before this
                // worker resumes it, so the word is still this park's).
                stats.parked(task.wait.load(Ordering::Relaxed));
                // The reference passes to the parked state; an unparker (or the fiber itself, if
                // cancelled) takes it over. Forgetting it saves a refcount round trip per park.
                std::mem::forget(task);
            }
        }
        if long {
            self.catch_up();
        }
        false
    }

    /// An unstarted fiber is dropped unrun (its join handle reports why); it counts as finished.
    fn cancel_unrun(&self, task: &Task) {
        task.cancel_unrun();
        stats::add(&self.stats().finished, 1);
    }

    /// A started fiber finished (or is leaked): it leaves this worker's bookkeeping, at once if
    /// it was never published, else at the next registry pass (a dump skips it meanwhile), and
    /// counts as finished.
    fn remove_live(&self, task: &Arc<Task>) {
        stats::add(&self.stats().finished, 1);
        task.since.store(reason::FINISHED, Ordering::Relaxed);
        let index = task.live_index.get();
        if index & UNPUBLISHED != 0 {
            let index = (index & !UNPUBLISHED) as usize;
            let mut started = self.started.borrow_mut();
            let removed = started.swap_remove(index);
            if let Some(moved) = started.get(index) {
                moved.live_index.set(UNPUBLISHED | index as u32);
            }
            drop(started);
            drop(removed);
        } else {
            self.finished.borrow_mut().push(task.clone());
        }
        let live = self.live.get() - 1;
        self.live.set(live);
        self.shared.remotes[self.index]
            .live
            .store(live, Ordering::Relaxed);
    }

    fn take_stack(&self, size: usize) -> io::Result<FiberStack> {
        if size != 0 {
            return stack::allocate_stack(size);
        }
        let mut cache = self.stacks.borrow_mut();
        if let Some(stack) = cache.pop() {
            return Ok(stack);
        }
        self.shared
            .stacks
            .refill(&mut cache, stack::WORKER_CACHE / 2)?;
        Ok(cache.pop().expect("refill yields at least one stack"))
    }

    fn put_stack(&self, stack: FiberStack, size: usize) {
        if size != 0 {
            return; // dropped: unmapped
        }
        let mut cache = self.stacks.borrow_mut();
        cache.push(stack);
        if cache.len() > 2 * stack::WORKER_CACHE {
            self.shared
                .stacks
                .give_back(&mut cache, stack::WORKER_CACHE);
        }
    }

    // ---- idle: search, then sleep -------------------------------------------------------------

    #[cold]
    fn idle(&self) -> Option<Arc<Task>> {
        if self.fire_timers() {
            return None;
        }
        // At most half the workers (at least one) search others' queues at once: with many
        // workers, every idle worker stealing from every other costs more than the work it finds.
        // A worker that may not search still waits briefly for wake-ups of its own fibers.
        let workers = self.shared.active();
        if !self.searching.get() && self.shared.idle.try_begin_search(workers) {
            self.searching.set(true);
        }
        let steal_every = workers.saturating_sub(1).max(1);
        for round in 0..IDLE_ROUNDS {
            if self.searching.get() && round % steal_every == 0 {
                if let Some(task) = self.steal() {
                    return Some(task);
                }
            }
            if self.has_local_work() {
                return None;
            }
            // Spin, then yield the core between rounds: waking a sleeping core costs ~20 µs here,
            // so a handoff that arrives meanwhile is caught without that. Measured with a
            // cross-worker park/unpark ping-pong (`cargo bench --bench handoff`): on a quiet
            // machine 0.80 µs per handoff (pure pause back-off 0.55 µs, a short 16-round spin
            // 27.5 µs, std threads 17.8 µs); with other processes competing for the cores 3-8 µs
            // (pure pause back-off 17-26 µs: spinning workers get preempted, `sched_yield` lets the
            // peer run). This mix is the best of both.
            //
            // Before each yield it polls its reactor without blocking: readiness for its own
            // fibers is then picked up at once instead of after the other process (an echo
            // client, say) had the core. Without it the workers of an echo server made about two
            // `sched_yield`s per round trip and saw I/O only every 61 ticks or after falling
            // asleep; with it, ~1.15x the round trips (echo client and server both built with
            // and without it, 100 connections, 3 runs each).
            if round < IDLE_ROUNDS / 2 {
                std::hint::spin_loop();
            } else if !self.poll_now() {
                std::thread::yield_now();
            }
        }
        self.sleep();
        None
    }

    /// Found work while searching: stop, and if we were the last searcher wake another worker,
    /// since there may be more stealable work than we took: in our deque (the rest of a batch),
    /// or still in the injector (a batch of one leaves the rest there). Without the injector
    /// check, spawns that arrived while we searched (their notify saw a searcher and woke
    /// nobody) waited for good behind a fiber that holds this worker, with the others asleep.
    fn stop_searching(&self) {
        self.searching.set(false);
        if self.shared.idle.end_search()
            && (!self.deque.is_empty() || !self.shared.injector.is_empty())
        {
            self.shared.notify_work();
        }
    }

    /// Polls this worker's reactor without blocking (if any source is registered with it); true if
    /// it dispatched events.
    fn poll_now(&self) -> bool {
        if !self.reactor().has_sources() {
            return false;
        }
        let events = self.poller.borrow_mut().poll(Some(Duration::ZERO));
        self.count_poll(events);
        events > 0
    }

    fn count_poll(&self, events: usize) {
        let stats = self.stats();
        stats::add(&stats.polls, 1);
        stats::add(&stats.events, events as u64);
    }

    fn has_local_work(&self) -> bool {
        !self.shared.remotes[self.index].inbox.is_empty()
            || !self.runq.borrow().is_empty()
            || self.long_waits()
            || self.has_next()
    }

    /// Whether the `next` slot holds a fiber (a reactor poll on this worker may have put one
    /// there).
    fn has_next(&self) -> bool {
        let next = self.next.take();
        let some = next.is_some();
        self.next.set(next);
        some
    }

    fn has_stealable_work(&self) -> bool {
        !self.shared.injector.is_empty()
            || self.shared.remotes[..self.shared.active()]
                .iter()
                .enumerate()
                .any(|(i, r)| i != self.index && !r.stealer.is_empty())
    }

    fn steal(&self) -> Option<Arc<Task>> {
        let task = self.steal_any();
        if task.is_some() {
            stats::add(&self.stats().steals, 1);
        }
        task
    }

    fn steal_any(&self) -> Option<Arc<Task>> {
        if let Some(task) = steal_with(|| self.shared.injector.steal_batch_and_pop(&self.deque)) {
            return Some(task);
        }
        let n = self.shared.active();
        let start = self.random(n);
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.index {
                continue;
            }
            let victim = &self.shared.remotes[i].stealer;
            if let Some(task) = steal_with(|| victim.steal_batch_and_pop(&self.deque)) {
                return Some(task);
            }
        }
        None
    }

    fn random(&self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// Sleeps until woken or until the next own timer is due. See README.md for the protocol.
    fn sleep(&self) {
        let shared = &self.shared;
        // Surplus pooled stacks are given back only after this worker has stayed idle for
        // TRIM_DELAY: trimming at every short idle spell released memory that the next burst of
        // fibers had to fault in again. This adds one wake-up per idle period, never a periodic one.
        let trim_at = shared
            .stacks
            .needs_trim()
            .then(|| Instant::now() + TRIM_DELAY);
        // A dump taken while this worker sleeps sees every fiber it started.
        self.publish();
        let remote = &shared.remotes[self.index];
        remote.sleep.store(idle::POLLING, Ordering::SeqCst);
        shared.idle.add_sleeper(self.index);
        if self.searching.replace(false) {
            shared.idle.end_search();
        }
        fence(Ordering::SeqCst);
        let timer = timer::with(|t| t.next_deadline());
        let deadline = match (timer, trim_at) {
            (Some(t), Some(trim)) => Some(t.min(trim)),
            (t, trim) => t.or(trim),
        };
        self.publish_timers();
        let cancel = shared.is_shutdown() || self.has_local_work() || self.has_stealable_work();
        if !cancel {
            // Two clock reads per sleep (none per fiber switch) measure the idle time.
            let before = Instant::now();
            let stats = self.stats();
            let since = before.saturating_duration_since(shared.started).as_nanos() as u64;
            stats.asleep_since.store(since + 1, Ordering::Relaxed);
            let mut timeout = deadline.map(|d| d.saturating_duration_since(before));
            // The global deadlock check (docs/observability.md, "Deadlocks"): this worker has
            // nothing that could wake it by itself; if no worker has, and a thread waits for a
            // fiber, sleep only for the grace period, then report unless anyone woke meanwhile.
            let mut grace = None;
            if timeout.is_none() && !self.reactor().has_sources() {
                remote.stalled.store(true, Ordering::SeqCst);
                if deadlock::watching() && self.stalled_everywhere() {
                    grace = Some(shared.wakeups.load(Ordering::SeqCst));
                    timeout = Some(deadlock::GRACE);
                }
            }
            let events = self.poller.borrow_mut().poll(timeout);
            let slept = before.elapsed().as_nanos() as u64;
            stats.asleep_since.store(0, Ordering::Relaxed);
            self.count_poll(events);
            stats::add(&stats.idle_ns, slept);
            match grace {
                Some(seen) if events == 0 => {
                    if shared.wakeups.load(Ordering::SeqCst) == seen
                        && self.stalled_everywhere()
                        && !self.has_local_work()
                    {
                        deadlock::report_global("no fiber can run, no timer or I/O is pending");
                    }
                }
                _ => {
                    shared.wakeups.fetch_add(1, Ordering::SeqCst);
                }
            }
            remote.stalled.store(false, Ordering::SeqCst);
        }
        remote.sleep.store(idle::RUNNING, Ordering::SeqCst);
        self.tick_stamp();
        if !shared.idle.remove_sleeper(self.index) {
            // A notifier took us off the list and counted us as searching.
            self.searching.set(true);
        }
        if trim_at.is_some_and(|at| Instant::now() >= at) {
            // In batches, so that work arriving meanwhile waits at most one batch.
            while shared.stacks.needs_trim() && !self.has_local_work() && !self.has_stealable_work()
            {
                shared.stacks.trim();
            }
        }
    }

    /// Every started worker of this runtime sleeps with nothing that could wake it by itself,
    /// nothing is queued, and a plain OS thread waits for a fiber (see `sleep`). Spare slots not
    /// started (`spare.rs`) run nothing and are not counted.
    fn stalled_everywhere(&self) -> bool {
        let active = self.shared.active();
        THREAD_JOINERS.load(Ordering::SeqCst) > 0
            && self.shared.injector.is_empty()
            && self.shared.remotes[..active].iter().all(|r| {
                r.stalled.load(Ordering::SeqCst) && r.inbox.is_empty() && r.stealer.is_empty()
            })
    }

    // ---- shutdown -----------------------------------------------------------------------------

    fn shut_down(&self) {
        if self.searching.replace(false) {
            self.shared.idle.end_search();
        }
        // Unwind every fiber this worker started, so that their destructors run. In passes: a
        // fiber may refuse to unwind until others have (a scope's owner waits for its borrowers,
        // which may be later in the list or on another worker), so refusers are retried after
        // the rest, with a short pause when a pass made no progress.
        self.publish();
        let mut pending: Vec<Arc<Task>> = self.shared.remotes[self.index].registry.snapshot();
        for pass in 0..CANCEL_PASSES {
            let before = pending.len();
            pending.retain(|task| {
                (0..CANCEL_ATTEMPTS).all(|_| !self.resume::<false>(task.clone(), Resume::Cancel))
            });
            if pending.is_empty() {
                break;
            }
            if pending.len() == before && pass + 1 < CANCEL_PASSES {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for task in pending {
            eprintln!(
                "fiber: fiber {:?} kept waiting while its runtime shut down; its stack is leaked",
                task.id
            );
            // SAFETY: we are the home worker holding the run token; the coroutine is suspended
            // and will never be resumed again. Leaking it (and the task, which holds the name it
            // refers to) is the only sound option: freeing its stack would free memory that other
            // fibers may still borrow, and dropping the coroutine would unwind it again. The
            // forgotten `FiberStack` keeps its slab's reference, so `free_unused` below and the
            // pool's drop leave that slab mapped (see `StackPool`).
            std::mem::forget(unsafe { (*task.coro.get()).take() });
            task.stage.set(Stage::Done);
            std::mem::forget(task.clone());
            self.remove_live(&task);
        }
        // Every started fiber is finished or leaked: empty the registry.
        self.publish();
        drop(self.shared.remotes[self.index].registry.take_all());
        // Drop the queued fibers: started ones are finished now; unstarted ones are cancelled.
        self.next.take();
        // Started fibers are finished now; an unstarted one that a budget yield moved here
        // (`coop_work_waits`) is cancelled.
        let mut queued: Vec<Arc<Task>> = self.runq.borrow_mut().drain(..).collect();
        queued.extend(self.long.borrow_mut().drain(..));
        for task in queued {
            if task.stage.get() == Stage::Unstarted {
                self.cancel_unrun(&task);
            }
        }
        while let Some(task) = self.deque.pop() {
            self.cancel_unrun(&task);
        }
        // Wake-ups may still arrive after this (see `Remote::exited`); their pushers drain.
        self.shared.remotes[self.index].drain_after_exit();
        // Dropped outside the borrow: a dropped task may wake others, never set a timer, but
        // the borrow need not cover that.
        let timers = timer::with(|t| t.clear());
        drop(timers);
        // Every fiber of this worker is finished or leaked: hand the cache back and free what the
        // pool holds. Slabs whose stacks are all back are unmapped now, not when the last handle
        // to the runtime goes; a leaked fiber's stack keeps its own slab (see `StackPool`). Another
        // worker still unwinding returns its stacks and frees them in its own call.
        let cache = std::mem::take(&mut *self.stacks.borrow_mut());
        self.shared.stacks.give_back_all(cache);
        self.shared.stacks.free_unused();
    }
}
