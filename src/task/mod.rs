//! The fiber header (`Task`) and the public handle to it (`Fiber`).
//!
//! # Fields in the task, and who may touch them when
//!
//! | field        | written by                                  | read by                        |
//! |--------------|---------------------------------------------|--------------------------------|
//! | `id`, `label`, `stack_size`, `scheduler` | spawn (immutable after) | anyone                     |
//! | `park`       | the fiber (park, sleep), unparkers, cancellers (atomic) | all             |
//! | `home`       | the home worker, once, when the fiber starts | unparkers, after seeing PARKED |
//! | `stage`, `coro` | the worker holding the *run token*       | that worker only               |
//! | `job`        | the worker holding the run token (run or cancel, once) | the join handle (packet) |
//! | `yielder`, `locals`, `timer` | the fiber itself, on its stack's thread | the fiber itself  |
//! | `span`       | spawn; its held spans: the worker holding the run token | that worker |
//! | `wait`, `park_site` | the fiber itself (`reason::Scope`, atomic) | dumps, any thread        |
//! | `since`      | the home worker (atomic)                    | dumps, any thread              |
//!
//! The *run token*: a task is in at most one run queue, or being run by one worker, at any time.
//! Spawn creates the token; a worker takes it by popping the task; it is handed back to a queue by
//! `Yield`, by the one unparker (or canceller) that takes the fiber out of `PARKED`, or by whichever
//! of the sleep's timer and a canceller clears `SLEEPING` (src/task/state.rs). Before the
//! first run the token may move between workers (stealing); after, only the home worker holds it.
pub(crate) mod context;
pub(crate) mod coop;
pub(crate) mod join;
pub(crate) mod local;
pub(crate) mod park;
pub(crate) mod reason;
pub(crate) mod state;
pub(crate) mod trace;
pub(crate) mod wait;

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroU64;
use std::panic::Location;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::coro::{Coro, Yielder};
use local::LocalMap;
use state::ParkState;
use trace::FiberSpan;

/// One fact about a fiber that only the fiber itself reads and writes, on its carrier. Bits of one
/// byte ([`OwnFlags`]): the header is budgeted to the byte (`the_task_header_stays_small`).
#[derive(Clone, Copy)]
pub(crate) enum Own {
    /// A cancellation arrived while the fiber could not unwind (inside an interposed libc call,
    /// which returned an error instead): the next cancellable suspension unwinds at once.
    CancelPending = 1,
    /// The fiber runs inside an `extern "C"` frame (an interposed libc call) that unwinding
    /// cannot cross: cancellations are recorded in `CancelPending` instead (`context::suspend`).
    NoUnwind = 2,
    /// The fiber was unwinding when it last switched out, or has begun a panic since (see
    /// `context::panicking`: std's own answer is per OS thread, shared by a carrier's fibers).
    Unwinding = 4,
    /// The unwind recorded by `Unwinding` is a cancellation's (`context::cancel_unwinding`):
    /// guards dropped by it do not poison their locks.
    CancelUnwind = 8,
    /// The fiber runs inside [`uncancellable`](crate::uncancellable): every wait behaves as an
    /// uncancellable one, and a cancellation (of any kind) waits for the region to end.
    Shielded = 16,
    /// The fiber is inside the driver's own syscall on a non-blocking fd the driver waits for
    /// itself (`driver::io::IoSource`: `fiber::net`): an interposed libc call goes straight to
    /// libc (`context::native_io`).
    NativeIo = 32,
}

/// The [`Own`] facts of one fiber.
pub(crate) struct OwnFlags(Cell<u8>);

impl OwnFlags {
    #[inline]
    pub(crate) fn get(&self, fact: Own) -> bool {
        self.0.get() & fact as u8 != 0
    }

    #[inline]
    pub(crate) fn set(&self, fact: Own, on: bool) {
        self.replace(fact, on);
    }

