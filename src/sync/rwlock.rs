//! `RwLock`: std's API; readers and writers share one FIFO [`WaitQueue`].
//!
//! # State word
//!
//! | bits          | meaning                                                               |
//! |---------------|-----------------------------------------------------------------------|
//! | `WRITER` (1)  | a writer holds the lock                                               |
//! | `QUEUED` (2)  | someone is queued; new readers must queue too (no writer starvation)  |
//! | `n * READER`  | `n` readers hold the lock (bits 2 and up)                             |
//!
//! A read lock is one CAS adding `READER` when neither `WRITER` nor `QUEUED` is set; a write lock
//! is one CAS `0 -> WRITER`. Otherwise the caller queues (its `validate` sets `QUEUED`).
//!
//! # Fairness policy: strict FIFO hand-off, phase-fair batches of readers
//!
//! When the lock becomes free with `QUEUED` set (last reader leaves, or the writer unlocks), the
//! releaser, under the queue lock, hands the lock to the head of the queue: a writer gets it alone;
//! a reader gets it together with every reader queued directly behind it. Because newcomers queue
//! behind waiters as soon as `QUEUED` is set, neither readers nor writers starve. A waiter that is
//! unwound out of its wait (runtime shutdown) after the lock was handed to it releases it at once,
//! which hands it on to the next waiters. A writer that downgrades keeps a read lock and, the same
//! way, hands read locks to the readers at the head of the queue. The price is that
//! recursive read locking can deadlock when a writer is queued (std documents the same hazard).
use std::cell::Cell;
use std::fmt;
use std::ops::DerefMut;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::poison::{self, LockResult, TryLockError, TryLockResult};
use super::waitq::{Filter, Spin, WaitQueue, WaitResult};
use crate::task::reason::{self, kind, Owner};
use lock_api::RawRwLock as _;

const WRITER: usize = 1;
const QUEUED: usize = 2;
const READER: usize = 4;

/// Waiter keys.
const KEY_READ: usize = 0;
const KEY_WRITE: usize = 1;
/// Token: the lock (read or write, per the waiter's key) was handed over.
const TOKEN_HANDOFF: usize = 1;

struct RawRwLock {
    state: AtomicUsize,
    /// The writer holding the lock, for dumps (readers are not recorded).
    writer: Owner,
    queue: WaitQueue,
}

impl RawRwLock {
    const fn new() -> RawRwLock {
        RawRwLock {
            state: AtomicUsize::new(0),
            writer: Owner::new(),
            queue: WaitQueue::new(),
        }
    }

    /// The wait word of a fiber waiting to `read` (else to write) this lock.
    fn wait_word(&self, read: bool) -> u64 {
        let kind = if read {
            kind::RWLOCK_READ
        } else {
            kind::RWLOCK_WRITE
        };
        reason::at(kind, &self.writer)
    }

