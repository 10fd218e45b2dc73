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
/// Inside [`without_unwinding`] a cancellation is recorded instead (`cancel_pending`) and
/// `Resume::Cancel` returned; while one is pending, this returns at once without suspending
/// ([`pending_cancel`]), and the first suspension outside such a region unwinds.
pub(crate) fn suspend(task: &Task, reason: Suspend) -> Resume {
    // A parking caller checked before it entered the park state (`pending_cancel`): switching out
    // with `Park` hands the worker's reference to that state, which must happen for real.
    if reason != Suspend::Park && pending_cancel(task) {
        return Resume::Cancel;
    }
    let msg = suspend_uncancellable(task, reason);
    if msg == Resume::Cancel && !std::thread::panicking() {
        if task.no_unwind.get() {
            task.cancel_pending.set(true);
        } else {
            std::panic::resume_unwind(Box::new(Cancelled));
        }
    }
    msg
}

/// Acts on a cancellation recorded earlier (see [`suspend`]): outside a no-unwind region it
/// unwinds now; inside one it returns true, and the caller must not wait. False if none pending.
/// A caller that changes state before suspending (parking) asks this first.
#[inline]
pub(crate) fn pending_cancel(task: &Task) -> bool {
    if !task.cancel_pending.get() {
        return false;
    }
    if task.no_unwind.get() || std::thread::panicking() {
        return true;
    }
    task.cancel_pending.set(false);
    std::panic::resume_unwind(Box::new(Cancelled))
}

/// Is a cancellation pending that the running fiber could not unwind for (see [`suspend`])?
/// Waits inside [`without_unwinding`] give up when it is: they cannot wait any longer.
#[inline]
pub(crate) fn cancel_pending() -> bool {
    with_task(|task| task.cancel_pending.get()).unwrap_or(false)
}

/// Runs `f` on the current fiber with cancellation recorded instead of unwound (for code inside
/// an `extern "C"` frame, which unwinding cannot cross); returns `f`'s result and whether a
/// cancellation is now pending. The fiber unwinds at its first suspension after the region. On
/// a plain thread, just runs `f`.
#[cfg(feature = "hook")]
pub(crate) fn without_unwinding<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let Some(ptr) = task_ptr() else {
        return (f(), false);
    };
    // SAFETY: as in `with_task`: the running task, alive while it runs; `f` runs on it.
    let task = unsafe { ptr.as_ref() };
    // Restores the outer state however `f` ends (a panic in `f` ends the region too).
    struct Restore<'a>(&'a Task, bool);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.no_unwind.set(self.1);
        }
    }
    let restore = Restore(task, task.no_unwind.replace(true));
    let value = f();
    drop(restore);
    (value, task.cancel_pending.get())
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
