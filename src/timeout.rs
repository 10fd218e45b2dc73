//! Deadlines: `fiber::timeout` and `timeout_at` run a closure on the calling fiber and cancel it
//! back up to that call if the deadline passes first (docs/cancellation.md, "Deadlines").
//!
//! A deadline is one entry in the home worker's timer map. When it fires (on that worker's thread:
//! between fibers, or in the running fiber's own budget check) it counts one expired deadline in the task (`deadlines_expired`)
//! and sets the scoped `DEADLINE` bit of the park state, waking the fiber exactly as `cancel()`
//! does (src/task/state.rs). The fiber then unwinds from its next cancellable wait with
//! `Cancelled::DEADLINE`. Each `timeout` frame catches every unwind, removes its own timer entry,
//! and learns from the removal whether *its* deadline fired: if so it counts the expiry caught
//! (the bit goes when none is left) and returns `Err(Elapsed)`; if not, the unwind is an outer
//! deadline's (or a panic, or a real cancel) and it is resumed. A sticky `cancel()` always wins.
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::driver::timer::{self, TimerAction};
use crate::task::context::{self, Cancelled};
use crate::task::{Own, Task};

/// The error of a [`timeout`] whose deadline passed before its closure finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `f` on the calling fiber; if it is still running after `dur`, the fiber is cancelled back
/// up to this call, which returns `Err(Elapsed)` (destructors inside `f` ran). See
/// [`timeout_at`].
///
/// ```
/// use std::time::Duration;
/// fiber::spawn(|| {
///     let slow = fiber::timeout(Duration::from_millis(10), || fiber::sleep(Duration::from_secs(3600)));
///     assert_eq!(slow, Err(fiber::Elapsed));
///     let fast = fiber::timeout(Duration::from_secs(3600), || 7);
///     assert_eq!(fast, Ok(7));
/// })
/// .join()
/// .unwrap();
/// ```
///
/// # Panics
/// On a plain OS thread (see [`timeout_at`]).
pub fn timeout<T>(dur: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    match Instant::now().checked_add(dur) {
        Some(deadline) => timeout_at(deadline, f),
        // Too far to represent: no deadline.
        None => Ok(f()),
    }
}

/// Runs `f` on the calling fiber with a deadline: if `f` is still running at `deadline`, the
/// fiber is cancelled as by [`JoinHandle::cancel`](crate::JoinHandle::cancel), but only back up to
/// this call, which then returns `Err(Elapsed)`; code after it runs normally.
///
/// - The cancellation lands where any cancel lands (docs/cancellation.md): at `f`'s current or
///   next cancellable wait. A pure CPU loop is not interrupted; if `f` returns a value, the result
///   is `Ok` even when the deadline passed meanwhile (the work completed).
/// - Inside [`uncancellable`](crate::uncancellable) or an interposed libc call it is deferred, as
///   a cancel is; a hooked call fails with `ECANCELED`. If `f` then panics (std's `thread::sleep`
///   asserts on that error), the result is still `Err(Elapsed)`.
/// - Fibers spawned in a [`scope`](crate::scope) inside `f` are cancelled with it.
/// - Nested deadlines: each call catches only its own expiry; an outer one unwinds through the
///   inner calls. A [`cancel`](crate::Fiber::cancel) of the fiber is never swallowed: it unwinds
///   through every `timeout` (a `join()` then gives `Err(Cancelled)`).
///
/// # Panics
/// On a plain OS thread: a thread cannot be cancelled at a deadline (its waits are the OS's).
/// Run the work in a fiber (`fiber::spawn(..).join()`, or `Runtime::block_on`).
pub fn timeout_at<T>(deadline: Instant, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let Some(me) = context::task() else {
        panic!(
            "fiber::timeout called on a plain OS thread: only a fiber can be cancelled at a \
             deadline; run the work in a fiber (fiber::spawn, or Runtime::block_on)"
        );
    };
    let key = timer::with(|t| t.insert(deadline, TimerAction::Deadline(me)));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    context::with_task(|task| settle(task, key, outcome)).expect("still on the same fiber")
}

/// The end of one `timeout` frame: remove the timer entry, and decide between the value, `Elapsed`
/// and resuming the unwind.
fn settle<T>(
    task: &Task,
    key: timer::TimerKey,
    outcome: std::thread::Result<T>,
) -> Result<T, Elapsed> {
    // A hooked call that failed with ECANCELED recorded this; read before it is cleared.
    let hooked_call_cancelled = task.own.get(Own::CancelPending);
    // Absent from the map: it fired (only this thread touches this fiber's timers).
    let expired = !timer::with(|t| t.cancel(key));
    if expired && task.deadline_caught() && !task.park.targeted() {
        // No expired deadline left: a cancellation a hooked call recorded for one is spent too.
        task.own.set(Own::CancelPending, false);
    }
    let payload = match outcome {
        Ok(value) => return Ok(value),
        Err(payload) => payload,
    };
    if task.park.targeted() {
        // The fiber itself is cancelled: that wins, whatever this unwind was.
        if payload.is::<Cancelled>() {
            context::unwind_cancelled(task, true);
        }
        resume_unwind(payload);
    }
    let (by_deadline, panic) = match payload.downcast_ref::<Cancelled>() {
        Some(cancelled) => (cancelled.by_deadline(), false),
        None => (false, true),
    };
    // A panic after a hooked call failed with ECANCELED for this deadline is that failure's
    // consequence (std's `thread::sleep` asserts on it): still a time-out. A shutdown's unwind
    // (targeted `Cancelled`) is never caught.
    if expired && (by_deadline || (panic && hooked_call_cancelled)) {
        return Err(Elapsed);
    }
    resume_unwind(payload)
}
