//! The park state of a fiber: one byte, std's park protocol.
//!
//! | state      | meaning                                                        |
//! |------------|----------------------------------------------------------------|
//! | `EMPTY`    | no token; the fiber is running (or runnable)                   |
//! | `PARKED`   | the fiber is parked, or switching out to park                  |
//! | `NOTIFIED` | a token is available: the next `park` returns at once          |
//!
//! Transitions:
//! - `park`: `NOTIFIED → EMPTY` returns at once (token consumed). Otherwise `EMPTY → PARKED`, then the
//!   fiber switches out; when resumed it stores `EMPTY`.
//! - `unpark`: swaps in `NOTIFIED`. Only the caller that sees `PARKED` requeues the fiber, so a
//!   parked fiber is requeued exactly once.
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

    /// Consumes an available token. Acquire: what the unparker did before `unpark` is visible.
    #[inline]
    pub(crate) fn try_consume(&self) -> bool {
        self.0
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// `EMPTY → PARKED`; false if a token arrived meanwhile (it is consumed).
    #[inline]
    pub(crate) fn begin_park(&self) -> bool {
        match self
            .0
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(seen) => {
                // Only NOTIFIED can be seen here: the fiber itself is the only one that sets
                // PARKED or EMPTY, and it always ends a park with EMPTY (even when unwinding).
                debug_assert_eq!(seen, NOTIFIED, "park state corrupted");
                self.0.store(EMPTY, Ordering::Relaxed);
                false
            }
        }
    }

    /// After being resumed: back to `EMPTY` (consumes the token that woke it).
    #[inline]
    pub(crate) fn end_park(&self) {
        self.0.swap(EMPTY, Ordering::Acquire);
    }

    /// Makes a token available; true if the fiber was parked and the caller must requeue it.
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        self.0.swap(NOTIFIED, Ordering::AcqRel) == PARKED
    }
}