    /// Sets `fact` to `on`; returns what it was.
    #[inline]
    pub(crate) fn replace(&self, fact: Own, on: bool) -> bool {
        let bits = self.0.get();
        let was = bits & fact as u8 != 0;
        let bit = fact as u8;
        self.0.set(if on { bits | bit } else { bits & !bit });
        was
    }

    /// Sets `fact` until the guard is dropped (however the region ends: a panic ends it too),
    /// then restores what it was: regions of one fact nest.
    #[inline]
    pub(crate) fn scoped(&self, fact: Own) -> OwnScope<'_> {
        OwnScope {
            flags: self,
            fact,
            was: self.replace(fact, true),
        }
    }
}

/// A region of one [`Own`] fact (`OwnFlags::scoped`).
pub(crate) struct OwnScope<'a> {
    flags: &'a OwnFlags,
    fact: Own,
    was: bool,
}

impl Drop for OwnScope<'_> {
    #[inline]
    fn drop(&mut self) {
        self.flags.set(self.fact, self.was);
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stage {
    /// Not started: only the job's `Send` closure exists; the task may still be stolen.
    Unstarted,
    /// Started on its home worker (`coro` is set); never moves again.
    Running,
    /// Finished, cancelled, or dropped unrun.
    Done,
}

/// What a task knows of the scheduler that runs it, given at spawn (as async-task stores a
/// schedule function): the task layer wakes fibers and asks about the cooperative budget through
/// it, without importing the scheduler.
pub(crate) trait Schedule: Send + Sync {
    /// Requeues a started fiber that became runnable; `task` is its run token.
    ///
    /// `self` may be borrowed from `task` itself (its `scheduler` field, see `Wakeup::wake`): an
    /// implementation that lets `task` go to another thread, where it may be dropped at once,
    /// must first hold a reference of its own to itself if it still uses `self` afterwards.
    fn wake(&self, task: Arc<Task>);
    /// The running fiber spent its cooperative budget (`coop.rs`): should it yield to other work
    /// waiting on its worker? Called on the fiber.
    fn should_yield(&self) -> bool;
}

/// A fiber's work, stored inline at the end of its task (one allocation per spawn).
pub(crate) trait Job: Send + Sync {
    /// Runs the closure to completion and fills the join packet. Called at most once, on the
    /// fiber's own stack.
    fn run(&self);
    /// Drops the closure unrun and completes the join packet with an error (idempotent): the
    /// public [`context::Cancelled`] if `requested` (the fiber was cancelled before it started),
    /// else a message (its runtime shut down, or no stack could be had).
    fn cancel(&self, requested: bool);
}

pub(crate) struct Task<J: ?Sized = dyn Job> {
    pub(crate) id: FiberId,
    /// The name (if any) and the spawn site, in one word.
    pub(crate) label: Label,
    /// Requested stack size, or 0 for the runtime's default (at most `MAX_STACK_SIZE`, 1 GiB,
    /// so 32 bits, which pack with the other small fields).
    stack_size: u32,
    /// The runtime's scheduler: where wake-ups of this fiber go.
    pub(crate) scheduler: Arc<dyn Schedule>,
    pub(crate) park: ParkState,
    /// Index of the home worker; `u16::MAX` until started (below 2 × `MAX_WORKER_THREADS`:
    /// workers and spare slots).
    pub(crate) home: AtomicU16,
    /// What the fiber waits for (`reason.rs`): written by the fiber, read by dumps.
    pub(crate) wait: AtomicU64,
    /// Where it waits: a park site compressed by `reason::encode_site` (0: unknown).
    pub(crate) park_site: AtomicU32,
    /// When the fiber last switched in or out (`reason::now_stamp`, coarse: the worker's clock),
    /// with `reason::ON_CPU` set while it runs. Written by the home worker, read by dumps.
    pub(crate) since: AtomicU32,
    pub(crate) stage: Cell<Stage>,
    /// Its last slice on the CPU ran long (the worker's `LONG_SLICE`; timed only on workers
    /// with I/O sources): it waits in the worker's queue of long-running fibers. Written and read
    /// only on the home worker's thread.
    pub(crate) long_slice: Cell<bool>,
    /// Facts only the fiber itself reads and writes (see [`Own`]).
    pub(crate) own: OwnFlags,
    pub(crate) coro: UnsafeCell<Option<Coro>>,
    /// The coroutine's yielder, set when the body starts.
    pub(crate) yielder: Cell<*const Yielder>,
    pub(crate) locals: LocalMap,
    /// Position in the home worker's list of started fibers.
    pub(crate) live_index: Cell<u32>,
    /// How many of the fiber's active `timeout` calls have expired and not yet caught their
    /// unwind (src/timeout.rs); `DEADLINE` in `park` is set while this is not zero. Written only
    /// on the home worker's thread, by its timers and by the fiber (atomic all the same: no
    /// argument needed). 16 bits, beside `home`'s 16, in the 4 bytes the header had spare: a
    /// byte saturated at 256 nested expired deadlines, after which the bit went too early and the
    /// outer expired `timeout` calls did not end. Every active `timeout` is a frame on the
    /// fiber's stack; more than 65,535 of them nested saturate the count (documented limit).
    pub(crate) deadlines_expired: AtomicU16,
    /// The fiber's `tracing` span (src/task/trace.rs): set at spawn, entered by the worker
    /// around each resume. Zero-sized without the `tracing` feature.
    pub(crate) span: FiberSpan,
    /// The closure and join packet (last: unsized in `Task<dyn Job>`).
    pub(crate) job: J,
}

// SAFETY: the fields that are not thread-safe on their own are `stage`, `long_slice`, `coro`,
// `yielder`, `locals`, `live_index` (`label` is immutable and `Sync`), and (feature `tracing`) the spans `span` holds. By the table above each is touched
// only by the worker holding the run token or by the fiber itself; once the fiber has started both
// are on the home worker's thread, so its coroutine (and any `!Send` value on its stack) never
// changes thread. Before the start the task holds no coroutine, only the job's `Send` closure,
// which may move with the token. A task dropped on another thread holds no coroutine: the worker
// removes a started coroutine (finishing or leaking it) before releasing the task.
// `J: Send + Sync` covers the job.
unsafe impl<J: ?Sized + Send + Sync> Send for Task<J> {}
// SAFETY: see above.
unsafe impl<J: ?Sized + Send + Sync> Sync for Task<J> {}

impl<J: ?Sized> Task<J> {
    /// Requested stack size in bytes, or 0 for the runtime's default.
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size as usize
    }

    /// The fiber's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.label.name().map(String::as_str)
    }

    /// Describes the wait the fiber enters (`reason::Scope`); returns the outer description.
    /// Called by the fiber itself.
    #[inline(always)]
    pub(crate) fn enter_wait(&self, word: u64, site: u32) -> (u64, u32) {
        let outer = (
            self.wait.load(Ordering::Relaxed),
            self.park_site.load(Ordering::Relaxed),
        );
        self.park_site.store(site, Ordering::Relaxed);
        self.wait.store(word, Ordering::Relaxed);
        outer
    }

    /// Restores the description `enter_wait` returned. Called by the fiber itself.
    #[inline(always)]
    pub(crate) fn leave_wait(&self, word: u64, site: u32) {
        self.wait.store(word, Ordering::Relaxed);
        self.park_site.store(site, Ordering::Relaxed);
    }
}

