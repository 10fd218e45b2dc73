//! The park state of a fiber: one byte, std's park protocol.
//!
//! | state      | meaning                                                        |
//! |------------|----------------------------------------------------------------|
//! | `EMPTY`    | no token; the fiber is running (or runnable)                   |
//! | `PARKED`   | the fiber is parked, or switching out to park                  |
//! | `NOTIFIED` | a token is available: the next `park` returns at once          |
//!
//! Transitions (each one atomic read-modify-write):
//! - `park`: `EMPTY → PARKED`, then the fiber switches out. If the state was `NOTIFIED` the park
//!   returns at once instead, consuming the token.
//! - `unpark`: `PARKED → EMPTY` (the unparker consumes the token on the fiber's behalf and must
//!   requeue it), or `EMPTY`/`NOTIFIED → NOTIFIED` (a token for the next park). A woken fiber
//!   therefore resumes with its state already `EMPTY`: the common park costs one atomic operation
//!   on each side, and an unpark that arrives after the wake-up is kept for the next park.
//! - cancellation (runtime shutdown resumes a fiber without an unpark): the fiber takes itself out
//!   of `PARKED` with [`ParkState::leave_parked`]; whichever of it and a racing unparker makes the
//!   `PARKED → EMPTY` transition owns the requeue.
//!
//! The *run token* of a parked fiber (its queue reference, see src/task/mod.rs) stays with the
//! `PARKED` state: the worker does not drop its `Arc` when a fiber parks, and the one caller that
//! makes the `PARKED → EMPTY` transition takes that reference over.
//!
//! The race "unpark arrives while the fiber is still switching out": the unparker sees `PARKED`
//! and pushes the fiber to its home worker's queue while that worker is still running it. This is
//! safe because of carrier affinity: only the home worker ever resumes the fiber, and it is busy
//! finishing the switch; it finds the fiber in its queue afterwards. No wake-up can be lost and no
//! fiber can run on two threads (docs/decisions/0001-park-protocol.md).
use std::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

pub(crate) struct ParkState(AtomicU8);

impl ParkState {
    pub(crate) const fn new() -> ParkState {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// `EMPTY → PARKED`; false if a token was available instead (it is consumed). Acquire on
    /// both outcomes: what the unparker that left the token did before `unpark` is visible.
    #[inline]
    pub(crate) fn begin_park(&self) -> bool {
        match self
            .0
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(seen) => {
                // Only NOTIFIED can be seen here: only the fiber itself sets PARKED, and it is
                // never PARKED while it runs (a wake-up or a cancelled resume leaves it first).
                debug_assert_eq!(seen, NOTIFIED, "park state corrupted");
                // Consume with a read-modify-write, not a store: it reads the latest unpark's write
                // (every unpark is an RMW), so the caller sees what *every* unparker did before
                // its condition re-check. A plain store could swallow a racing unpark unseen.
                self.0.swap(EMPTY, Ordering::Acquire);
                false
            }
        }
    }

    /// Makes a token available; true if the fiber was parked, in which case the token is consumed
    /// by this wake-up and the caller must requeue the fiber (it now owns the run token).
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            // Always a write, even NOTIFIED → NOTIFIED: each unpark is a release operation that
            // the next `begin_park` acquires, so the parker sees what this unparker did.
            let new = if seen == PARKED { EMPTY } else { NOTIFIED };
            match self
                .0
                .compare_exchange_weak(seen, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return seen == PARKED,
                Err(now) => seen = now,
            }
        }
    }

    /// `PARKED → EMPTY` only; true if this call made it, and the caller then owns the run token
    /// the parked state held. Used by notifiers that must decide before publishing what the
    /// fiber waits for (they requeue it), and by a fiber resumed without an unpark, i.e. a
    /// cancellation (it releases the token); false if the fiber was not parked, or someone else
    /// made the transition first.
    #[inline]
    pub(crate) fn leave_parked(&self) -> bool {
        self.0.load(Ordering::Relaxed) == PARKED
            && self
                .0
                .compare_exchange(PARKED, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}
