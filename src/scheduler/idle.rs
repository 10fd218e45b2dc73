//! Which workers sleep, and how many are searching for work.
//!
//! See `README.md` in this folder for the protocol and why no wake-up is lost.
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};

use parking_lot::Mutex;

/// A worker's sleep state, read by whoever has work for it.
pub(crate) const RUNNING: u8 = 0;
/// Blocked in its reactor's poll: wake with the reactor's waker.
pub(crate) const POLLING: u8 = 1;
/// A waker already claimed this sleep: nobody else needs to make a syscall.
pub(crate) const NOTIFIED: u8 = 2;

pub(crate) struct Idle {
    sleepers: Mutex<Vec<usize>>,
    num_sleeping: AtomicUsize,
    num_searching: AtomicUsize,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            num_sleeping: AtomicUsize::new(0),
            num_searching: AtomicUsize::new(0),
        }
    }

    /// A worker starts searching (stealing) on its own, unless half of the `workers` (at least
    /// one) already are. Returns whether it may.
    pub(crate) fn try_begin_search(&self, workers: usize) -> bool {
        let limit = (workers / 2).max(1);
        let mut current = self.num_searching.load(SeqCst);
        loop {
            if current >= limit {
                return false;
            }
            match self
                .num_searching
                .compare_exchange(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// A searching worker stops searching; true if it was the last searcher.
    pub(crate) fn end_search(&self) -> bool {
        self.num_searching.fetch_sub(1, SeqCst) == 1
    }

    /// The worker is going to sleep (its sleep state is already published).
    pub(crate) fn add_sleeper(&self, index: usize) {
        let mut sleepers = self.sleepers.lock();
        sleepers.push(index);
        self.num_sleeping.fetch_add(1, SeqCst);
    }

    /// The worker woke up. Returns false if a notifier had already taken it off the list, in
    /// which case that notifier counted it as searching.
    pub(crate) fn remove_sleeper(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.num_sleeping.fetch_sub(1, SeqCst);
                true
            }
            None => false,
        }
    }

    /// New stealable work exists: picks a sleeping worker to wake, unless one is searching
    /// already (it will find the work) or none sleeps. The picked worker counts as searching.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        std::sync::atomic::fence(SeqCst);
        if self.num_searching.load(SeqCst) != 0 || self.num_sleeping.load(SeqCst) == 0 {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        if self.num_searching.load(SeqCst) != 0 {
            return None;
        }
        let index = sleepers.pop()?;
        self.num_sleeping.fetch_sub(1, SeqCst);
        self.num_searching.fetch_add(1, SeqCst);
        Some(index)
    }
}

/// Claims a sleeping worker's wake-up: `POLLING → NOTIFIED`. True if this call claimed it, and
/// the caller must then write the worker's waker (`RUNNING`/`NOTIFIED`: no syscall needed).
pub(crate) fn claim_wake(state: &AtomicU8) -> bool {
    state.load(SeqCst) == POLLING
        && state
            .compare_exchange(POLLING, NOTIFIED, SeqCst, SeqCst)
            .is_ok()
}
