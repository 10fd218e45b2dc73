//! The join slot: where a fiber's result waits for its `JoinHandle`.
//!
//! `Packet` holds the result and a one-word state. The fiber writes the result, then swaps in
//! `DONE`; a joiner that must wait first stores its `Fiber` handle, then swaps `RUNNING → WAITING`.
//! Whoever comes second sees the other's mark: the fiber unparks the joiner, or the joiner takes
//! the result without parking. No lock, no lost wake-up.
use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Result;

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::park::current;
use super::reason::{self, kind};
use super::{context, Fiber, Job, Task};

/// Bookkeeping shared by a scope (`fiber::scope`) and its fibers' packets: how many of its
/// fibers' results are still alive, whether one panicked unjoined, and whom to tell.
pub(crate) struct ScopeData {
    pub(crate) running: AtomicUsize,
    pub(crate) panicked: AtomicBool,
    pub(crate) owner: Fiber,
    /// Set by `Scope::cancel`: fibers spawned afterwards are cancelled at once.
    pub(crate) cancelled: AtomicBool,
    /// The scope's fibers, for `Scope::cancel` (finished ones are pruned as it grows).
    pub(crate) fibers: std::sync::Mutex<Vec<Fiber>>,
}

impl ScopeData {
    pub(crate) fn new(owner: Fiber) -> ScopeData {
        ScopeData {
            running: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            owner,
            cancelled: AtomicBool::new(false),
            fibers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Counts a spawned fiber in for [`cancel`](Self::cancel); cancels it if the scope is.
    pub(crate) fn register(&self, fiber: &Fiber) {
        {
            let mut fibers = self.fibers.lock().unwrap_or_else(|e| e.into_inner());
            if fibers.len() == fibers.capacity() && fibers.len() >= 32 {
                // Amortised O(1): drop the finished before the vector would grow.
                fibers.retain(|f| !f.is_sole_reference());
            }
            fibers.push(fiber.clone());
        }
        // After the push: a `cancel` racing this either sees the fiber or set the flag first.
        if self.cancelled.load(Ordering::SeqCst) {
            fiber.cancel();
        }
    }

    /// Lets go of the scope's fibers (the scope has ended; they have all finished).
    pub(crate) fn forget_fibers(&self) {
        drop(std::mem::take(
            &mut *self.fibers.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }

    /// Cancels every fiber of the scope, and those spawned in it from now on.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let fibers = std::mem::take(&mut *self.fibers.lock().unwrap_or_else(|e| e.into_inner()));
        for fiber in &fibers {
            fiber.cancel();
        }
    }

    /// Called when a scoped fiber's packet is dropped (its result is gone).
    pub(crate) fn fiber_finished(&self, unhandled_panic: bool) {
        if unhandled_panic {
            self.panicked.store(true, Ordering::Relaxed);
        }
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.owner.unpark();
        }
    }
}

const RUNNING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

pub(crate) struct Packet<T> {
    state: AtomicU8,
    /// Written once by the fiber before `DONE`; read by the joiner after seeing `DONE`.
    result: UnsafeCell<Option<Result<T>>>,
    /// Written by the joiner before `WAITING`; read by the fiber after seeing `WAITING`.
    waiter: UnsafeCell<Option<Fiber>>,
    /// The scope this fiber belongs to, told when the packet (and the result in it) is gone.
    scope: Option<Arc<ScopeData>>,
    /// The fiber side and the handle side; the last to release drops an untaken result.
    owners: AtomicU8,
}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet {
            state: AtomicU8::new(RUNNING),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            scope,
            owners: AtomicU8::new(2),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// One owner lets go; the last drops an untaken result and tells the scope.
    pub(crate) fn release(&self) {
        if self.owners.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: both owners have let go: the fiber completed (no more writes) and the handle is
        // gone (no more reads); the AcqRel decrement orders their accesses before ours.
        let result = unsafe { (*self.result.get()).take() };
        // A cancelled fiber did not panic: its scope does not report it.
        let unhandled_panic = matches!(&result, Some(Err(e)) if !e.is::<context::Cancelled>());
        drop(result);
        if let Some(scope) = &self.scope {
            scope.fiber_finished(unhandled_panic);
        }
    }

    /// Stores the result and wakes the joiner. Called once, by the fiber's job.
    pub(crate) fn complete(&self, result: Result<T>) {
        // SAFETY: only the completing side writes `result`, once, before publishing DONE.
        unsafe { *self.result.get() = Some(result) };
        if self.state.swap(DONE, Ordering::AcqRel) == WAITING {
            // SAFETY: the joiner wrote `waiter` before its release swap to WAITING, which our
            // acquire swap observed; it does not touch `waiter` again.
            if let Some(waiter) = unsafe { (*self.waiter.get()).take() } {
                waiter.unpark();
            }
        }
    }

    /// Publishes `waiter` and parks with `park` until the fiber is done.
    #[inline]
    fn wait_as(&self, waiter: Fiber, park: impl Fn()) {
        // SAFETY: the completing side reads `waiter` only after seeing WAITING, which we have not
        // published yet.
        unsafe { *self.waiter.get() = Some(waiter) };
        if self
            .state
            .compare_exchange(RUNNING, WAITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            while self.state.load(Ordering::Acquire) != DONE {
                park();
            }
        }
    }

    /// Waits for the result and takes it. Called once, by the unique `JoinHandle`. With
    /// `cancellable` false, runtime shutdown cannot unwind the waiter out of the wait (see
    /// `task::park::park_uncancellable`).
    pub(crate) fn wait(
        &self,
        cancellable: bool,
        target: u64,
        site: &'static std::panic::Location<'static>,
    ) -> Result<T> {
        if self.state.load(Ordering::Acquire) != DONE {
            let word = reason::word(kind::JOIN, target);
            // One thread-local read for the fiber's whole wait.
            let as_fiber = context::with_task(|task| {
                let _wait = reason::enter_on(task, word, site);
                self.wait_as(Fiber::from_task(task.arc()), || {
                    super::park::park_fiber(task, cancellable);
                });
            });
            if as_fiber.is_none() {
                // A plain OS thread waiting for a fiber: the global deadlock check counts it.
                let _thread = ThreadJoiner::enter();
                self.wait_as(current(), std::thread::park);
            }
        }
        // SAFETY: DONE was observed with acquire ordering: the result is written and nobody else
        // touches it any more.
        unsafe { (*self.result.get()).take() }.expect("fiber result taken twice")
    }
}

/// How many plain OS threads wait in `join` (or `block_on`) for a fiber right now: a global
/// deadlock is one where such a thread waits and no fiber can run (src/observe/deadlock.rs).
pub(crate) static THREAD_JOINERS: AtomicUsize = AtomicUsize::new(0);

/// One thread counted in [`THREAD_JOINERS`], for as long as this lives.
struct ThreadJoiner;

impl ThreadJoiner {
    fn enter() -> ThreadJoiner {
        THREAD_JOINERS.fetch_add(1, Ordering::SeqCst);
        ThreadJoiner
    }
}

impl Drop for ThreadJoiner {
    fn drop(&mut self) {
        THREAD_JOINERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The closure of a fiber and its join packet: the `Job` at the end of a `Task`.
pub(crate) struct JobCell<F, T> {
    /// Taken once, by `run` or `cancel`, by the worker holding the run token.
    f: UnsafeCell<Option<F>>,
    pub(crate) packet: Packet<T>,
}

impl<F, T> JobCell<F, T> {
    pub(crate) fn new(f: F, scope: Option<Arc<ScopeData>>) -> JobCell<F, T> {
        JobCell {
            f: UnsafeCell::new(Some(f)),
            packet: Packet::new(scope),
        }
    }

    fn take(&self) -> Option<F> {
        // SAFETY: `f` is taken by `run`/`cancel`, which only the worker holding the task's run
        // token calls (or the last owner, in `drop`); never concurrently.
        unsafe { (*self.f.get()).take() }
    }
}

// SAFETY: `f` is only touched under the run token (see `take`) and is `Send`; the packet is
// `Sync` for `T: Send`.
unsafe impl<F: Send, T: Send> Sync for JobCell<F, T> {}

impl<F: FnOnce() -> T + Send, T: Send> Job for JobCell<F, T> {
    fn run(&self) {
        let f = self.take().expect("a fiber's job runs once");
        // `f` is consumed (and what it borrows released) before the joiner can see the result.
        let result = catch_unwind(AssertUnwindSafe(f));
        // Fiber-locals die with the fiber, before its joiner sees the result (as TLS in std).
        let _ = catch_unwind(|| context::with_task(|task| task.locals.clear()));
        self.packet.complete(result);
        self.packet.release();
    }

    fn cancel(&self, requested: bool) {
        if let Some(f) = self.take() {
            drop(f);
            let msg: Box<dyn Any + Send> = if requested {
                Box::new(context::Cancelled::TARGETED)
            } else {
                Box::new(
                    "the fiber never ran: its runtime shut down or no stack could be allocated",
                )
            };
            self.packet.complete(Err(msg));
            self.packet.release();
        }
    }
}

impl<F, T> Drop for JobCell<F, T> {
    fn drop(&mut self) {
        // Every path that drops a task unrun cancels it first; this is the safety net.
        if self.f.get_mut().take().is_some() {
            let msg: Box<dyn Any + Send> = Box::new("the fiber never ran");
            self.packet.complete(Err(msg));
            self.packet.release();
        }
    }
}

/// The handle side's view of a task's job.
pub(crate) trait JoinTarget<T>: Send + Sync {
    fn packet(&self) -> &Packet<T>;
}

impl<F: Send, T: Send> JoinTarget<T> for JobCell<F, T> {
    fn packet(&self) -> &Packet<T> {
        &self.packet
    }
}

/// An owned permission to join a fiber (wait for it to finish and take its result), as
/// [`std::thread::JoinHandle`].
///
/// Dropping the handle detaches the fiber: it keeps running.
pub struct JoinHandle<T> {
    /// The same allocation as `fiber`, seen through its packet.
    pub(crate) target: Arc<Task<dyn JoinTarget<T>>>,
    pub(crate) fiber: Fiber,
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.target.job.packet().release();
    }
}

impl<T> JoinHandle<T> {
    /// Waits for the fiber to finish and returns its result; a panic in the fiber comes back as
    /// `Err` with the panic payload. Inside a fiber this parks only the calling fiber.
    #[track_caller]
    pub fn join(self) -> Result<T> {
        let site = std::panic::Location::caller();
        self.target
            .job
            .packet()
            .wait(true, self.target.id.as_u64(), site)
    }

    /// As `join`, but runtime shutdown cannot unwind the caller out of the wait: for callers
    /// whose stack the fiber borrows (`block_on`).
    #[track_caller]
    pub(crate) fn join_uncancellable(self) -> Result<T> {
        let site = std::panic::Location::caller();
        self.target
            .job
            .packet()
            .wait(false, self.target.id.as_u64(), site)
    }

    /// Cancels the fiber (as [`Fiber::cancel`]): it is unwound from its current or next wait,
    /// or never runs if it has not started, and `join` then returns `Err` with a
    /// [`Cancelled`](crate::Cancelled) payload (unless it finished first). Returns at once;
    /// see docs/cancellation.md.
    pub fn cancel(&self) {
        self.fiber.cancel();
    }

    /// True once the fiber's body has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        super::coop::spend();
        self.target.job.packet().is_done()
    }

    /// The handle of the fiber.
    pub fn fiber(&self) -> &Fiber {
        &self.fiber
    }

    /// The handle of the fiber, under std's name (`std::thread::JoinHandle::thread`).
    pub fn thread(&self) -> &Fiber {
        &self.fiber
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("fiber", &self.fiber)
            .finish_non_exhaustive()
    }
}
