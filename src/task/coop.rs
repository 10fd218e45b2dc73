//! The cooperative budget: a fiber whose operations all succeed at once still lets the other
//! fibers of its worker run.
//!
//! # Why
//!
//! Scheduling is cooperative: a fiber switches out only when it blocks, yields or finishes. An
//! operation that succeeds on its fast path (a read of a socket that always has data, `try_recv`,
//! `try_lock`, `OnceLock::get`, an uncontended `lock`, an unbounded `send`) never switches, so a
//! loop of them held its worker forever: a busy reader let a 10 ms ticker on the same worker run
//! 0 times in 3 s, and a `try_recv` spin-wait for a value that a sibling fiber sends never ended.
//!
//! # How
//!
//! Every fiber I/O operation and every sync/channel operation calls [`spend`] once on entry,
//! before it takes any lock of its own. `spend` takes one unit from the running fiber's budget: a
//! thread-local counter (a load, a decrement, a store, a branch). The worker refills it to [`BUDGET`]
//! every time it resumes a fiber ([`refill`]), so a fiber that parks, sleeps or yields anyway
//! starts each run with a full budget and never reaches the check.
//!
//! When the budget is spent, the running fiber asks its scheduler ([`Schedule::should_yield`](super::Schedule::should_yield),
//! the scheduler's `Worker::coop_work_waits` in src/scheduler/worker.rs), which does what the worker would do between ticks — fire due timers, move the inbox to the run
//! queue, poll its reactor without blocking (readiness is only seen by a poll, and a fiber that
//! never switches out would otherwise keep the worker from polling) — and reports whether any
//! other fiber is now runnable on this worker (the `next` slot, the run queue, or an unstarted
//! fiber, which it moves to the run queue). If one is, the fiber yields behind it; if none is,
//! it carries on at once with a fresh budget. Either way the budget is refilled.
//!
//! On a plain OS thread (no worker) the counter starts at `u32::MAX` and is never refilled; once in
//! 2^32 operations the check finds no worker and resets it: the same calls behave as std's. It does
//! not yield after shutdown has begun, so no new switch points appear while fibers unwind.
//!
//! Pure CPU loops spend nothing and still need `fiber::yield_now()` (docs/caveats.md).
use std::cell::Cell;
use std::time::Duration;

use super::context;
use crate::coro::Suspend;

/// Operations a fiber may make per run before it checks whether others wait.
///
/// Measured (`examples/coop_cost.rs`, docs/benchmark-notes.md "Cooperative budget"): a check that
/// finds nothing else to run costs ~50 ns (a `try_recv` spin checking at every call took 65-120 ns
/// per call against 12-28 ns). At 128 that is ~0.4 ns per operation: a few per cent of the
/// cheapest (`try_recv` ~12 ns, `OnceLock::get` ~3 ns), nothing against a syscall. The delay the
/// others see is this many operations: ~0.1-0.3 ms of socket reads. 32 would make the check 4x as
/// heavy for delays that are already below the OS scheduler's noise here; tokio uses 128 too.
pub(crate) const BUDGET: u32 = 128;

/// The least time between two reactor polls made by budget checks of one worker. A non-blocking
/// `epoll_wait` costs ~0.6 µs here, against ~1.4 µs for 128 `try_recv`s: polling at every check
/// made a lone `try_recv` spin 45 % slower; once per 50 µs bounds that to about 1 %, and readiness
/// for the worker's other fibers is still seen within 50 µs of busy time.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_micros(50);

thread_local! {
    /// Units left in the running fiber's budget. Starts at `u32::MAX` on every thread, so a plain
    /// thread (never refilled) reaches the check once per 2^32 operations and finds no worker.
    static LEFT: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Gives the fiber about to be resumed on this thread a full budget (the worker, before each
/// switch into a fiber).
#[inline]
pub(crate) fn refill() {
    LEFT.set(BUDGET);
}

/// Spends one unit of the running fiber's budget; once it is spent, yields if other work waits on
/// this worker. In effect a no-op on a plain OS thread.
#[inline]
pub(crate) fn spend() {
    // Never 0 here: `spent` refills before anything else can run on this thread. (`left > 1`
    // then a store cost 12 more instructions per `sync_pingpong` iteration than this.)
    let left = LEFT.get().wrapping_sub(1);
    LEFT.set(left);
    if left == 0 {
        spent();
    }
}

/// The budget ran out: refill it and yield if another fiber can run on this worker.
#[cold]
#[inline(never)]
fn spent() {
    let yield_now = context::with_task(|task| {
        LEFT.set(BUDGET);
        task.scheduler.should_yield()
    });
    match yield_now {
        Some(true) => {
            context::with_task(|task| context::suspend(task, Suspend::Yield));
        }
        // Nothing else to run here: still a point where a requested cancellation lands.
        Some(false) => {
            context::with_task(context::pending_cancel);
        }
        // A plain thread: nothing to check, for the next 2^32 operations either.
        None => LEFT.set(u32::MAX),
    }
}
