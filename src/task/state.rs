//! The park state of a fiber: one byte, std's park protocol, plus two bits that share its
//! read-modify-writes (`SLEEPING`, `CANCELLED`, below the table).
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
//! Two more bits, so that their races are decided by the same atomic operations
//! (docs/cancellation.md):
//! - `SLEEPING`: the fiber is suspended in `sleep` (`Suspend::Wait`), whose timer entry holds a
//!   reference. Whoever clears the bit (the timer firing, or a cancel) requeues the fiber; a fiber
//!   resumed with the bit still set (runtime shutdown) clears it itself.
//! - `CANCELLED`: sticky, set once by [`ParkState::request_cancel`]. The setter wakes the fiber if
//!   it was `PARKED` (taking the run token, as an unpark does) or `SLEEPING` (clearing the bit).
//!   A cancellable park whose `EMPTY → PARKED` fails on this bit does not park
//!   ([`Begin::Cancelled`]); an uncancellable one parks regardless.
//! - `DEADLINE`: a `fiber::timeout` of this fiber expired and has not caught its unwind yet
//!   (src/timeout.rs). It acts exactly as `CANCELLED` (set and woken by
//!   [`ParkState::request_deadline`]), but it is *scoped*: the fiber clears it
//!   ([`ParkState::clear_deadline`]) when the expired `timeout` calls have caught their unwinds.
//!   Either bit set means "woken already": only the request that sets the first of them wakes.
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
/// The two bits of the park state proper (`EMPTY`, `PARKED`, `NOTIFIED`).
const STATE: u8 = 3;
/// Suspended in `sleep`; see the module docs.
const SLEEPING: u8 = 4;
/// Cancellation requested; see the module docs.
const CANCELLED: u8 = 8;
/// A deadline expired (scoped cancellation); see the module docs.
const DEADLINE: u8 = 16;
/// Either kind of cancellation: what every cancellable wait honours.
const ANY_CANCEL: u8 = CANCELLED | DEADLINE;

pub(crate) struct ParkState(AtomicU8);

/// How [`ParkState::begin_park`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Begin {
    /// `EMPTY → PARKED`: the caller must switch out with `Suspend::Park`.
    Parked,
    /// A token was available and is consumed: return without switching out.
    Token,
    /// Cancellation was requested (and the caller honours it): nothing changed.
    Cancelled,
}

/// What [`ParkState::request_cancel`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CancelWake {
    /// Already requested before, or the fiber is not waiting: nothing to do.
    Nothing,
    /// It was `PARKED` and is now `EMPTY`: the caller owns the run token and must requeue it.
    Parked,
    /// It was `SLEEPING` and the bit is now clear: the caller must requeue it with a reference of
    /// its own (the timer entry keeps, and later drops, its own).
    Sleeping,
}

impl ParkState {
    pub(crate) const fn new() -> ParkState {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// `EMPTY → PARKED`, or consumes an available token ([`Begin::Token`]). With `honour_cancel`,
    /// a requested cancellation ends it instead ([`Begin::Cancelled`], nothing changed); without,
    /// the fiber parks (or consumes) as if none were requested. Acquire on every outcome: what
    /// the unparker that left a token (or the canceller) did before is visible.
    #[inline]
    pub(crate) fn begin_park(&self, honour_cancel: bool) -> Begin {
        match self
            .0
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Begin::Parked,
            Err(seen) => self.begin_park_slow(seen, honour_cancel),
        }
    }