    /// Tries to take the lock for `key` or to mark `QUEUED`; true means "taken".
    /// Returns `Err(())` when the caller should queue (`QUEUED` now set).
    fn take_or_mark(&self, key: usize) -> Result<bool, ()> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let free_for_me = if key == KEY_READ {
                s & (WRITER | QUEUED) == 0
            } else {
                s == 0
            };
            let next = if free_for_me {
                if key == KEY_READ {
                    s + READER
                } else {
                    WRITER
                }
            } else {
                s | QUEUED
            };
            let success = if free_for_me {
                Ordering::Acquire
            } else {
                Ordering::Relaxed
            };
            match self
                .state
                .compare_exchange_weak(s, next, success, Ordering::Relaxed)
            {
                Ok(_) => return if free_for_me { Ok(true) } else { Err(()) },
                Err(x) => s = x,
            }
        }
    }

    #[cold]
    fn lock_slow(&self, key: usize) {
        let mut spin = Spin::new();
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & QUEUED == 0 && spin.spin() {
                let got = if key == KEY_READ {
                    self.try_lock_shared()
                } else {
                    self.try_lock_exclusive()
                };
                if got {
                    return;
                }
                continue;
            }
            let mut acquired = false;
            let result = self.queue.wait(
                key,
                || match self.take_or_mark(key) {
                    Ok(_) => {
                        acquired = true;
                        false
                    }
                    Err(()) => true,
                },
                || {},
                None,
                |_| {},
                // Unwound (runtime shutdown) holding a handed-over lock: release it, which hands
                // it to the next waiters.
                |token| {
                    if token == TOKEN_HANDOFF {
                        if key == KEY_READ {
                            self.read_unlock();
                        } else {
                            self.write_unlock();
                        }
                    }
                },
            );
            if acquired || result == WaitResult::Notified(TOKEN_HANDOFF) {
                return;
            }
        }
    }

    #[inline]
    fn read_unlock(&self) {
        let prev = self.state.fetch_sub(READER, Ordering::Release);
        if prev == READER | QUEUED {
            self.hand_off(0);
        }
    }

    #[inline]
    fn write_unlock(&self) {
        self.writer.released();
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.hand_off(0);
        }
    }

    /// Passes the lock on, `QUEUED` being set: to the writer at the head of the queue, or to the
    /// readers there. The lock is free (the last reader left) or held by the caller's writer, which
    /// unlocks (`held == 0`) or, for `held == 1`, becomes a reader (downgrade) and admits readers
    /// only.
    #[cold]
    fn hand_off(&self, held: usize) {
        let first = Cell::new(None);
        let readers = Cell::new(held);
        self.queue.notify_filter(
            |key| match (first.get(), key) {
                (None, KEY_WRITE) if held > 0 => Filter::Stop,
                (None, _) | (Some(KEY_READ), KEY_READ) => {
                    first.set(Some(key));
                    if key == KEY_READ {
                        readers.set(readers.get() + 1);
                    }
                    Filter::Notify
                }
                _ => Filter::Stop,
            },
            |result| {
                let queued = if result.have_more { QUEUED } else { 0 };
                let next = if first.get() == Some(KEY_WRITE) {
                    WRITER
                } else {
                    readers.get() * READER
                };
                // Nobody else changes the state while it is "free + QUEUED" or writer-held and
                // we hold the queue lock: fast paths fail on QUEUED, `validate` needs this lock.
                self.state.store(next | queued, Ordering::Release);
                TOKEN_HANDOFF
            },
        );
    }
}

// SAFETY: a writer takes the lock only from state 0 (CAS `0 -> WRITER`, Acquire) or by a hand-off
// that sets `WRITER` alone; readers add `READER` only while `WRITER` is clear, or are handed the
// lock as a batch with `WRITER` clear; unlocking (Release) removes exactly what was taken, and
// `hand_off` passes a free lock on under the queue lock. So a writer excludes everyone else.
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawRwLock = RawRwLock::new();

    // The private raw lock serves only `RwLock`, whose guards are `!Send` as std's.
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock_shared(&self) {
        if !self.try_lock_shared() {
            self.lock_slow(KEY_READ);
        }
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (WRITER | QUEUED) != 0 {
                return false;
            }
            let next = s.checked_add(READER).expect("too many readers");
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        self.read_unlock();
    }

    #[inline]
    fn lock_exclusive(&self) {
        if !self.try_lock_exclusive() {
            self.lock_slow(KEY_WRITE);
            self.writer.acquired();
        }
    }

    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        let got = self
            .state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if got {
            self.writer.acquired();
        }
        got
    }

    #[inline]
    unsafe fn unlock_exclusive(&self) {
        self.write_unlock();
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & !QUEUED != 0
    }

    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }
}

// SAFETY: the caller's write lock becomes one read lock without being released: a CAS
// `WRITER -> READER` when nobody is queued, else a hand-off (under the queue lock, see `hand_off`)
// that keeps one reader for the caller and admits only the readers at the head of the queue.
unsafe impl lock_api::RawRwLockDowngrade for RawRwLock {
    #[inline]
    unsafe fn downgrade(&self) {
        self.writer.released();
        if self
            .state
            .compare_exchange(WRITER, READER, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.hand_off(1);
        }
    }
}

