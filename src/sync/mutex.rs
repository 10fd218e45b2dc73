//! `Mutex`: std's API over a fiber-aware raw lock.
//!
//! # The raw lock
//!
//! One state byte plus a [`WaitQueue`]:
//!
//! | `state`            | meaning                                                        |
//! |--------------------|----------------------------------------------------------------|
//! | `0`                | free, nobody queued                                            |
//! | `LOCKED`           | held, nobody queued: `unlock` is one CAS                       |
//! | `LOCKED \| QUEUED` | held, waiters queued (or about to be): `unlock` goes slow      |
//! | `QUEUED`           | free, waiters queued; a woken waiter or a newcomer takes it    |
//!
//! `lock` is a single CAS `0 -> LOCKED` when uncontended. The slow path spins briefly, then sets
//! `QUEUED` and queues with `validate` = "still `LOCKED | QUEUED`". The slow `unlock` runs under
//! the queue lock, so it cannot interleave with a `validate`.
//!
//! # Fairness policy: barging with eventual hand-off
//!
//! A normal unlock releases the lock and wakes the first waiter, which then competes with any
//! newcomer ("barging"): the releasing fiber can re-acquire at once without a context switch,
//! which keeps throughput high under contention. Starvation is bounded two ways; in both the unlock
//! *hands the lock over*: the state stays `LOCKED` and the first queued waiter owns it when it
//! wakes.
//! - *Second chance*: a waiter that was woken, lost the race to a barging newcomer and queued
//!   again (its node key counts these losses) gets the lock handed to it at the next unlock that
//!   reaches it once it has lost [`SECOND_CHANCE_AFTER`] times. So a woken waiter loses at most
//!   that often. (Handing over after the first loss cost 40x in throughput when waiters and
//!   holders sit on different workers.)
//! - *Eventual fairness*: about once per millisecond (a jittered 0.5-1.5 ms interval per lock, see
//!   `waitq::WaitList::be_fair`) an unlock hands over regardless, as parking_lot does.
//!
//! A waiter whose time-out races with a hand-off keeps the lock (the hand-off is never lost). A
//! waiter unwound out of its wait (runtime shutdown) after a hand-off unlocks, which hands the
//! lock on; after a plain wake-up it wakes the next waiter in its place (`RawMutex::abandon`).
//! `unlock_fair` (via `lock_api`) always hands over.
use std::fmt;
use std::marker::PhantomData;
use std::ops::DerefMut;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::poison::{self, LockResult, TryLockError, TryLockResult};
use super::waitq::{Spin, WaitQueue, WaitResult, TOKEN_NORMAL};
use crate::task::reason::{self, kind, Owner};

const LOCKED: u8 = 1;
const QUEUED: u8 = 2;

/// Token: the lock was handed to the woken waiter, which now holds it.
const TOKEN_HANDOFF: usize = 1;
/// Losses to barging after which a woken waiter gets the lock handed over. Handing over at the
/// first loss made a 1,000-fiber contended counter 40x slower on two workers (every hand-off
/// crossed workers and waited for a wake-up: 4.2 ms became 179 ms; tokio 18 ms).
const SECOND_CHANCE_AFTER: usize = 4;

/// A raw mutex that parks fibers (or threads) while it waits; implements [`lock_api::RawMutex`],
/// so `lock_api::Mutex<fiber::sync::RawMutex, T>` is a non-poisoning fiber-aware mutex.
pub struct RawMutex {
    state: AtomicU8,
    /// Who holds the lock, for dumps: one plain store on lock and one on unlock.
    owner: Owner,
    queue: WaitQueue,
}

impl RawMutex {
    /// A new unlocked raw mutex.
    pub const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU8::new(0),
            owner: Owner::new(),
            queue: WaitQueue::new(),
        }
    }

    /// The wait word of a fiber waiting for this mutex (its payload the owner word's address).
    pub(super) fn wait_word(&self) -> u64 {
        reason::at(kind::MUTEX, &self.owner)
    }

    #[inline]
    fn try_lock_fast(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Locks, waiting at most until `deadline` (`None`: for ever), and records the new owner;
    /// false if the deadline passed. Every locking path but `try_lock` comes through here.
    #[inline]
    fn lock_until(&self, deadline: Option<Instant>) -> bool {
        let got = self.try_lock_fast() || self.lock_slow(deadline);
        if got {
            self.owner.acquired();
        }
        got
    }

    /// Locks, waiting at most until `deadline`; false if it passed.
    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        let mut spin = Spin::new();
        let mut lost = 0usize;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    state,
                    state | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(s) => state = s,
                }
                continue;
            }
            if state & QUEUED == 0 {
                if spin.spin() {
                    state = self.state.load(Ordering::Relaxed);
                    continue;
                }
                if let Err(s) = self.state.compare_exchange_weak(
                    state,
                    state | QUEUED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = s;
                    continue;
                }
            }
            let result = self.queue.wait(
                lost,
                || self.state.load(Ordering::Relaxed) == LOCKED | QUEUED,
                || {},
                deadline,
                |queue_empty| {
                    if queue_empty {
                        self.state.fetch_and(!QUEUED, Ordering::Relaxed);
                    }
                },
                |token| self.abandon(token),
            );
            match result {
                WaitResult::Notified(TOKEN_HANDOFF) => return true,
                WaitResult::TimedOut => return false,
                WaitResult::Notified(_) => lost += 1,
                WaitResult::Invalid => {}
            }
            spin.reset();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// A waiter is unwound (runtime shutdown) after a notifier chose it. A hand-off made it the
    /// holder: unlock, which passes the lock to the next waiter. A plain wake-up obliged it to
    /// retry, and the unlocker left the lock free with `QUEUED` set for it: take and release the
    /// lock so that the next waiter is woken instead (if the lock is held again, its holder's
    /// unlock wakes the next waiter anyway).
    #[cold]
    fn abandon(&self, token: usize) {
        if token == TOKEN_HANDOFF || lock_api::RawMutex::try_lock(self) {
            self.unlock_inner(false);
        }
    }

    #[inline]
    fn unlock_inner(&self, force_fair: bool) {
        // Before the release: the next holder records itself after its acquire.
        self.owner.released();
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.unlock_slow(force_fair);
    }

    #[cold]
    fn unlock_slow(&self, force_fair: bool) {
        // State is LOCKED | QUEUED; nobody else may change it while we hold the queue lock.
        self.queue.notify_one_fair(|result| {
            if result.notified != 0
                && (force_fair || result.key >= SECOND_CHANCE_AFTER || result.be_fair)
            {
                if !result.have_more {
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            let next = if result.have_more { QUEUED } else { 0 };
            self.state.store(next, Ordering::Release);
            TOKEN_NORMAL
        });
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex")
            .field("locked", &lock_api::RawMutex::is_locked(self))
            .finish()
    }
}

// SAFETY: `lock`/`try_lock` succeed only by setting LOCKED from a state without it (CAS, Acquire),
// or by a hand-off in which the releasing holder left LOCKED set and passed ownership to exactly
// one woken waiter; `unlock` clears LOCKED (Release) or hands off. So at most one holder exists.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawMutex = RawMutex::new();

    type GuardMarker = lock_api::GuardSend;

    #[inline]
    fn lock(&self) {
        self.lock_until(None);
    }

    #[inline]
    fn try_lock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.owner.acquired();
                    return true;
                }
                Err(s) => state = s,
            }
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        self.unlock_inner(false);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }
}