/// A fiber's name and spawn site in one word (the header is budgeted to the byte): the spawn
/// site's address with the low bit set for an unnamed fiber (a `Location` is 8-byte aligned),
/// else a box holding both (named fibers allocate for the name anyway).
pub(crate) struct Label(std::ptr::NonNull<()>);

/// What a named fiber's [`Label`] points to.
struct Named {
    name: String,
    site: &'static Location<'static>,
}

impl Label {
    #[inline]
    fn new(name: Option<String>, site: &'static Location<'static>) -> Label {
        match name {
            None => Label(
                std::ptr::NonNull::from(site)
                    .cast::<()>()
                    .map_addr(|a| a | 1),
            ),
            Some(name) => {
                Label(std::ptr::NonNull::from(Box::leak(Box::new(Named { name, site }))).cast())
            }
        }
    }

    fn named(&self) -> Option<&Named> {
        if self.0.addr().get() & 1 != 0 {
            return None;
        }
        // SAFETY: without the tag bit the pointer came from `Box::leak` of a `Named` in `new`,
        // freed only by our `drop`; `Named` is immutable.
        Some(unsafe { self.0.cast::<Named>().as_ref() })
    }

    /// The name, if any.
    pub(crate) fn name(&self) -> Option<&String> {
        self.named().map(|n| &n.name)
    }

