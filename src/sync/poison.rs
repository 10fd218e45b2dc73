//! Poisoning, as in std: a lock whose guard is dropped while its holder panics is "poisoned", and
//! later `lock` calls return `Err(PoisonError)` (which still carries the guard).
//!
//! The public types are std's own (`std::sync::PoisonError`, `TryLockError`, `LockResult`,
//! `TryLockResult`), re-exported from `fiber::sync`, so code that matches on them keeps compiling
//! unchanged when it switches from `std::sync` to `fiber::sync`.
use std::sync::atomic::{AtomicBool, Ordering};

pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// The poison bit of one lock.
pub(crate) struct Flag(AtomicBool);

/// Part of an exclusive guard: poisons the flag if dropped by a panic that began *during* the
/// critical section (it remembers whether the holder was already panicking when it took the lock).
pub(crate) struct Guard<'a> {
    flag: &'a Flag,
    panicking: bool,
}

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }

    /// Called when a lock is taken exclusively.
    #[inline]
    pub(crate) fn guard(&self) -> Guard<'_> {
        Guard {
            flag: self,
            panicking: crate::task::context::panicking(),
        }
    }

    /// `value`, wrapped in `Err` if the lock is poisoned.
    #[inline]
    pub(crate) fn check<G>(&self, value: G) -> LockResult<G> {
        if self.get() {
            Err(PoisonError::new(value))
        } else {
            Ok(value)
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl<'a> Guard<'a> {
    #[inline]
    pub(crate) fn flag(&self) -> &'a Flag {
        self.flag
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A cancelled fiber's unwind does not poison (docs/cancellation.md).
        if !self.panicking
            && crate::task::context::panicking()
            && !crate::task::context::cancel_unwinding()
        {
            self.flag.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Maps the `Ok`/`Err` of a poison check onto a result carrying `value`.
#[inline]
pub(crate) fn map_result<T, U>(result: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
    match result {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}

/// `Deref`, `Debug` and `Display` of a lock guard, forwarded to its `inner` `lock_api` guard.
macro_rules! forward_guard {
    ($($guard:ident),+) => {$(
        impl<T: ?Sized> std::ops::Deref for $guard<'_, T> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                &self.inner
            }
        }

        impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for $guard<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: ?Sized + std::fmt::Display> std::fmt::Display for $guard<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&**self, f)
            }
        }
    )+};
}
pub(crate) use forward_guard;
