//! The one thread-local of the runtime: which worker this thread is, and which fiber it is running.
//!
//! Both are raw pointers set by the worker itself: `WORKER` for the lifetime of the worker loop,
//! `TASK` around each resume. Fibers never migrate once started, so a fiber reading these always
//! sees its own carrier's values.
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;

use super::worker::Worker;
use crate::coro::{Resume, Suspend};
use crate::task::Task;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
    static TASK: Cell<Option<NonNull<Task>>> = const { Cell::new(None) };
}

/// Marker payload used to unwind a fiber cancelled by runtime shutdown.
pub(crate) struct Cancelled;

/// Sets this thread's worker for the guard's lifetime.
pub(crate) struct EnterWorker(());

impl EnterWorker {
    pub(crate) fn new(worker: &Worker) -> EnterWorker {
        WORKER.with(|w| w.set(worker));
        EnterWorker(())
    }
}

impl Drop for EnterWorker {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(std::ptr::null()));
    }
}

/// Runs `f` with this thread's worker, if it is one.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(&Worker) -> R) -> Option<R> {
    let ptr = WORKER.with(Cell::get);
    // SAFETY: WORKER is non-null only while `Worker::run` is on this thread's stack (EnterWorker),
    // so the worker outlives this call; workers are only accessed through shared references.
    (!ptr.is_null()).then(|| f(unsafe { &*ptr }))
}

/// Publishes the task about to be resumed on this thread; returns the previous value.
#[inline]
pub(crate) fn set_task(task: Option<NonNull<Task>>) -> Option<NonNull<Task>> {
    TASK.with(|t| t.replace(task))
}

/// The task running on this thread, if any.
#[inline]
pub(crate) fn current_task_ptr() -> Option<NonNull<Task>> {
    TASK.with(Cell::get)
}

/// Runs `f` with the running task, if the caller is a fiber.
#[inline]
pub(crate) fn with_task<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    let ptr = current_task_ptr()?;
    // SAFETY: TASK points at a task the worker keeps alive (it holds an `Arc`) while it runs, and
    // `f` runs on the fiber, during that run.
    Some(f(unsafe { ptr.as_ref() }))
}

/// A new reference to the running task, if the caller is a fiber.
#[inline]
pub(crate) fn current_task() -> Option<Arc<Task>> {
    let ptr = current_task_ptr()?;
    // SAFETY: TASK was produced by `Arc::as_ptr` on a task the worker keeps alive while it runs;
    // we add a strong count for the `Arc` we hand out.
    unsafe {
        Arc::increment_strong_count(ptr.as_ptr());
        Some(Arc::from_raw(ptr.as_ptr()))
    }
}

/// Switches the running fiber out to its worker. Returns when the worker resumes it; if it is
/// resumed to be cancelled (runtime shutdown) this unwinds the fiber, unless it is unwinding
/// already, in which case it returns and the caller treats it as a spurious wake-up.
pub(crate) fn suspend(task: &Task, reason: Suspend) -> Resume {
    let msg = suspend_uncancellable(task, reason);
    if msg == Resume::Cancel && !std::thread::panicking() {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
    msg
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