    /// Where the fiber was spawned.
    pub(crate) fn site(&self) -> &'static Location<'static> {
        match self.named() {
            Some(named) => named.site,
            None => {
                let ptr = self.0.map_addr(|a| {
                    std::num::NonZeroUsize::new(a.get() & !1).expect("a location is not at 0")
                });
                // SAFETY: with the tag bit the pointer is a `&'static Location` (provenance kept
                // by `map_addr`), untagged just now.
                unsafe { ptr.cast::<Location<'static>>().as_ref() }
            }
        }
    }
}

impl Drop for Label {
    fn drop(&mut self) {
        if self.0.addr().get() & 1 == 0 {
            // SAFETY: untagged: the `Box<Named>` leaked in `new`, dropped once, here.
            drop(unsafe { Box::from_raw(self.0.cast::<Named>().as_ptr()) });
        }
    }
}

// SAFETY: a `Label` owns a `Box<Named>` (a `String` and a `&'static Location`, both `Send` and
// `Sync`) or is a `&'static Location`; it is never mutated after `new`.
unsafe impl Send for Label {}
// SAFETY: as above.
unsafe impl Sync for Label {}

impl<J> Task<J> {
    // Inlined so that spawn can build the task straight into its `Arc` (no copy).
    #[inline(always)]
    pub(crate) fn new(
        scheduler: Arc<dyn Schedule>,
        name: Option<String>,
        site: &'static Location<'static>,
        stack_size: usize,
        kind: &'static str,
        job: J,
    ) -> Task<J> {
        let id = FiberId::next();
        // The span (feature `tracing`; else zero-sized) before the name moves into the label.
        let span = trace::spawn_span(id.as_u64(), name.as_deref(), kind, site);
        Task {
            id,
            label: Label::new(name, site),
            stack_size: u32::try_from(stack_size).expect("stack sizes are validated to <= 1 GiB"),
            scheduler,
            park: ParkState::new(),
            home: AtomicU16::new(u16::MAX),
            wait: AtomicU64::new(0),
            park_site: AtomicU32::new(0),
            since: AtomicU32::new(0),
            stage: Cell::new(Stage::Unstarted),
            long_slice: Cell::new(false),
            own: OwnFlags(Cell::new(0)),
            coro: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            locals: LocalMap::default(),
            live_index: Cell::new(u32::MAX),
            deadlines_expired: AtomicU16::new(0),
            span,
            job,
        }
    }
}

impl Task {
    /// Makes the park token available and requeues the fiber if it was parked.
    #[inline]
    pub(crate) fn unpark(&self) {
        if self.park.unpark() {
            self.scheduler.wake(self.take_run_token());
        }
    }

    /// A new reference to this task.
    #[inline]
    pub(crate) fn arc(&self) -> Arc<Task> {
        let ptr: *const Task = self;
        // SAFETY: every task lives in an `Arc` (spawn creates it so), and `self` borrows it, so
        // the count is at least one while we add ours.
        unsafe { Arc::increment_strong_count(ptr) };
        // SAFETY: the count added just above is the one this `Arc` owns.
        unsafe { Arc::from_raw(ptr) }
    }

