//! Which task this thread is running: the task layer's one thread-local.
//!
//! The worker publishes the task around each resume (`set_task`); a fiber reading it always sees
//! itself, because fibers never migrate once started. On a plain OS thread it is `None`. Below
//! the scheduler on purpose: the driver, the sync primitives and the API ask "am I a fiber, which
//! one?" without knowing anything about workers.
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;

use super::Task;
use crate::coro::{Resume, Suspend};

thread_local! {
    static TASK: Cell<Option<NonNull<Task>>> = const { Cell::new(None) };
}

/// Marker payload used to unwind a fiber cancelled by runtime shutdown.
pub(crate) struct Cancelled;

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
/// resumed to be cancelled (runtime shutdown) this unwinds the fiber, unless it is unwinding
/// already, in which case it returns and the caller treats it as a spurious wake-up.
///
/// A cancellation that arrived earlier where the fiber could not unwind (`cancel_pending`, see
/// [`suspend_reporting`]) unwinds here at once, without suspending.
pub(crate) fn suspend(task: &Task, reason: Suspend) -> Resume {
    unwind_if_cancel_pending(task);
    let msg = suspend_uncancellable(task, reason);
    if msg == Resume::Cancel && !std::thread::panicking() {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
    msg
}

/// Unwinds the fiber now if a cancellation is pending (see [`suspend_reporting`]), unless it is
/// unwinding already. A cancellable suspension point calls it before it changes any state that
/// the suspension would hand over (the park state's run token, see `park_fiber`).
#[inline]
pub(crate) fn unwind_if_cancel_pending(task: &Task) {
    if task.cancel_pending.get() && !std::thread::panicking() {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
}

/// As [`suspend`], for a fiber that must not unwind here (it runs inside an `extern "C"` frame,
/// which unwinding cannot cross): a cancellation is reported as `Err(Cancelled)` and remembered,
/// so that the fiber's next cancellable suspension unwinds, and until then every reporting
/// suspension fails at once instead of waiting.
#[cfg(feature = "hook")]
pub(crate) fn suspend_reporting(task: &Task, reason: Suspend) -> Result<Resume, Cancelled> {
    if task.cancel_pending.get() {
        return Err(Cancelled);
    }
    match suspend_uncancellable(task, reason) {
        Resume::Cancel => {
            task.cancel_pending.set(true);
            Err(Cancelled)
        }
        msg => Ok(msg),
    }
}

/// As [`suspend`], but a cancellation is returned, not unwound: for waits that must not end early
/// because other fibers borrow from this fiber's stack (a scope's owner, a `block_on` caller).
pub(crate) fn suspend_uncancellable(task: &Task, reason: Suspend) -> Resume {
    let yielder = task.yielder.get();
    debug_assert!(!yielder.is_null());
    // SAFETY: `yielder` was set when this fiber's body started and points into the coroutine's
    // initial frame, which lives until the body returns; we are running on that coroutine.
    unsafe { (*yielder).suspend(reason) }
}
