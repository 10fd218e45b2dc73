//! Waiting with a deadline: `park_until` (the one park-with-deadline), the public
//! `park_timeout` and `sleep` built on the worker's timers, and `park_node`, the one park loop
//! that I/O readiness and every sync primitive use.
use std::panic::Location;
use std::time::{Duration, Instant};

use super::timer::{self, TimerAction};
use crate::coro::{Resume, Suspend};
use crate::task::context;
use crate::task::park::{park_fiber, park_plain};
use crate::task::reason::{self, kind};
use crate::task::wait::{Node, WaitResult};

/// Parks the calling fiber until it is unparked or `deadline` passes (or spuriously), as
/// `park_timeout` with an absolute deadline. On a plain OS thread, `std::thread::park_timeout`.
pub(crate) fn park_until(deadline: Instant) {
    let parked = context::with_task(|task| {
        let me = context::task().expect("called on a fiber");
        let key = timer::with(|t| t.insert(deadline, TimerAction::Unpark(me)));
        // Removed however the park ends: a cancelled fiber unwinds out of it, and its entry
        // would otherwise hold the task until the deadline.
        struct CancelTimer(Option<timer::TimerKey>);
        impl Drop for CancelTimer {
            fn drop(&mut self) {
                if let Some(key) = self.0.take() {
                    timer::with(|t| t.cancel(key));
                }
            }
        }
        let _timer = CancelTimer(Some(key));
        park_fiber(task, true);
    });
    if parked.is_none() {
        std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// As [`park`](crate::park), but returns after `dur` at the latest, as
/// [`std::thread::park_timeout`].
#[track_caller]
pub fn park_timeout(dur: Duration) {
    let site = Location::caller();
    match Instant::now().checked_add(dur) {
        Some(deadline) => {
            let _wait = reason::enter(
                reason::word(kind::PARK_TIMEOUT, reason::deadline_ms(deadline)),
                site,
            );
            park_until(deadline)
        }
        // Too far to represent: the same as waiting forever.
        None => {
            let _wait = reason::enter(reason::word(kind::PARK, 0), site);
            park_plain()
        }
    }
}

/// Puts the calling fiber to sleep for at least `dur`, as [`std::thread::sleep`]; only the fiber
/// waits. It does not use or consume the park token. On a plain OS thread, sleeps the thread.
#[track_caller]
pub fn sleep(dur: Duration) {
    let site = Location::caller();
    let slept = context::with_task(|task| {
        let Some(deadline) = Instant::now().checked_add(dur) else {
            // Longer than the clock can represent: sleep in representable steps (until a
            // cancellation the fiber cannot unwind for ends it, see `context::suspend`).
            while !context::cancel_pending() {
                sleep(Duration::from_secs(u32::MAX as u64));
            }
            return;
        };
        if dur.is_zero() {
            return;
        }
        sleep_on_timer(task, deadline, site);
    });
    if slept.is_none() {
        std::thread::sleep(dur);
    }
}

/// Sleeps until `deadline`, as `std::thread::sleep_until`: at once if it has passed. On a plain
/// OS thread, the thread sleeps.
#[track_caller]
pub fn sleep_until(deadline: Instant) {
    let site = Location::caller();
    let slept = context::with_task(|task| {
        if deadline > Instant::now() {
            sleep_on_timer(task, deadline, site);
        }
    });
    if slept.is_none() {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// Suspends the running fiber until its worker's timer reaches `deadline`, or a cancellation.
fn sleep_on_timer(task: &crate::task::Task, deadline: Instant, site: &'static Location<'static>) {
    let _wait = reason::enter_on(
        task,
        reason::word(kind::SLEEP, reason::deadline_ms(deadline)),
        site,
    );
    // A cancel request that finds the fiber sleeping where it cannot unwind (mid-unwind, in a
    // shield) wakes it early: it sleeps on for the rest. Runtime shutdown resuming it
    // (`Resume::Cancel`) ends the sleep.
    loop {
        // Unwinds if cancelled; returns true (do not sleep) where the fiber cannot unwind.
        if context::pending_cancel(task) {
            return;
        }
        match sleep_once(task, deadline) {
            // The timer fired: the deadline has passed, no clock read needed.
            Woke::Timer | Woke::Shutdown => return,
            Woke::Early if Instant::now() >= deadline => return,
            Woke::Early => {}
        }
    }
}

/// How one suspension of [`sleep_on_timer`] ended.
enum Woke {
    /// Requeued by its timer entry (the deadline passed).
    Timer,
    /// Resumed by runtime shutdown: the sleep ends.
    Shutdown,
    /// Anything else (a cancel request it could not honour): sleep on if time is left.
    Early,
}

/// One suspension of [`sleep_on_timer`].
fn sleep_once(task: &crate::task::Task, deadline: Instant) -> Woke {
    let me = context::task().expect("called on a fiber");
    let key = timer::with(|t| t.insert(deadline, TimerAction::Resume(me)));
    // A fiber already unwinding, or shielded, sleeps even if cancelled (its destructors' waits
    // work as usual).
    if !task.park.begin_sleep(context::honours_cancel(task)) {
        // A cancel request arrived since the check above.
        timer::with(|t| t.cancel(key));
        context::pending_cancel(task);
        return Woke::Early;
    }
    // Only the timer and a cancel request requeue a sleeping fiber, each after clearing
    // `SLEEPING` (src/task/state.rs); the timer also removes its entry. Resumed by anything else
    // (runtime shutdown), the fiber clears the bit itself. Either way but the timer's, the entry
    // is left behind and removed here (if it fired meanwhile, that finds nothing).
    struct EndSleep<'a>(&'a crate::task::Task, Option<timer::TimerKey>);
    impl EndSleep<'_> {
        /// True if the timer requeued the fiber; otherwise its entry is removed.
        fn end(&mut self) -> bool {
            let not_by_timer = self.0.park.leave_sleep() || self.0.park.cancel_requested();
            // Taken however it ended: a fired entry is gone already.
            if let Some(key) = self.1.take().filter(|_| not_by_timer) {
                timer::with(|t| t.cancel(key));
            }
            !not_by_timer
        }
    }
    impl Drop for EndSleep<'_> {
        fn drop(&mut self) {
            if self.1.is_some() {
                self.end();
            }
        }
    }
    let mut end = EndSleep(task, Some(key));
    let resumed = context::suspend(task, Suspend::Wait);
    match (end.end(), resumed) {
        (true, _) => Woke::Timer,
        (false, Resume::Cancel) => Woke::Shutdown,
        (false, _) => Woke::Early,
    }
}

/// Parks the calling fiber until `ready()` holds, as [`park_while_not`] without a deadline, but
/// runtime shutdown neither unwinds the fiber nor ends the wait by itself: for a wait inside an
/// `extern "C"` frame (the libc interposition) whose arguments another thread may still be using.
/// Each time shutdown resumes the fiber, the cancellation is remembered (`cancel_pending`: the
/// fiber unwinds at its first cancellable suspension outside the hook) and `withdraw()` says
/// whether the wait may end now (true: `Err(Cancelled)`). On a plain thread, parks the thread
/// (nothing cancels it).
#[cfg(fiber_hook)]
pub(crate) fn park_while_not_uncancellable(
    mut ready: impl FnMut() -> bool,
    mut withdraw: impl FnMut() -> bool,
) -> Result<(), context::Cancelled> {
    let parked = context::with_task(|task| {
        while !ready() {
            if park_fiber(task, false) == Resume::Cancel || context::is_cancel_pending(task) {
                context::record_cancel(task);
                if withdraw() {
                    return Err(context::Cancelled::TARGETED);
                }
            }
        }
        Ok(())
    });
    parked.unwrap_or_else(|| {
        while !ready() {
            std::thread::park();
        }
        Ok(())
    })
}

/// Parks the calling fiber (or thread) until `ready()` holds, or `deadline` passes: true if ready.
/// `ready` is re-checked after every wake-up, so spurious wake-ups are harmless. This is the one
/// park loop of the crate; the wait lists, the readiness slots and `select!` all wait here.
pub(crate) fn park_while_not(mut ready: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        if ready() {
            return true;
        }
        // A cancellation the fiber cannot unwind for (`task::context::without_unwinding`): it
        // cannot wait any longer.
        // (Only the hooks set it: without them, no load on every wait.)
        if cfg!(fiber_hook) && context::cancel_pending() {
            return false;
        }
        match deadline {
            None => park_plain(),
            Some(deadline) => {
                if Instant::now() >= deadline {
                    return false;
                }
                park_until(deadline);
            }
        }
    }
}

/// Parks the caller until `node` is notified or `deadline` passes. At the deadline `expire` runs:
/// it must take the owner's lock and `remove` the node, returning true if the node was still
/// queued (then this returns `TimedOut`); if a notifier got there first it returns false and the
/// token (now visible) is returned instead.
pub(crate) fn park_node(
    node: &Node,
    deadline: Option<Instant>,
    mut expire: impl FnMut() -> bool,
) -> WaitResult {
    loop {
        if park_while_not(|| node.token().is_some(), deadline) {
            return WaitResult::Notified(node.token().expect("checked just now"));
        }
        if expire() {
            return WaitResult::TimedOut;
        }
        // A notifier chose the node before `expire` took the lock: its token is visible now.
    }
}