    /// The reference a parked fiber's state held, after the caller made the `PARKED → EMPTY`
    /// transition (`ParkState::unpark` or `leave_parked` returned true).
    #[inline]
    fn take_run_token(&self) -> Arc<Task> {
        // SAFETY: every task lives in an `Arc` (spawn creates it so), and a worker forgets its
        // reference when the fiber parks (`Suspend::Park`); the one caller that makes the
        // `PARKED → EMPTY` transition owns that reference, exactly once per park. The transition
        // may come before the worker has finished switching the fiber out (and forgotten its
        // copy): the count is the same either way, and the requeued reference can only be popped
        // (and dropped) by that same worker, after the switch.
        unsafe { Arc::from_raw(self as *const Task) }
    }

    /// For a dump (docs/observability.md): keeps a parked fiber suspended while `read` runs, by
    /// holding its run token as an unparker would; then gives the token back to the parked state,
    /// or, if an unpark or a cancellation arrived meanwhile, requeues the fiber (which sees a
    /// spurious wake-up). `None` (and `read` is not run) if the fiber is not parked. `read` must
    /// not panic or block: it only loads atomics.
    pub(crate) fn while_pinned<R>(&self, read: impl FnOnce() -> R) -> Option<R> {
        let left = self.park.pin()?;
        let value = read();
        if !self.park.repark(left) {
            self.scheduler.wake(self.take_run_token());
        }
        Some(value)
    }

    /// Requests cancellation (docs/cancellation.md): sets the sticky bit and, if the fiber is
    /// parked or sleeping, wakes it so that it unwinds from there. The wake-up goes through the
    /// same `Schedule::wake` as an unpark's, to the fiber's home worker: exactly one party (this
    /// call, or an unparker, notifier or timer) takes the fiber out of its wait and requeues it.
    pub(crate) fn cancel(&self) {
        self.wake_cancelled(self.park.request_cancel());
    }

    /// One of the fiber's `timeout` deadlines expired (its timer entry fired, on the home worker's
    /// thread): a scoped cancellation, woken exactly as [`cancel`](Self::cancel)'s.
    pub(crate) fn expire_deadline(&self) {
        let before = self.deadlines_expired.load(Ordering::Relaxed);
        // Saturates only past 65,535 nested expired `timeout` frames (see the field).
        self.deadlines_expired
            .store(before.saturating_add(1), Ordering::Relaxed);
        self.wake_cancelled(self.park.request_deadline());
    }

    /// The fiber caught the unwind of one expired deadline (or finished before it landed); the
    /// `DEADLINE` bit goes once none is left. True if none is left.
    pub(crate) fn deadline_caught(&self) -> bool {
        let left = self
            .deadlines_expired
            .load(Ordering::Relaxed)
            .saturating_sub(1);
        self.deadlines_expired.store(left, Ordering::Relaxed);
        if left == 0 {
            self.park.clear_deadline();
        }
        left == 0
    }

    /// Requeues the fiber if a cancel request took it out of its wait (see [`state::CancelWake`]).
    fn wake_cancelled(&self, wake: state::CancelWake) {
        match wake {
            state::CancelWake::Nothing => {}
            state::CancelWake::Parked => self.scheduler.wake(self.take_run_token()),
            state::CancelWake::Sleeping => {
                // SAFETY: as in `take_run_token`, the task lives in an `Arc`; we add a count for
                // the reference the run queue will hold (the timer entry keeps its own).
                unsafe { Arc::increment_strong_count(self as *const Task) };
                // SAFETY: the count added just above is the one this `Arc` owns.
                let task = unsafe { Arc::from_raw(self as *const Task) };
                let scheduler: *const dyn Schedule = Arc::as_ptr(&task.scheduler);
                // SAFETY: as in `Wakeup::wake`: `task` holds the scheduler alive until `wake` lets
                // go of it, and the implementation keeps itself alive past that if it needs to.
                unsafe { (*scheduler).wake(task) }
            }
        }
    }