    #[cold]
    fn begin_park_slow(&self, mut seen: u8, honour_cancel: bool) -> Begin {
        loop {
            if honour_cancel && seen & ANY_CANCEL != 0 {
                return Begin::Cancelled;
            }
            // Only the fiber itself sets PARKED or SLEEPING, and it is neither while it runs (a
            // wake-up or a cancelled resume leaves them first).
            debug_assert_eq!(seen & (SLEEPING | PARKED), 0, "park state corrupted");
            if seen & STATE == NOTIFIED {
                // Consume with a read-modify-write, not a store: it reads the latest unpark's
                // write (every unpark is an RMW), so the caller sees what *every* unparker did
                // before its condition re-check. A plain store could swallow a racing unpark.
                self.0.fetch_and(!STATE, Ordering::Acquire);
                return Begin::Token;
            }
            match self
                .0
                .compare_exchange(seen, seen | PARKED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Begin::Parked,
                Err(now) => seen = now,
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
            let parked = seen & STATE == PARKED;
            let new = (seen & !STATE) | if parked { EMPTY } else { NOTIFIED };
            match self
                .0
                .compare_exchange_weak(seen, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return parked,
                Err(now) => seen = now,
            }
        }
    }

    /// `PARKED → EMPTY` only; true if this call made it, and the caller then owns the run token
    /// the parked state held. Used by notifiers that must decide before publishing what the
    /// fiber waits for (they requeue it), and by a fiber resumed without an unpark, i.e. a
    /// shutdown cancellation (it releases the token); false if the fiber was not parked, or
    /// someone else made the transition first.
    #[inline]
    pub(crate) fn leave_parked(&self) -> bool {
        let mut seen = self.0.load(Ordering::Relaxed);
        while seen & STATE == PARKED {
            match self
                .0
                .compare_exchange(seen, seen & !STATE, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
        false
    }

    /// Sets `SLEEPING` before the fiber suspends in `sleep`; false (nothing changed) if a
    /// cancellation is requested and `honour_cancel`: the fiber must not sleep.
    #[inline]
    pub(crate) fn begin_sleep(&self, honour_cancel: bool) -> bool {
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            if honour_cancel && seen & ANY_CANCEL != 0 {
                return false;
            }
            match self.0.compare_exchange_weak(
                seen,
                seen | SLEEPING,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
    }

    /// Clears `SLEEPING`; true if this call did, and the caller then decides the fiber's
    /// resumption (the timer requeues it; a fiber resumed by shutdown just goes on).
    #[inline]
    pub(crate) fn leave_sleep(&self) -> bool {
        self.0.load(Ordering::Relaxed) & SLEEPING != 0
            && self.0.fetch_and(!SLEEPING, Ordering::AcqRel) & SLEEPING != 0
    }

    /// Sets `CANCELLED` and takes the fiber out of a wait it is in, in one operation; see
    /// [`CancelWake`]. Only the first request wakes: later ones find the bit set and do nothing.
    pub(crate) fn request_cancel(&self) -> CancelWake {
        self.request(CANCELLED)
    }

    /// As [`request_cancel`](Self::request_cancel) for the scoped `DEADLINE` bit.
    pub(crate) fn request_deadline(&self) -> CancelWake {
        self.request(DEADLINE)
    }

    fn request(&self, bit: u8) -> CancelWake {
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            if seen & bit != 0 {
                return CancelWake::Nothing;
            }
            // A fiber with either bit set was woken by the request that set it, or was running;
            // it honours the new bit at the same points.
            let (new, wake) = if seen & ANY_CANCEL != 0 {
                (seen | bit, CancelWake::Nothing)
            } else if seen & STATE == PARKED {
                ((seen & !STATE) | bit, CancelWake::Parked)
            } else if seen & SLEEPING != 0 {
                ((seen & !SLEEPING) | bit, CancelWake::Sleeping)
            } else {
                (seen | bit, CancelWake::Nothing)
            };
            match self
                .0
                .compare_exchange_weak(seen, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return wake,
                Err(now) => seen = now,
            }
        }
    }

    /// For a dump: is the fiber parked (`PARKED`) or sleeping (`SLEEPING`)? One relaxed load.
    #[inline]
    pub(crate) fn observe(&self) -> (bool, bool) {
        let s = self.0.load(Ordering::Relaxed);
        (s & STATE == PARKED, s & SLEEPING != 0)
    }

    /// For a dump: `PARKED → EMPTY`, taking the run token as an unparker would, so that the
    /// fiber stays suspended while the dumper reads what it waits on. Returns the state left
    /// behind, to give to [`repark`](Self::repark); `None` if the fiber was not parked.
    pub(crate) fn pin(&self) -> Option<u8> {
        let mut seen = self.0.load(Ordering::Relaxed);
        while seen & STATE == PARKED {
            let new = seen & !STATE;
            match self
                .0
                .compare_exchange(seen, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(new),
                Err(now) => seen = now,
            }
        }
        None
    }

    /// Gives a pinned fiber's run token back to its parked state: `left → left | PARKED`, if
    /// nothing happened since [`pin`](Self::pin) returned `left`. False if something did (an
    /// unpark left a token, a cancellation arrived): the caller then holds the run token and must
    /// requeue the fiber, which sees a wake-up (and re-checks what it waits for).
    pub(crate) fn repark(&self, left: u8) -> bool {
        self.0
            .compare_exchange(left, left | PARKED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Clears `DEADLINE` (the fiber itself, once the expired deadlines have caught their unwinds).
    #[inline]
    pub(crate) fn clear_deadline(&self) {
        self.0.fetch_and(!DEADLINE, Ordering::Relaxed);
    }

    /// Is a cancellation of either kind requested (the sticky one, or an expired deadline)?
    #[inline]
    pub(crate) fn cancel_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) & ANY_CANCEL != 0
    }

    /// Has the fiber itself been cancelled (`Task::cancel`; sticky: once true, always true)?
    #[inline]
    pub(crate) fn targeted(&self) -> bool {
        self.0.load(Ordering::Relaxed) & CANCELLED != 0
    }

    /// Has a deadline of the fiber expired, not yet caught?
    #[inline]
    pub(crate) fn deadline_expired(&self) -> bool {
        self.0.load(Ordering::Relaxed) & DEADLINE != 0
    }
}
