//! Which task this thread is running: the task layer's one thread-local.
//!
//! The worker publishes the task around each resume (`set_task`); a fiber reading it always sees
//! itself, because fibers never migrate once started. On a plain OS thread it is `None`. Below
//! the scheduler on purpose: the driver, the sync primitives and the API ask "am I a fiber, which
//! one?" without knowing anything about workers.
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{Own, Task};
use crate::coro::{Resume, Suspend};

thread_local! {
    static TASK: Cell<Option<NonNull<Task>>> = const { Cell::new(None) };
    /// How many fibers are switched out on this thread in the middle of an unwind.
    static PARKED_UNWINDING: Cell<usize> = const { Cell::new(0) };
}

/// The panic payload of a cancelled fiber: [`JoinHandle::cancel`](crate::JoinHandle::cancel),
/// [`Fiber::cancel`](crate::Fiber::cancel), or runtime shutdown unwinding a waiting fiber.
///
/// `join()` returns it as `Err(payload)`, in std's `std::thread::Result` shape. Tell it apart from
/// a panic with `err.is::<fiber::Cancelled>()` (or `err.downcast_ref::<fiber::Cancelled>()`): a
/// panic's payload is the panic's message or value, never this type, which only the runtime can
/// construct. A cancelled fiber prints no panic message. See docs/cancellation.md.
///
/// ```
/// let fiber = fiber::spawn(|| loop { fiber::park() });
/// fiber.cancel();
/// let err = fiber.join().unwrap_err();
/// assert!(err.is::<fiber::Cancelled>());
/// ```
///
/// A fiber unwound by an expired [`timeout`](crate::timeout) carries this payload too (the
/// `timeout` call catches it and returns `Err(Elapsed)`; it reaches `join()` only if user code
/// carried it past that call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    /// Raised for an expired deadline (scoped) rather than for the fiber itself.
    by_deadline: bool,
}

impl Cancelled {
    /// The fiber itself was cancelled (`cancel()`, runtime shutdown).
    pub(crate) const TARGETED: Cancelled = Cancelled { by_deadline: false };
    /// A `timeout` of the fiber expired.
    pub(crate) const DEADLINE: Cancelled = Cancelled { by_deadline: true };

    /// Was this unwind raised by an expired deadline (caught by its `timeout`)?
    pub(crate) fn by_deadline(&self) -> bool {
        self.by_deadline
    }
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the fiber was cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Publishes the task about to be resumed on this thread; returns the previous value.
#[inline]
pub(crate) fn set_task(task: Option<NonNull<Task>>) -> Option<NonNull<Task>> {
    TASK.with(|t| t.replace(task))
}

/// The task running on this thread, if any.
#[inline]
pub(crate) fn task_ptr() -> Option<NonNull<Task>> {
    TASK.with(Cell::get)
}

/// Runs `f` with the running task, if the caller is a fiber.
#[inline]
pub(crate) fn with_task<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    let ptr = task_ptr()?;
    // SAFETY: TASK points at a task the worker keeps alive (it holds an `Arc`) while it runs, and
    // `f` runs on the fiber, during that run.
    Some(f(unsafe { ptr.as_ref() }))
}

/// A new reference to the running task, if the caller is a fiber.
#[inline]
pub(crate) fn task() -> Option<Arc<Task>> {
    let ptr = task_ptr()?;
    // SAFETY: TASK was produced by `Arc::as_ptr` on a task the worker keeps alive while it runs.
    unsafe { Arc::increment_strong_count(ptr.as_ptr()) };
    // SAFETY: the count added just above is the one this `Arc` owns.
    Some(unsafe { Arc::from_raw(ptr.as_ptr()) })
}

