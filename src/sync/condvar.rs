//! `Condvar`: std's API; waiters queue on the shared [`WaitQueue`] and park.
//!
//! `wait` links the caller's node *before* it unlocks the mutex (the queue's `before_sleep` hook),
//! so a `notify_*` issued by anyone who takes the mutex after that point finds the node: no lost
//! wake-up. A notifier that holds the mutex (or changed the predicate under it) may skip the queue
//! lock when nobody waits (`WaitQueue::has_waiters`). `notify_all` wakes every waiter; they then
//! contend on the mutex (no requeueing onto the mutex queue: a known, documented cost).
//!
//! A waiter unwound out of `wait` (runtime shutdown cancels parked fibers) does not own the mutex
//! (it was unlocked before parking): its guard is leaked, neither unlocking nor poisoning the
//! mutex, and a `notify_one` that had chosen it is passed on to the next waiter.
use std::fmt;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::poison::{self, LockResult};
use super::waitq::{WaitQueue, WaitResult, TOKEN_NORMAL};

/// Whether a timed wait on a [`Condvar`] returned because of its time-out (std's type, mirrored).
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the time-out elapsed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// Token of a `notify_one` wake-up (`notify_all` hands `TOKEN_NORMAL`): a waiter that is unwound
/// instead of returning passes it on.
const TOKEN_ONE: usize = 1;

/// Passes a `notify_one` wake-up on if dropped (only reached by unwinding).
struct PassOn<'a> {
    condvar: &'a Condvar,
    armed: bool,
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.condvar.notify_one();
        }
    }
}

/// A condition variable that parks the waiting fiber (or thread).
pub struct Condvar {
    queue: WaitQueue,
}

impl Condvar {
    /// A new condition variable.
    pub const fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(),
        }
    }

    /// Unlocks the guard's mutex, waits for a notification (spurious wake-ups are possible, as in
    /// std), and re-locks.
    #[track_caller]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None, std::panic::Location::caller())
            .0
    }

    /// Waits while `condition` returns true.
    #[track_caller]
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As `wait`, giving up after `dur`.
    #[track_caller]
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (result, timed_out) = self.wait_until(
            guard,
            Instant::now().checked_add(dur),
            std::panic::Location::caller(),
        );
        poison::map_result(result, |g| (g, WaitTimeoutResult(timed_out)))
    }

    /// As `wait_while`, giving up after `dur`; the result says whether the condition still held.
    #[track_caller]
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = Instant::now().checked_add(dur);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let (result, _) = self.wait_until(guard, deadline, std::panic::Location::caller());
            guard = match result {
                Ok(g) => g,
                Err(e) => {
                    return Err(poison::PoisonError::new((
                        e.into_inner(),
                        WaitTimeoutResult(false),
                    )))
                }
            };
        }
    }

    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
        site: &'static std::panic::Location<'static>,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let MutexGuard { poison, inner, .. } = guard;
        let mutex = lock_api::MutexGuard::mutex(&inner);
        // From `before_sleep` until the re-lock below the mutex is not ours. If this frame unwinds
        // in between (runtime shutdown cancels a parked fiber, in the wait or in the re-lock), the
        // guard must neither unlock the mutex (someone else may hold it) nor poison it (we did not
        // hold it when the unwinding began): the lock guard is forgotten and the poison guard is
        // leaked, which owns nothing else.
        std::mem::forget(inner);
        let poison = ManuallyDrop::new(poison);
        // A composite primitive (a `Barrier`) keeps its own description.
        let wait = crate::task::reason::enter_unless_described(
            crate::task::reason::at(crate::task::reason::kind::CONDVAR, self),
            site,
        );
        let result = self.queue.wait(
            TOKEN_NORMAL,
            || true,
            // SAFETY: we own the lock of the guard forgotten above, and release it here once; it
            // is re-acquired below before a guard exists again.
            || unsafe { mutex.force_unlock() },
            deadline,
            |_| {},
            // Unwound after a `notify_one` chose us: wake another waiter in our place.
            |token| {
                if token == TOKEN_ONE {
                    self.notify_one();
                }
            },
        );
        drop(wait);
        // Likewise if we are unwound while re-locking, after a `notify_one` woke us.
        let pass_on = PassOn {
            condvar: self,
            armed: result == WaitResult::Notified(TOKEN_ONE),
        };
        let inner = mutex.lock();
        std::mem::forget(pass_on);
        let guard = MutexGuard::new(ManuallyDrop::into_inner(poison), inner);
        (guard, result == WaitResult::TimedOut)
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        if self.queue.has_waiters() {
            self.queue.notify_one(|_| TOKEN_ONE);
        }
    }

    /// Wakes all waiters.
    pub fn notify_all(&self) {
        self.queue.notify_all(TOKEN_NORMAL);
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
