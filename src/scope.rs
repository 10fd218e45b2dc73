//! Scoped fibers, as `std::thread::scope`: fibers that may borrow from the caller's stack.
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::spawn::{check_name, spawn_in};
use crate::scheduler::Handle;
use crate::task::join::{JoinHandle, ScopeData};
use crate::task::park::park_uncancellable;
use crate::task::Fiber;

/// A scope to spawn scoped fibers in; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    shared: Arc<Handle>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// An owned permission to join a scoped fiber.
pub struct ScopedJoinHandle<'scope, T> {
    handle: JoinHandle<T>,
    scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the fiber and returns its result (`Err` with the payload if it panicked).
    pub fn join(self) -> std::thread::Result<T> {
        self.handle.join()
    }

    /// Cancels the fiber, as [`JoinHandle::cancel`].
    pub fn cancel(&self) {
        self.handle.cancel()
    }

    /// True once the fiber has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The handle of the fiber.
    pub fn fiber(&self) -> &Fiber {
        self.handle.fiber()
    }

    /// The handle of the fiber, under std's name (`std::thread::JoinHandle::thread`).
    pub fn thread(&self) -> &Fiber {
        self.handle.fiber()
    }
}

/// Creates a scope for spawning fibers that borrow non-`'static` data, as
/// [`std::thread::scope`]. Every fiber spawned in the scope is joined before `scope` returns; if
/// one of them panicked and was not joined, `scope` panics.
///
/// ```
/// let mut numbers = vec![1, 2, 3];
/// let total = std::sync::atomic::AtomicI32::new(0);
/// fiber::scope(|s| {
///     s.spawn(|| total.fetch_add(numbers.iter().sum(), std::sync::atomic::Ordering::Relaxed));
/// });
/// numbers.push(4);
/// assert_eq!(total.into_inner(), 6);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData::new(crate::current())),
        shared: crate::runtime::current_or_default(),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    // The scoped fibers borrow from this stack: this wait must not be cut short, not even by a
    // runtime shutdown cancelling this fiber (it would free what they borrow). An expired
    // `timeout` around the scope cancels them instead (they are part of its work), once.
    let mut passed_on = false;
    while scope.data.running.load(Ordering::Acquire) != 0 {
        if !passed_on && deadline_landed() {
            passed_on = true;
            scope.data.cancel();
            continue;
        }
        park_uncancellable();
    }
    // The fibers' tasks hold the scope's data (their packets tell it when they finish): let go
    // of them, or each would keep the other alive.
    scope.data.forget_fibers();
    if passed_on {
        // The deadline's unwind lands here, now that nothing borrows this stack any more.
        crate::task::context::with_task(crate::task::context::pending_cancel);
    }
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if scope.data.panicked.load(Ordering::Relaxed) => panic!("a scoped fiber panicked"),
        Ok(value) => value,
    }
}

/// Has a deadline of the calling fiber expired, to be honoured now (not in a shield)?
fn deadline_landed() -> bool {
    crate::task::context::with_task(|task| {
        task.park.deadline_expired() && crate::task::context::cancel_would_land(task)
    })
    .unwrap_or(false)
}

impl<'scope> Scope<'scope, '_> {
    /// Cancels every fiber spawned in this scope, as [`ScopedJoinHandle::cancel`] on each: parked
    /// ones wake and unwind, running ones unwind at their next wait, unstarted ones never run.
    /// Fibers spawned in the scope after this call are cancelled at once. Returns at once; the
    /// scope still waits for them all to stop. Their `join()` gives `Err(Cancelled)` (unless
    /// they finished first); the scope does not count them as panicked.
    pub fn cancel(&self) {
        self.data.cancel();
    }

    /// Spawns a scoped fiber; see [`scope`]. Panics if the runtime cannot take it.
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        crate::Builder::new()
            .spawn_scoped(self, f)
            .unwrap_or_else(|err| panic!("failed to spawn fiber: {err}"))
    }
}

impl<'scope> Scope<'scope, '_> {
    /// `Builder::spawn_scoped`'s work: count the fiber in, spawn it, or undo the count.
    #[cfg_attr(feature = "tracing", track_caller)]
    pub(crate) fn spawn_with<F, T>(
        &'scope self,
        name: Option<String>,
        stack_size: Option<usize>,
        f: F,
    ) -> std::io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // Before the count: a panic here must not leave the scope waiting for a fiber.
        check_name(name.as_deref());
        self.data.running.fetch_add(1, Ordering::Relaxed);
        match spawn_in(
            self.shared.clone(),
            name,
            stack_size,
            f,
            Some(self.data.clone()),
        ) {
            Ok(handle) => {
                self.data.register(handle.fiber());
                Ok(ScopedJoinHandle {
                    handle,
                    scope: PhantomData,
                })
            }
            Err(err) => {
                // The packet was never made: undo the count ourselves.
                self.data.running.fetch_sub(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }
}

impl Scope<'_, '_> {
    /// A scope owned by a value instead of entered through [`scope`]: for groups (src/group),
    /// which must wait for [`Scope::running`] to reach zero themselves before they are dropped.
    pub(crate) fn owned() -> Self {
        Scope {
            data: Arc::new(ScopeData::new(crate::current())),
            shared: crate::runtime::current_or_default(),
            scope: PhantomData,
            env: PhantomData,
        }
    }

    /// Lets go of the scope's fibers once none is running (their packets hold the scope's
    /// data: kept, each would keep the other alive).
    pub(crate) fn forget_fibers(&self) {
        self.data.forget_fibers();
    }

    /// Scoped fibers not finished yet; the owner is unparked when this reaches zero.
    pub(crate) fn running(&self) -> usize {
        self.data.running.load(Ordering::Acquire)
    }
}