/// Switches the running fiber out to its worker. Returns when the worker resumes it; if it is
/// resumed to be cancelled (runtime shutdown), or a cancellation was requested before it switched
/// out or while it was away (`Task::cancel`), this unwinds the fiber, unless it is unwinding
/// already, in which case it returns and the caller treats it as a spurious wake-up.
///
/// Inside [`without_unwinding`] a cancellation is recorded instead (`cancel_pending`) and
/// `Resume::Cancel` returned; while one is pending, this returns at once without suspending
/// ([`pending_cancel`]), and the first suspension outside such a region unwinds.
pub(crate) fn suspend(task: &Task, reason: Suspend) -> Resume {
    // A parking or sleeping caller checked before it entered the park state or set `SLEEPING`
    // (`pending_cancel`): from then on a waker may have taken the fiber out of that wait and
    // requeued it already, so the switch must happen for real (the wake-up resumes it).
    if reason == Suspend::Yield && pending_cancel(task) {
        return Resume::Cancel;
    }
    let msg = suspend_uncancellable(task, reason);
    if (msg == Resume::Cancel || task.park.cancel_requested())
        && !panicking()
        && !task.own.get(Own::Shielded)
    {
        if task.own.get(Own::NoUnwind) {
            record_cancel(task);
            return Resume::Cancel;
        }
        unwind_cancelled(task, msg == Resume::Cancel);
    }
    msg
}

/// Unwinds the running fiber with the [`Cancelled`] marker: the targeted kind if `targeted`
/// (runtime shutdown) or on a `cancel()`, which wins over an expired deadline; else the
/// deadline's. `resume_unwind` runs no panic hook, so the fiber notes its own unwind (see
/// [`panicking`]).
pub(crate) fn unwind_cancelled(task: &Task, targeted: bool) -> ! {
    task.own.set(Own::Unwinding, true);
    task.own.set(Own::CancelUnwind, true);
    let by_deadline = !targeted && !task.park.targeted() && task.park.deadline_expired();
    std::panic::resume_unwind(Box::new(if by_deadline {
        Cancelled::DEADLINE
    } else {
        Cancelled::TARGETED
    }))
}

/// `std::thread::panicking()`, answered for the running fiber rather than for its carrier.
///
/// std counts panics per OS thread, so while one fiber is switched out mid-unwind (a destructor
/// that locks, sleeps or does I/O) every other fiber on its carrier would look as if it were
/// panicking: a guard it dropped would poison its lock, and a guard it took would not poison
/// when it really panicked. Each switch-out records whether the fiber was unwinding
/// ([`suspend_uncancellable`]); while no fiber of this thread is switched out mid-unwind, std's
/// answer is the fiber's own. Otherwise the fiber's record answers, which the runtime's panic hook
/// raises when the fiber begins a panic ([`note_panic`]). One case stays approximate: a fiber that
/// catches its own panic while a neighbour is parked mid-unwind keeps its record until it
/// switches out, or, if the panic hook was replaced or the unwind came from `resume_unwind`,
/// does not get one.
#[inline]
pub(crate) fn panicking() -> bool {
    std::thread::panicking() && own_unwind()
}

/// The slow half of [`panicking`]: this thread is unwinding somewhere; is it the caller?
#[cold]
fn own_unwind() -> bool {
    if PARKED_UNWINDING.with(Cell::get) == 0 {
        return true;
    }
    with_task(|task| task.own.get(Own::Unwinding)).unwrap_or(false)
}

/// Records that the running fiber has begun a panic; called by the runtime's panic hook.
pub(crate) fn note_panic() {
    with_task(|task| {
        task.own.set(Own::Unwinding, true);
        task.own.set(Own::CancelUnwind, false);
    });
}

/// Is the running fiber unwinding because it was cancelled (not because it panicked)? Locks are
/// not poisoned by such an unwind (docs/cancellation.md). Approximate in the same cases as
/// [`panicking`]: the record is cleared when the fiber next switches out not unwinding, or when
/// the runtime's panic hook sees it begin a real panic.
#[inline]
pub(crate) fn cancel_unwinding() -> bool {
    with_task(|task| task.own.get(Own::CancelUnwind)).unwrap_or(false)
}

/// Acts on a cancellation recorded earlier (see [`suspend`]) or requested (`Task::cancel`):
/// outside a no-unwind region it unwinds now; inside one it records a requested one and returns
/// true, and the caller must not wait. False if none is pending, or if the fiber is unwinding
/// already outside a no-unwind region (its destructors' waits work as usual).
#[inline]
pub(crate) fn pending_cancel(task: &Task) -> bool {
    if !task.own.get(Own::CancelPending) && !task.park.cancel_requested() {
        return false;
    }
    act_on_cancel(task)
}

