//! `Barrier`: std's API, built on this module's `Mutex` and `Condvar` (so it parks fibers).
use std::fmt;

use super::{Condvar, Mutex};

/// Lets `n` fibers (or threads) wait until all of them have reached the barrier.
pub struct Barrier {
    state: Mutex<State>,
    cvar: Condvar,
    n: usize,
}

struct State {
    count: usize,
    generation: u64,
}

/// Returned by [`Barrier::wait`]; exactly one waiter per generation is the leader.
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one of the waiters released together.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult")
            .field("is_leader", &self.0)
            .finish()
    }
}

impl Barrier {
    /// A barrier for `n` parties (`0` behaves as `1`, as in std).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            state: Mutex::new(State {
                count: 0,
                generation: 0,
            }),
            cvar: Condvar::new(),
            n,
        }
    }

    /// Parks until `n` parties have called `wait`; the barrier is then reusable.
    #[track_caller]
    pub fn wait(&self) -> BarrierWaitResult {
        let _wait = crate::task::reason::enter(
            crate::task::reason::at(crate::task::reason::kind::BARRIER, self),
            std::panic::Location::caller(),
        );
        // The barrier's mutex is never held across user code, so it cannot be poisoned.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = state.generation;
        state.count += 1;
        if state.count < self.n {
            let arrival = Arrival {
                barrier: self,
                generation,
            };
            let _state = self
                .cvar
                .wait_while(state, |s| s.generation == generation)
                .unwrap_or_else(|e| e.into_inner());
            std::mem::forget(arrival);
            BarrierWaitResult(false)
        } else {
            state.count = 0;
            state.generation = state.generation.wrapping_add(1);
            drop(state);
            self.cvar.notify_all();
            BarrierWaitResult(true)
        }
    }
}

/// A waiter's arrival, withdrawn if the waiter is unwound out of its wait (a runtime shutting down
/// cancels its parked fibers) before its generation completed: otherwise the barrier would count
/// a party that never leaves, and a later generation would be released one party short.
struct Arrival<'a> {
    barrier: &'a Barrier,
    generation: u64,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        // Only reached by unwinding out of `Condvar::wait_while`, which does not hold the mutex
        // then. Parking here is allowed: a fiber that is already unwinding is not cancelled again.
        let mut state = self.barrier.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.generation == self.generation {
            state.count -= 1;
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").finish_non_exhaustive()
    }
}
