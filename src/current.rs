//! Functions acting on the calling fiber — or, called from a plain OS thread, on that thread,
//! exactly as their `std::thread` namesakes.
use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::coro::{Resume, Suspend};
use crate::driver::timer::TimerAction;
use crate::scheduler::context;
use crate::task::{Fiber, FiberId, Task};

/// The handle of the calling fiber; on a plain OS thread, a handle standing for that thread.
pub fn current() -> Fiber {
    if let Some(task) = context::current_task() {
        return Fiber::from_task(task);
    }
    thread_local! {
        static THREAD_ID: Cell<Option<FiberId>> = const { Cell::new(None) };
    }
    let id = THREAD_ID.with(|cell| match cell.get() {
        Some(id) => id,
        None => {
            let id = FiberId::next();
            cell.set(Some(id));
            id
        }
    });
    Fiber::from_thread(std::thread::current(), id)
}

/// True when called from a fiber (as opposed to a plain OS thread).
pub fn is_fiber() -> bool {
    context::current_task_ptr().is_some()
}

/// Blocks the calling fiber until its park token is made available by [`Fiber::unpark`], as
/// [`std::thread::park`]: only the fiber waits, its worker runs other fibers meanwhile. It may
/// also return spuriously, so callers re-check their condition in a loop.
pub fn park() {
    if context::with_task(|task| park_fiber(task, true)).is_none() {
        std::thread::park();
    }
}

/// As [`park`], but runtime shutdown does not unwind the caller out of it (it returns, like a
/// spurious wake-up). For waits that other fibers' borrows depend on: a scope's owner waiting for
/// its scoped fibers, a `block_on` caller waiting for its closure. If such a caller never gets
/// what it waits for, shutdown leaks its stack rather than freeing memory still borrowed.
pub(crate) fn park_uncancellable() {
    if context::with_task(|task| park_fiber(task, false)).is_none() {
        std::thread::park();
    }
}

/// The fiber side of the park protocol (src/task/state.rs): consume a token, or switch out
/// until unparked. The state returns to `EMPTY` however the suspension ends, including a
/// cancellation unwinding through here, so that a later park (say, in a destructor) starts clean.
fn park_fiber(task: &Task, cancellable: bool) {
    if !task.park.begin_park() {
        return;
    }
    struct EndPark<'a>(&'a Task);
    impl Drop for EndPark<'_> {
        fn drop(&mut self) {
            // Woken by an unpark: the unparker already left PARKED. Resumed by a cancellation
            // (runtime shutdown), perhaps unwinding: leave it here, unless an unparker races us.
            self.0.cancel_park();
        }
    }
    let _end = EndPark(task);
    if cancellable {
        context::suspend(task, Suspend::Park);
    } else {
        context::suspend_uncancellable(task, Suspend::Park);
    }
}

/// As [`park`], but returns after `dur` at the latest, as [`std::thread::park_timeout`].
pub fn park_timeout(dur: Duration) {
    let parked = context::with_task(|task| {
        let Some(deadline) = Instant::now().checked_add(dur) else {
            // Too far to represent: the same as waiting forever.
            return park();
        };
        let key = context::with_worker(|w| {
            w.add_timer(
                deadline,
                TimerAction::Unpark(context::current_task().expect("called on a fiber")),
            )
        })
        .expect("a fiber always runs on a worker");
        park_fiber(task, true);
        context::with_worker(|w| w.cancel_timer(key));
    });
    if parked.is_none() {
        std::thread::park_timeout(dur);
    }
}

/// Lets other fibers on this worker run before the caller continues, as
/// [`std::thread::yield_now`]. On a plain OS thread, yields the thread.
pub fn yield_now() {
    if context::with_task(|task| context::suspend(task, Suspend::Yield)).is_none() {
        std::thread::yield_now();
    }
}

/// Puts the calling fiber to sleep for at least `dur`, as [`std::thread::sleep`]; only the fiber
/// waits. It does not use or consume the park token. On a plain OS thread, sleeps the thread.
pub fn sleep(dur: Duration) {
    let slept = context::with_task(|task| {
        let Some(deadline) = Instant::now().checked_add(dur) else {
            // Longer than the clock can represent: sleep in representable steps.
            loop {
                sleep(Duration::from_secs(u32::MAX as u64));
            }
        };
        if dur.is_zero() {
            return;
        }
        let key = context::with_worker(|w| {
            w.add_timer(
                deadline,
                TimerAction::Resume(context::current_task().expect("called on a fiber")),
            )
        })
        .expect("a fiber always runs on a worker");
        // Only the timer requeues a sleeping fiber (and removes itself when it fires); any other
        // resume is a cancellation, which leaves the timer behind.
        if context::suspend(task, Suspend::Wait) == Resume::Cancel {
            context::with_worker(|w| w.cancel_timer(key));
        }
    });
    if slept.is_none() {
        std::thread::sleep(dur);
    }
}