/// The slow half of [`pending_cancel`].
#[cold]
#[inline(never)]
fn act_on_cancel(task: &Task) -> bool {
    if task.own.get(Own::Shielded) {
        // Deferred until the shield ends; waits inside it complete as usual.
        return false;
    }
    let recorded = task.own.get(Own::CancelPending);
    if panicking() {
        // Mid-unwind, only a no-unwind region gives up (it reports the cancellation); other waits
        // (a destructor's) wait as usual rather than return at once, which would spin.
        return recorded && task.own.get(Own::NoUnwind);
    }
    if task.own.get(Own::NoUnwind) {
        record_cancel(task);
        return true;
    }
    task.own.set(Own::CancelPending, false);
    unwind_cancelled(task, false)
}

/// As [`pending_cancel`] for a recorded cancellation only: what a park asks before it changes
/// the park state (a requested one is seen by `ParkState::begin_park` itself, at no extra cost).
#[inline]
pub(crate) fn pending_recorded_cancel(task: &Task) -> bool {
    task.own.get(Own::CancelPending) && act_on_cancel(task)
}

/// Records a cancellation the fiber cannot unwind for now (see [`suspend`]).
#[inline]
pub(crate) fn record_cancel(task: &Task) {
    task.own.set(Own::CancelPending, true);
}

/// Is a cancellation recorded on `task` (see [`record_cancel`]), or requested while it is not
/// unwinding already? A requested one is recorded here inside [`without_unwinding`], so that the
/// region reports it (a wait that gives up on it must not look like a time-out).
#[inline]
pub(crate) fn is_cancel_pending(task: &Task) -> bool {
    if task.own.get(Own::Shielded) {
        return false;
    }
    if task.own.get(Own::CancelPending) {
        return true;
    }
    if task.park.cancel_requested() && !panicking() {
        if task.own.get(Own::NoUnwind) {
            record_cancel(task);
        }
        return true;
    }
    false
}

/// Is the running fiber inside [`without_unwinding`] with a cancellation pending (recorded, or
/// requested)? Waits there give up when it is: they cannot wait any longer, nor unwind. Outside
/// such a region always false: a wait there must not end without what it waits for (a lock
/// "acquired" that way would not be held); it parks, and the park unwinds.
#[inline]
pub(crate) fn cancel_pending() -> bool {
    with_task(|task| task.own.get(Own::NoUnwind) && is_cancel_pending(task)).unwrap_or(false)
}

/// Runs `f` on the current fiber with cancellation recorded instead of unwound (for code inside
/// an `extern "C"` frame, which unwinding cannot cross); returns `f`'s result and whether a
/// cancellation is now pending. The fiber unwinds at its first suspension after the region. On
/// a plain thread, just runs `f`.
#[cfg(fiber_hook)]
pub(crate) fn without_unwinding<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let Some(ptr) = task_ptr() else {
        return (f(), false);
    };
    // SAFETY: as in `with_task`: the running task, alive while it runs; `f` runs on it.
    let task = unsafe { ptr.as_ref() };
    let region = task.own.scoped(Own::NoUnwind);
    let value = f();
    drop(region);
    (value, task.own.get(Own::CancelPending))
}

/// Runs `f` on the current fiber with cancellation deferred (a shield): a `cancel()`, an expired
/// [`timeout`](crate::timeout) or runtime shutdown arriving meanwhile neither unwinds nor cuts
/// short a wait inside `f` (waits complete as usual; a hooked libc call does not fail with
/// `ECANCELED`). The cancellation takes effect at the first cancellable wait after `f` returns.
/// Nests. On a plain OS thread (which nothing cancels), just runs `f`.
///
/// Runtime shutdown resumes a shielded fiber a few times and then leaks its stack if `f` still
/// waits: keep shielded work short (cleanup that must finish, as asyncio's `shield`).
///
/// ```
/// use std::time::Duration;
/// let fiber = fiber::spawn(|| {
///     fiber::uncancellable(|| fiber::sleep(Duration::from_millis(20))); // completes
///     fiber::sleep(Duration::from_secs(3600)); // the cancel lands here
/// });
/// fiber::sleep(Duration::from_millis(5));
/// fiber.cancel();
/// assert!(fiber.join().unwrap_err().is::<fiber::Cancelled>());
/// ```
pub fn uncancellable<R>(f: impl FnOnce() -> R) -> R {
    let Some(ptr) = task_ptr() else {
        return f();
    };
    // SAFETY: as in `with_task`: the running task, alive while it runs; `f` runs on it.
    let task = unsafe { ptr.as_ref() };
    let _region = task.own.scoped(Own::Shielded);
    f()
}

