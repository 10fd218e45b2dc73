//! `Once`: std's one-time initialisation; while one fiber runs the closure, the others park.
//!
//! State: `INCOMPLETE -> RUNNING -> COMPLETE`, or `RUNNING -> POISONED` when the closure panics,
//! as std's. A poisoned `Once` panics in `call_once` and `wait`, and runs the closure of
//! `call_once_force` again, telling it through [`OnceState::is_poisoned`]. Waiters park on a
//! [`WaitQueue`] with `validate` = "still RUNNING" (or "not COMPLETE" for `wait`), so a finish that
//! lands between their check and their park is never missed.
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use super::waitq::{Filter, WaitQueue, TOKEN_NORMAL};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;
const POISONED: u8 = 3;

/// Runs a closure exactly once, as `std::sync::Once`; callers that arrive while it runs park.
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue,
}

/// What `call_once_force`'s closure is told, as `std::sync::OnceState`.
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// True if an earlier closure of this `Once` panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// Marks the `Once` poisoned if the closure unwinds.
struct PoisonOnUnwind<'a>(&'a Once);

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.finish(POISONED);
    }
}

impl Once {
    /// A `Once` that has not run.
    #[allow(clippy::new_without_default)] // as std's: `Once` has no `Default`
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::new(),
        }
    }

    /// Runs `f` if no closure of this `Once` has completed, once across all callers; the others
    /// park until it has.
    ///
    /// # Panics
    /// If a closure of this `Once` panicked earlier (it is poisoned), as std's; and with `f`'s
    /// own panic, which poisons it.
    #[track_caller]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(false, &mut |_| (f.take().expect("closure runs once"))());
    }

    /// As [`call_once`](Self::call_once), but a poisoned `Once` runs the closure again (telling
    /// it with [`OnceState::is_poisoned`]) instead of panicking.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(true, &mut |state| {
            (f.take().expect("closure runs once"))(state)
        });
    }

    /// True once a closure has completed (without panicking). Never parks.
    pub fn is_completed(&self) -> bool {
        crate::task::coop::spend();
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Parks until a closure of this `Once` has completed, as std's `Once::wait`.
    ///
    /// # Panics
    /// If the `Once` is or becomes poisoned.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_for_completion(false);
    }

    /// As [`wait`](Self::wait), but a poisoned `Once` does not end the wait: it waits for a
    /// `call_once_force` to complete it.
    pub fn wait_force(&self) {
        self.wait_for_completion(true);
    }

    #[cold]
    #[track_caller]
    fn call(&self, ignore_poison: bool, f: &mut dyn FnMut(&OnceState)) {
        loop {
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED if !ignore_poison => panic_poisoned(),
                RUNNING => self.park_while(|s| s == RUNNING),
                from => {
                    if self
                        .state
                        .compare_exchange(from, RUNNING, Ordering::Acquire, Ordering::Acquire)
                        .is_err()
                    {
                        continue;
                    }
                    let guard = PoisonOnUnwind(self);
                    f(&OnceState {
                        poisoned: from == POISONED,
                    });
                    std::mem::forget(guard);
                    self.finish(COMPLETE);
                    return;
                }
            }
        }
    }

    #[track_caller]
    fn wait_for_completion(&self, ignore_poison: bool) {
        loop {
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED if !ignore_poison => panic_poisoned(),
                _ => self.park_while(|s| {
                    s == RUNNING || s == INCOMPLETE || (ignore_poison && s == POISONED)
                }),
            }
        }
    }

    fn park_while(&self, waiting: impl Fn(u8) -> bool) {
        park_while(&self.queue, &self.state, waiting);
    }

    fn finish(&self, state: u8) {
        finish(&self.queue, &self.state, state);
    }
}

/// Parks on `queue` while `waiting(state)` holds: checked under the queue lock, which
/// [`finish`] takes after its store, so no finish is missed. Shared with `OnceLock`.
pub(super) fn park_while(queue: &WaitQueue, state: &AtomicU8, waiting: impl Fn(u8) -> bool) {
    queue.wait(
        TOKEN_NORMAL,
        || waiting(state.load(Ordering::Acquire)),
        || {},
        None,
        |_| {},
        // `finish` wakes every waiter: nothing to pass on.
        |_| {},
    );
}

/// Publishes `new` and wakes every waiter of `queue` to look at it.
pub(super) fn finish(queue: &WaitQueue, state: &AtomicU8, new: u8) {
    state.store(new, Ordering::Release);
    queue.notify_filter(|_| Filter::Notify, |_| TOKEN_NORMAL);
}

#[cold]
#[track_caller]
fn panic_poisoned() -> ! {
    panic!("Once instance has previously been poisoned")
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

// As std's: a panicking closure poisons the `Once`, which every later caller observes.
impl std::panic::RefUnwindSafe for Once {}
impl std::panic::UnwindSafe for Once {}
