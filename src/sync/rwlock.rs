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
//! which hands it on to the next waiters. The price is that
//! recursive read locking can deadlock when a writer is queued (std documents the same hazard).
use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::poison::{self, LockResult, TryLockError, TryLockResult};
use super::waitq::{Filter, Spin, WaitQueue, WaitResult};

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
    queue: WaitQueue,
}

impl RawRwLock {
    const fn new() -> RawRwLock {
        RawRwLock {
            state: AtomicUsize::new(0),
            queue: WaitQueue::new(),
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
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
    fn try_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    fn read(&self) {
        if !self.try_read() {
            self.lock_slow(KEY_READ);
        }
    }

    #[inline]
    fn write(&self) {
        if !self.try_write() {
            self.lock_slow(KEY_WRITE);
        }
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
                    self.try_read()
                } else {
                    self.try_write()
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
            self.hand_off();
        }
    }

    #[inline]
    fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.hand_off();
        }
    }

    /// The lock is free (or held only by the caller's writer) with `QUEUED` set: pass it on.
    #[cold]
    fn hand_off(&self) {
        let first = std::cell::Cell::new(None);
        let readers = std::cell::Cell::new(0usize);
        self.queue.notify_filter(
            |key| match (first.get(), key) {
                (None, _) => {
                    first.set(Some(key));
                    if key == KEY_READ {
                        readers.set(1);
                    }
                    Filter::Notify
                }
                (Some(KEY_READ), KEY_READ) => {
                    readers.set(readers.get() + 1);
                    Filter::Notify
                }
                _ => Filter::Stop,
            },
            |result| {
                let queued = if result.have_more { QUEUED } else { 0 };
                let next = match first.get() {
                    None => 0,
                    Some(KEY_WRITE) => WRITER | queued,
                    Some(_) => (readers.get() * READER) | queued,
                };
                // Nobody else changes the state while it is "free + QUEUED" or writer-held and
                // we hold the queue lock: fast paths fail on QUEUED, `validate` needs this lock.
                self.state.store(next, Ordering::Release);
                TOKEN_HANDOFF
            },
        );
    }
}

/// A reader-writer lock with std's API (poisoning included) that parks fibers (or threads).
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: as std: the lock can hand `&mut T` (writer) to another thread, so `T: Send` is needed.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as std: readers on several threads share `&T` (needs `Sync`), a writer gets `&mut T`
// (needs `Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// RAII shared-read guard of an [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: a read guard gives only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// RAII exclusive-write guard of an [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    poison: poison::Guard,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: a shared write guard gives only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            raw: RawRwLock::new(),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock, returning the data; `Err` if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        let data = self.data.into_inner();
        if poisoned {
            Err(poison::PoisonError::new(data))
        } else {
            Ok(data)
        }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, parking while a writer holds or waits for the lock.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        crate::task::coop::spend();
        self.raw.read();
        self.read_guard()
    }

    /// Locks for shared reading if that is possible right now.
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        crate::task::coop::spend();
        if self.raw.try_read() {
            Ok(self.read_guard()?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Locks for exclusive writing, parking until possible.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        crate::task::coop::spend();
        self.raw.write();
        self.write_guard()
    }

    /// Locks for exclusive writing if that is possible right now.
    #[inline]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        crate::task::coop::spend();
        if self.raw.try_write() {
            Ok(self.write_guard()?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    fn read_guard(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let guard = RwLockReadGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        };
        if self.poison.get() {
            Err(poison::PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        poison::map_result(self.poison.guard(), |poison| RwLockWriteGuard {
            lock: self,
            poison,
            _not_send: std::marker::PhantomData,
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
        let poisoned = self.poison.get();
        let data = self.data.get_mut();
        if poisoned {
            Err(poison::PoisonError::new(data))
        } else {
            Ok(data)
        }
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

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard proves shared access; no writer exists while it lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard proves exclusive access, and `&mut self` makes it unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        self.lock.raw.write_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// As std: poisoning reports a writer's panic, so the lock may cross `catch_unwind`.
impl<T: ?Sized> std::panic::UnwindSafe for RwLock<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for RwLock<T> {}