/// A reader-writer lock with std's API (poisoning included) that parks fibers (or threads).
pub struct RwLock<T: ?Sized> {
    poison: poison::Flag,
    inner: lock_api::RwLock<RawRwLock, T>,
}

/// RAII shared-read guard of an [`RwLock`].
///
/// `lock_api`'s mapped read guard: its plain `RwLockReadGuard` holds `&RwLock<_, T>`, which is
/// invariant in `T`, while the mapped one holds `*const T` and is covariant, as std's guard is.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    inner: lock_api::MappedRwLockReadGuard<'a, RawRwLock, T>,
}

/// RAII exclusive-write guard of an [`RwLock`].
///
/// `lock_api`'s guard plus the poison guard, declared first so that a panic poisons the lock
/// before `inner` unlocks it.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    poison: poison::Guard<'a>,
    inner: lock_api::RwLockWriteGuard<'a, RawRwLock, T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            poison: poison::Flag::new(),
            inner: lock_api::RwLock::const_new(RawRwLock::new(), value),
        }
    }

    /// Consumes the lock, returning the data; `Err` if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        self.poison.check(self.inner.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, parking while a writer holds or waits for the lock.
    #[inline]
    #[track_caller]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        crate::task::coop::spend();
        let inner = match self.inner.try_read() {
            Some(inner) => inner,
            None => {
                let _wait = reason::enter(self.raw().wait_word(true), Location::caller());
                self.inner.read()
            }
        };
        self.read_guard(inner)
    }

    /// The raw lock, for its wait words only.
    fn raw(&self) -> &RawRwLock {
        // SAFETY: only the raw lock's address is used (`wait_word`); nothing is locked or
        // unlocked through it.
        unsafe { self.inner.raw() }
    }

    /// Locks for shared reading if that is possible right now.
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        crate::task::coop::spend();
        match self.inner.try_read() {
            Some(inner) => Ok(self.read_guard(inner)?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Locks for exclusive writing, parking until possible.
    #[inline]
    #[track_caller]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        crate::task::coop::spend();
        // Locked before the poison guard exists: unwinding out of the wait must not poison.
        let inner = match self.inner.try_write() {
            Some(inner) => inner,
            None => {
                let _wait = reason::enter(self.raw().wait_word(false), Location::caller());
                self.inner.write()
            }
        };
        self.write_guard(inner)
    }

    /// Locks for exclusive writing if that is possible right now.
    #[inline]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        crate::task::coop::spend();
        match self.inner.try_write() {
            Some(inner) => Ok(self.write_guard(inner)?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    #[inline]
    fn read_guard<'a>(
        &'a self,
        inner: lock_api::RwLockReadGuard<'a, RawRwLock, T>,
    ) -> LockResult<RwLockReadGuard<'a, T>> {
        self.poison.check(RwLockReadGuard {
            inner: lock_api::RwLockReadGuard::map(inner, |data| data),
        })
    }

    #[inline]
    fn write_guard<'a>(
        &'a self,
        inner: lock_api::RwLockWriteGuard<'a, RawRwLock, T>,
    ) -> LockResult<RwLockWriteGuard<'a, T>> {
        self.poison.check(RwLockWriteGuard {
            poison: self.poison.guard(),
            inner,
        })
    }

    /// Whether a writer panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// A mutable reference to the data (no locking: `&mut self` is unique).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.check(self.inner.get_mut())
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get())
            .finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns the write lock into a read lock without releasing it, so no writer can come in
    /// between; readers queued at the head get in too.
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        // As std, downgrading does not poison.
        std::mem::forget(s.poison);
        RwLockReadGuard {
            inner: lock_api::RwLockReadGuard::map(
                lock_api::RwLockWriteGuard::downgrade(s.inner),
                |data| data,
            ),
        }
    }
}

poison::forward_guard!(RwLockReadGuard, RwLockWriteGuard);

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

// As std: poisoning reports a writer's panic, so the lock may cross `catch_unwind`.
impl<T: ?Sized> std::panic::UnwindSafe for RwLock<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for RwLock<T> {}
