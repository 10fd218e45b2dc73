//! Poisoning, as in std: a lock whose guard is dropped while its holder panics is "poisoned", and
//! later `lock` calls return `Err(PoisonError)` (which still carries the guard).
//!
//! The public types are std's own (`std::sync::PoisonError`, `TryLockError`, `LockResult`,
//! `TryLockResult`), re-exported from `fiber::sync`, so code that matches on them keeps compiling
//! unchanged when it switches from `std::sync` to `fiber::sync`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// The poison bit of one lock.
pub(crate) struct Flag(AtomicBool);

/// Remembers whether the holder was already panicking when it took the lock, so that only a panic
/// *during* the critical section poisons it.
pub(crate) struct Guard {
    panicking: bool,
}

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }

    /// Called when a lock is taken: the guard to hand to `done`, wrapped in `Err` if poisoned.
    #[inline]
    pub(crate) fn guard(&self) -> LockResult<Guard> {
        let guard = Guard {
            panicking: thread::panicking(),
        };
        if self.get() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Called when a lock is released.
    #[inline]
    pub(crate) fn done(&self, guard: &Guard) {
        if !guard.panicking && thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
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

/// Maps the `Ok`/`Err` of a poison check onto a result carrying `value`.
#[inline]
pub(crate) fn map_result<T, U>(result: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
    match result {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}