// SAFETY: `unlock_fair` is `unlock` that always hands off to a waiter; `bump` is `unlock_fair`
// then `lock`.
unsafe impl lock_api::RawMutexFair for RawMutex {
    #[inline]
    unsafe fn unlock_fair(&self) {
        self.unlock_inner(true);
    }
}

// SAFETY: the timed variants are `lock` with a deadline; they return true only holding the lock.
unsafe impl lock_api::RawMutexTimed for RawMutex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> bool {
        self.lock_until(Instant::now().checked_add(timeout))
    }

    fn try_lock_until(&self, deadline: Instant) -> bool {
        self.lock_until(Some(deadline))
    }
}

/// A mutual-exclusion lock with std's API (poisoning included) that parks the waiting fiber, or
/// the waiting OS thread outside a runtime. See the module docs for the fairness policy.
pub struct Mutex<T: ?Sized> {
    poison: poison::Flag,
    inner: lock_api::Mutex<RawMutex, T>,
}

/// RAII guard of a locked [`Mutex`]; unlocks on drop.
///
/// `lock_api`'s guard plus the poison guard, declared first so that a panic poisons the mutex
/// before `inner` unlocks it.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    pub(super) poison: poison::Guard<'a>,
    pub(super) inner: lock_api::MutexGuard<'a, RawMutex, T>,
    /// `!Send` and `Sync` as std's guard (`RawMutex`'s own `lock_api` guards are `Send`).
    pub(super) _not_send: PhantomData<lock_api::GuardNoSend>,
}

impl<T> Mutex<T> {
    /// Creates an unlocked mutex.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            poison: poison::Flag::new(),
            inner: lock_api::Mutex::const_new(RawMutex::new(), value),
        }
    }

    /// Consumes the mutex and returns the data; `Err` if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        self.poison.check(self.inner.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, parking the fiber (or thread) until it is available.
    ///
    /// A dump shows a waiting fiber at the caller's location, with the mutex's current owner.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        crate::task::coop::spend();
        // Locked before the poison guard exists: unwinding out of the wait must not poison.
        let inner = match self.inner.try_lock() {
            Some(inner) => inner,
            None => self.lock_contended(Location::caller()),
        };
        MutexGuard::new(self.poison.guard(), inner)
    }

    /// The slow path of `lock`: the wait is described for dumps.
    #[cold]
    #[inline(never)]
    fn lock_contended(
        &self,
        site: &'static Location<'static>,
    ) -> lock_api::MutexGuard<'_, RawMutex, T> {
        // SAFETY: `raw` only reads the raw mutex's address here; nothing is locked or unlocked
        // through it.
        let word = unsafe { self.inner.raw() }.wait_word();
        let _wait = reason::enter(word, site);
        self.inner.lock()
    }

    /// Acquires the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        crate::task::coop::spend();
        match self.inner.try_lock() {
            Some(inner) => Ok(MutexGuard::new(self.poison.guard(), inner)?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Whether a holder panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// A mutable reference to the data; no locking is needed since `&mut self` is unique.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.check(self.inner.get_mut())
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The guard of a just-acquired lock, `Err` if it is poisoned.
    #[inline]
    pub(super) fn new(
        poison: poison::Guard<'a>,
        inner: lock_api::MutexGuard<'a, RawMutex, T>,
    ) -> LockResult<Self> {
        poison.flag().check(MutexGuard {
            poison,
            inner,
            _not_send: PhantomData,
        })
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get())
            .finish_non_exhaustive()
    }
}

poison::forward_guard!(MutexGuard);

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

// As std: poisoning reports a panic inside the critical section, so the lock may cross
// `catch_unwind`.
impl<T: ?Sized> std::panic::UnwindSafe for Mutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for Mutex<T> {}
