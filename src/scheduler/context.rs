//! Which worker this thread is: the scheduler's thread-local.
//!
//! A raw pointer set by the worker itself for the lifetime of its loop. Fibers never migrate once
//! started, so a fiber reading it always sees its own carrier. The running task is the task
//! layer's business (`task::context`), below this one.
use std::cell::Cell;

use super::worker::Worker;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

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
