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
//! counter in the carrier worker (one thread-local read and a decrement). The worker refills it to
//! [`BUDGET`] every time it resumes a fiber, so a fiber that parks, sleeps or yields anyway starts
//! each run with a full budget and never reaches the slow path.
//!
//! When the budget is spent, [`Worker::coop_work_waits`](super::worker::Worker::coop_work_waits)
//! does what the worker would do between ticks — fire due timers, move the inbox to the run
//! queue, poll its reactor without blocking (readiness is only seen by a poll, and a fiber that
//! never switches out would otherwise keep the worker from polling) — and reports whether any
//! other fiber is now runnable on this worker (the `next` slot, the run queue, or an unstarted
//! fiber, which it moves to the run queue). If one is, the fiber yields behind it; if none is,
//! it carries on at once with a fresh budget. Either way the budget is refilled.
//!
//! On a plain OS thread (no worker) `spend` does nothing: the same calls behave as std's. It does
//! not yield after shutdown has begun, so no new switch points appear while fibers unwind.
//!
//! Pure CPU loops spend nothing and still need `fiber::yield_now()` (docs/caveats.md).
use std::time::Duration;

use super::context;
use super::worker::Worker;
use crate::coro::Suspend;

/// Operations a fiber may make per run before it checks whether others wait.
///
/// Tokio uses 128 for its coop budget. Measured here (docs/benchmark-notes.md, "Cooperative
/// budget"): the check costs one non-blocking reactor poll when I/O sources exist, so a fiber that
/// spins alone on `try_recv` pays about 1 % of its operations' time at 128; the latency others see
/// is 128 times the cost of one operation.
pub(crate) const BUDGET: u32 = 128;

/// The least time between two reactor polls made by budget checks of one worker. A non-blocking
/// `epoll_wait` costs ~0.6 µs here, against ~1.4 µs for 128 `try_recv`s: polling at every check
/// made a lone `try_recv` spin 45 % slower; once per 50 µs bounds that to about 1 %, and readiness
/// for the worker's other fibers is still seen within 50 µs of busy time.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_micros(50);

/// Spends one unit of the running fiber's budget; once it is spent, yields if other work waits on
/// this worker. A no-op on a plain OS thread.
#[inline]
pub(crate) fn spend() {
    let yield_now = context::with_worker(|w| {
        let left = w.budget.get();
        if left > 1 {
            w.budget.set(left - 1);
            false
        } else {
            spent(w)
        }
    });
    if yield_now == Some(true) {
        // Not on a fiber (the worker loop itself, in a destructor, say): nothing to yield.
        context::with_task(|task| context::suspend(task, Suspend::Yield));
    }
}

/// The budget ran out: refill it; true if another fiber can run here, so the caller should yield.
#[cold]
#[inline(never)]
fn spent(w: &Worker) -> bool {
    w.budget.set(BUDGET);
    !w.shared().is_shutdown() && context::current_task_ptr().is_some() && w.coop_work_waits()
}