/// Runs `f`, one of the driver's own syscalls on a non-blocking fd whose waits the driver does
/// itself (`IoSource`), so that the libc interposition (feature `hook`) passes it straight to
/// libc instead of looking the fd up and running the I/O loop a second time. Nothing in `f`
/// may wait. On a plain thread, just runs `f`.
#[inline]
pub(crate) fn native_io<R>(f: impl FnOnce() -> R) -> R {
    let Some(ptr) = task_ptr() else {
        return f();
    };
    // SAFETY: as in `with_task`: the running task, alive while it runs; `f` runs on it.
    let task = unsafe { ptr.as_ref() };
    let _region = task.own.scoped(Own::NativeIo);
    f()
}

/// For an interposed libc call: `None` on a plain thread, else whether the running fiber is
/// inside [`native_io`] (one thread-local read for both answers).
#[cfg(fiber_hook)]
#[inline]
pub(crate) fn fiber_in_native_io() -> Option<bool> {
    let ptr = task_ptr()?;
    // SAFETY: as in `with_task`: the running task, alive while it runs; we run on it.
    Some(unsafe { ptr.as_ref() }.own.get(Own::NativeIo))
}

/// Would a cancellation requested of the running fiber unwind it at its next cancellable wait
/// (a request of either kind, not inside a shield, not unwinding already)? For waits that cannot
/// be cut short themselves but can pass the cancellation on (a scope's owner).
pub(crate) fn cancel_would_land(task: &Task) -> bool {
    task.park.cancel_requested() && honours_cancel(task)
}

/// Does the running fiber honour cancellation in its waits now (not inside a shield, not
/// unwinding already)?
#[inline]
pub(crate) fn honours_cancel(task: &Task) -> bool {
    !task.own.get(Own::Shielded) && !panicking()
}

/// As [`suspend`], but a cancellation is returned, not unwound: for waits that must not end early
/// because other fibers borrow from this fiber's stack (a scope's owner, a `block_on` caller).
#[inline]
pub(crate) fn suspend_uncancellable(task: &Task, reason: Suspend) -> Resume {
    if panicking() {
        return suspend_mid_unwind(task, reason);
    }
    // A fiber that caught its panic keeps its record until here (see [`panicking`]).
    if task.own.get(Own::Unwinding) {
        task.own.set(Own::Unwinding, false);
        task.own.set(Own::CancelUnwind, false);
    }
    switch_out(task, reason)
}

/// [`suspend_uncancellable`] for a fiber in the middle of an unwind (a destructor that parks):
/// out of line, so that the common switch carries no guard and no landing pad.
#[cold]
#[inline(never)]
fn suspend_mid_unwind(task: &Task, reason: Suspend) -> Resume {
    task.own.set(Own::Unwinding, true);
    // Counted while switched out; uncounted however the switch ends (a coroutine dropped while
    // suspended is unwound from inside `suspend`). Fibers never migrate: the same thread's count.
    let _parked = ParkedUnwinding::enter();
    switch_out(task, reason)
}

/// Switches to the worker with `reason`; returns the worker's message when resumed.
#[inline(always)]
fn switch_out(task: &Task, reason: Suspend) -> Resume {
    let yielder = task.yielder.get();
    debug_assert!(!yielder.is_null());
    // SAFETY: `yielder` was set when this fiber's body started and points into the coroutine's
    // initial frame, which lives until the body returns; we are running on that coroutine.
    unsafe { (*yielder).suspend(reason) }
}

/// One fiber of this thread switched out mid-unwind, for as long as it lives.
struct ParkedUnwinding;

impl ParkedUnwinding {
    fn enter() -> ParkedUnwinding {
        PARKED_UNWINDING.with(|n| n.set(n.get() + 1));
        ParkedUnwinding
    }
}

impl Drop for ParkedUnwinding {
    fn drop(&mut self) {
        PARKED_UNWINDING.with(|n| n.set(n.get() - 1));
    }
}