    /// Drops the closure of a fiber that will never start, completing its join packet with an
    /// error: [`Cancelled`](crate::Cancelled) if a cancellation was requested, else a message.
    pub(crate) fn cancel_unrun(&self) {
        self.job.cancel(self.park.targeted());
    }

    /// A fiber resumed without an unpark (a cancellation) leaves the parked state, releasing the
    /// run token the state held unless an unparker took it first (it requeues the fiber).
    pub(crate) fn cancel_park(&self) {
        if self.park.leave_parked() {
            drop(self.take_run_token());
        }
    }

    /// For a notifier about to publish a token that lets this fiber's waiting frame return (so
    /// the task may be gone the moment after): the wake-up to deliver once its lock is released.
    /// A parked fiber is taken out of `PARKED` now, which keeps it suspended, and costs no
    /// refcount (its run token is taken over); a fiber still on its way to parking gets a
    /// reference of its own and a plain unpark later.
    #[inline]
    pub(crate) fn prepare_wakeup(&self) -> Wakeup {
        if self.park.leave_parked() {
            return Wakeup::Requeue(self.take_run_token());
        }
        // SAFETY: as in `take_run_token`, the task lives in an `Arc`; we add a count for ours.
        unsafe { Arc::increment_strong_count(self as *const Task) };
        // SAFETY: the count added just above is the one this `Arc` owns.
        let task = unsafe { Arc::from_raw(self as *const Task) };
        Wakeup::Unpark(Fiber::from_task(task))
    }
}

/// A wake-up decided under a lock and delivered after it is released (see `Task::prepare_wakeup`).
pub(crate) enum Wakeup {
    /// The fiber was parked and is already out of `PARKED`: this is its run token, to requeue.
    Requeue(Arc<Task>),
    /// A fiber not parked yet, or a thread: unpark it (a token for its next park).
    Unpark(Fiber),
}

impl Wakeup {
    /// Delivers the wake-up.
    #[inline]
    pub(crate) fn wake(self) {
        match self {
            Wakeup::Requeue(task) => {
                let scheduler: *const dyn Schedule = Arc::as_ptr(&task.scheduler);
                // SAFETY: `task` holds the scheduler alive until `wake` lets go of it, and by
                // `Schedule::wake`'s contract the implementation keeps itself alive past that
                // point if it still needs `self`. No refcount is spent on the common path.
                unsafe { (*scheduler).wake(task) }
            }
            Wakeup::Unpark(fiber) => fiber.unpark(),
        }
    }
}

/// A unique identifier of a fiber (or of an OS thread seen through [`current`](crate::current)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiberId(NonZeroU64);

impl FiberId {
    /// A fresh id. Threads reserve ids in blocks, so spawning takes no shared atomic per fiber.
    pub(crate) fn next() -> FiberId {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let id = RANGE.with(|range| {
            let (mut next, mut end) = range.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            range.set((next + 1, end));
            next
        });
        FiberId(NonZeroU64::new(id).expect("fiber id counter overflowed"))
    }

    /// The id as a number (unique in this process, never reused; not in spawn order across
    /// threads).
    pub fn as_u64(&self) -> u64 {
        self.0.get()
    }

    /// The id with this number (0 has none); for ids recorded as numbers (lock owners, dumps).
    pub(crate) fn from_u64(id: u64) -> Option<FiberId> {
        NonZeroU64::new(id).map(FiberId)
    }
}

impl fmt::Debug for FiberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FiberId({})", self.0)
    }
}

