//! Parking the calling fiber: the task-layer operation every wait is built on (the driver's timed
//! waits, the readiness slots, the sync primitives, join). Called from a plain OS thread, each
//! function does what its `std::thread` namesake does.
use std::cell::Cell;

use std::panic::Location;

use super::context;
use super::reason::{self, kind};
use super::state::Begin;
use super::{Fiber, FiberId, Own, Task};
use crate::coro::{Resume, Suspend};

/// The handle of the calling fiber; on a plain OS thread, a handle standing for that thread.
pub fn current() -> Fiber {
    if let Some(task) = context::task() {
        return Fiber::from_task(task);
    }
    Fiber::from_thread(std::thread::current(), thread_id())
}

/// The id that stands for the calling OS thread (see [`current`]), given on first use.
#[inline]
pub(crate) fn thread_id() -> FiberId {
    thread_local! {
        static THREAD_ID: Cell<Option<FiberId>> = const { Cell::new(None) };
    }
    THREAD_ID.with(|cell| match cell.get() {
        Some(id) => id,
        None => {
            let id = FiberId::next();
            cell.set(Some(id));
            id
        }
    })
}

/// True when called from a fiber (as opposed to a plain OS thread).
pub fn is_fiber() -> bool {
    context::task_ptr().is_some()
}

/// Blocks the calling fiber until its park token is made available by [`Fiber::unpark`], as
/// [`std::thread::park`]: only the fiber waits, its worker runs other fibers meanwhile. It may
/// also return spuriously, so callers re-check their condition in a loop.
///
/// A dump ([`crate::dump`]) shows the fiber as waiting in `park` at the caller's location.
#[track_caller]
pub fn park() {
    let site = Location::caller();
    let parked = context::with_task(|task| {
        // Restored however the park ends (a cancellation unwinds out of it).
        let _wait = reason::enter_on(task, reason::word(kind::PARK, 0), site);
        park_fiber(task, true);
    });
    if parked.is_none() {
        std::thread::park();
    }
}

/// [`park`] without describing the wait: for the crate's own park loops, whose callers describe
/// what they wait for (`reason::Scope`).
pub(crate) fn park_plain() {
    if context::with_task(|task| park_fiber(task, true)).is_none() {
        std::thread::park();
    }
}

/// As [`park`], but cancellation (runtime shutdown, `Fiber::cancel`) does not unwind the caller
/// out of it (it returns, like a spurious wake-up). For waits that other fibers' borrows depend
/// on: a scope's owner waiting for its scoped fibers, a `block_on` caller waiting for its closure. If such a caller never gets
/// what it waits for, shutdown leaks its stack rather than freeing memory still borrowed.
pub(crate) fn park_uncancellable() {
    if context::with_task(|task| park_fiber(task, false)).is_none() {
        std::thread::park();
    }
}

/// Lets other fibers on this worker run before the caller continues, as
/// [`std::thread::yield_now`]. On a plain OS thread, yields the thread.
pub fn yield_now() {
    if context::with_task(|task| context::suspend(task, Suspend::Yield)).is_none() {
        std::thread::yield_now();
    }
}

/// The fiber side of the park protocol (src/task/state.rs): consume a token, or switch out
/// until unparked. The state returns to `EMPTY` however the suspension ends, including a
/// cancellation unwinding through here, so that a later park (say, in a destructor) starts clean.
/// Returns how the fiber was resumed (`Run` when a token was consumed without switching out); an
/// uncancellable park returns `Cancel` when runtime shutdown resumed it.
pub(crate) fn park_fiber(task: &Task, cancellable: bool) -> Resume {
    // Inside `uncancellable` every park is an uncancellable one.
    let cancellable = cancellable && !task.own.get(Own::Shielded);
    // Before the park state changes: a recorded cancellation unwinds (or, where the fiber cannot
    // unwind, ends the park) without switching out.
    if cancellable && context::pending_recorded_cancel(task) {
        return Resume::Cancel;
    }
    match task.park.begin_park(cancellable) {
        Begin::Parked => {}
        Begin::Token => return Resume::Run,
        Begin::Cancelled => {
            // Requested (`Task::cancel`): unwind, or end the park where the fiber cannot unwind.
            if context::pending_cancel(task) {
                return Resume::Cancel;
            }
            // The fiber is unwinding already: its destructors' waits work as usual.
            match task.park.begin_park(false) {
                Begin::Parked => {}
                _ => return Resume::Run,
            }
        }
    }
    struct EndPark<'a>(&'a Task);
    impl Drop for EndPark<'_> {
        fn drop(&mut self) {
            // Woken by an unpark (or a cancel request): the waker already left PARKED. Resumed by
            // runtime shutdown, perhaps unwinding: leave it here, unless an unparker races us.
            self.0.cancel_park();
        }
    }
    let _end = EndPark(task);
    if cancellable {
        context::suspend(task, Suspend::Park)
    } else {
        context::suspend_uncancellable(task, Suspend::Park)
    }
}
