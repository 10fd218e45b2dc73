//! `Semaphore`: counting permits with RAII release; strict FIFO among waiters.
//!
//! State word: `permits << 1 | QUEUED`. Invariant: `QUEUED` (someone queued) implies
//! `permits == 0`, because a release that finds `QUEUED` gives its permit straight to the first
//! waiter instead of adding it to the count. So waiters are served in order and a newcomer cannot
//! take a permit ahead of them. `acquire` and `release` are one CAS when nobody waits. A permit
//! handed to a waiter whose time-out races with the release is kept (returned as success); one
//! handed to a waiter that is unwound out of its wait (runtime shutdown) is released again, so it
//! goes to the next waiter or back to the count.
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::waitq::{WaitQueue, WaitResult, TOKEN_NORMAL};

const QUEUED: usize = 1;
const ONE: usize = 2;
/// Token: a permit was handed to the woken waiter.
const TOKEN_PERMIT: usize = 1;

/// A counting semaphore that parks fibers (or threads) waiting for a permit.
pub struct Semaphore {
    state: AtomicUsize,
    queue: WaitQueue,
}

/// A permit; returned to its semaphore on drop.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= usize::MAX >> 1, "too many permits");
        Semaphore {
            state: AtomicUsize::new(permits << 1),
            queue: WaitQueue::new(),
        }
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) >> 1
    }

    /// Takes a permit if one is free and nobody is queued.
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        crate::task::coop::spend();
        let mut s = self.state.load(Ordering::Relaxed);
        while s >= ONE && s & QUEUED == 0 {
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(SemaphorePermit { sem: self }),
                Err(x) => s = x,
            }
        }
        None
    }

    /// Takes a permit, parking until one is available.
    #[track_caller]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        match self.try_acquire() {
            Some(p) => p,
            None => self
                .acquire_slow(None, std::panic::Location::caller())
                .expect("no deadline"),
        }
    }

    /// Takes a permit, parking at most `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        let site = std::panic::Location::caller();
        self.try_acquire()
            .or_else(|| self.acquire_slow(Instant::now().checked_add(timeout), site))
    }

    #[cold]
    fn acquire_slow(
        &self,
        deadline: Option<Instant>,
        site: &'static std::panic::Location<'static>,
    ) -> Option<SemaphorePermit<'_>> {
        let _wait = crate::task::reason::enter(
            crate::task::reason::at(crate::task::reason::kind::SEMAPHORE, self),
            site,
        );
        loop {
            let mut acquired = false;
            let result = self.queue.wait(
                TOKEN_NORMAL,
                || {
                    let mut s = self.state.load(Ordering::Relaxed);
                    loop {
                        let (next, take) = if s >= ONE && s & QUEUED == 0 {
                            (s - ONE, true)
                        } else {
                            (s | QUEUED, false)
                        };
                        match self.state.compare_exchange_weak(
                            s,
                            next,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => {
                                acquired = take;
                                return !take;
                            }
                            Err(x) => s = x,
                        }
                    }
                },
                || {},
                deadline,
                |queue_empty| {
                    if queue_empty {
                        self.state.fetch_and(!QUEUED, Ordering::Relaxed);
                    }
                },
                // Unwound (runtime shutdown) after a permit was handed over: give it back, which
                // hands it to the next waiter.
                |token| {
                    if token == TOKEN_PERMIT {
                        self.release();
                    }
                },
            );
            match result {
                WaitResult::Notified(TOKEN_PERMIT) => return Some(SemaphorePermit { sem: self }),
                WaitResult::TimedOut => return None,
                _ if acquired => return Some(SemaphorePermit { sem: self }),
                _ => {}
            }
        }
    }

    /// Adds `n` permits (waking waiters as needed).
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    #[inline]
    fn release(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & QUEUED == 0 {
            match self
                .state
                .compare_exchange_weak(s, s + ONE, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(x) => s = x,
            }
        }
        self.release_slow();
    }

    #[cold]
    fn release_slow(&self) {
        self.queue.notify_one(|result| {
            if result.notified == 0 {
                // The queue emptied by time-outs; QUEUED is stale.
                self.state.fetch_add(ONE, Ordering::Release);
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
                return TOKEN_NORMAL;
            }
            if !result.have_more {
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
            TOKEN_PERMIT
        });
    }
}

impl SemaphorePermit<'_> {
    /// Drops the permit without returning it to the semaphore.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