/// A handle to a fiber, as [`std::thread::Thread`] is to a thread.
///
/// Called on a plain OS thread, [`current`](crate::current) returns a `Fiber` that stands for
/// that thread: `unpark` then unparks the thread.
#[derive(Clone)]
pub struct Fiber {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Task(Arc<Task>),
    Thread(std::thread::Thread, FiberId),
}

impl Fiber {
    pub(crate) fn from_task(task: Arc<Task>) -> Fiber {
        Fiber {
            inner: Inner::Task(task),
        }
    }

    pub(crate) fn from_thread(thread: std::thread::Thread, id: FiberId) -> Fiber {
        Fiber {
            inner: Inner::Thread(thread, id),
        }
    }

    /// Makes the park token available: the fiber's next (or current) [`park`](crate::park)
    /// returns. As [`std::thread::Thread::unpark`].
    #[inline]
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Task(task) => task.unpark(),
            Inner::Thread(thread, _) => thread.unpark(),
        }
    }

    /// Cancels the fiber: it is unwound from its current or next wait, with the payload
    /// [`Cancelled`](crate::Cancelled) (see docs/cancellation.md for where exactly it lands).
    /// Returns at once; join the fiber to wait for it to stop. Idempotent. On a handle standing
    /// for a plain OS thread ([`current`](crate::current) called on one) it does nothing: threads
    /// cannot be cancelled.
    pub fn cancel(&self) {
        if let Inner::Task(task) = &self.inner {
            task.cancel();
        }
    }

    /// True if this handle is the only reference to a fiber (so it has finished, or will never
    /// run: a live fiber's run token is a reference too); false for a thread's handle.
    pub(crate) fn is_sole_reference(&self) -> bool {
        matches!(&self.inner, Inner::Task(task) if Arc::strong_count(task) == 1)
    }

    /// The fiber's unique id.
    pub fn id(&self) -> FiberId {
        match &self.inner {
            Inner::Task(task) => task.id,
            Inner::Thread(_, id) => *id,
        }
    }

    /// The fiber's name, if it was given one (for a thread, the thread's name).
    pub fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Task(task) => task.name(),
            Inner::Thread(thread, _) => thread.name(),
        }
    }
}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::join::JobCell;
    use super::*;

    /// A sleeping fiber's memory is its stack page plus this header (plus the `Arc` counts and
    /// malloc's rounding): issue 2 budgets 4.5 KiB per sleeper. glibc serves a request of `n`
    /// bytes from a chunk of `(n + 8)` rounded up to 16; the `Arc` adds 16 bytes of counts. So a
    /// header of at most 264 bytes (a 280-byte request) takes a 288-byte chunk, and 265 would
    /// take 304. It was 248 bytes (a 272-byte chunk) until the observability words (issue 16:
    /// `wait` 8 bytes, `park_site` 4, `since` 4) raised it by 16; the spawn site shares the name's
    /// word (`Label`) to stay within this chunk.
    #[test]
    fn the_task_header_stays_small() {
        let counter = Arc::new(());
        let dur = std::time::Duration::from_secs(1);
        let f = move || {
            let _keep = &counter;
            std::thread::sleep(dur);
        };
        fn size_of_task<F>(_: &F) -> usize {
            std::mem::size_of::<Task<JobCell<F, ()>>>()
        }
        let size = size_of_task(&f);
        // The `tracing` feature adds the fiber's span (72 bytes) and accepts the larger chunk.
        #[cfg(feature = "tracing")]
        {
            let bound = 264 + std::mem::size_of::<FiberSpan>();
            assert!(size <= bound, "Task with a 24-byte closure is {size} bytes");
        }
        #[cfg(not(feature = "tracing"))]
        {
            assert!(size <= 264, "Task with a 24-byte closure is {size} bytes");
            let chunk = (size + 16 + 8).div_ceil(16) * 16;
            assert_eq!(
                chunk, 288,
                "the Arc<Task> allocation no longer fits a 288-byte chunk (update \
                 fiber_support::floor::TASK_CHUNK with it)"
            );
        }
    }
}
