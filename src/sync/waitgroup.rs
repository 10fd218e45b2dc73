//! `WaitGroup`: Go's `sync.WaitGroup` (`add`, `done`, `wait`), parking fibers (or threads).
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::waitq::{WaitQueue, WaitResult, TOKEN_NORMAL};

/// Waits for a collection of tasks to finish: `add(n)` before starting them, `done()` in each,
/// `wait()` parks until the counter is zero.
pub struct WaitGroup {
    count: AtomicUsize,
    queue: WaitQueue,
}

impl WaitGroup {
    /// A wait group with a zero counter.
    pub const fn new() -> WaitGroup {
        WaitGroup {
            count: AtomicUsize::new(0),
            queue: WaitQueue::new(),
        }
    }

    /// Adds `n` to the counter.
    pub fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
    }

    /// Decrements the counter, waking all waiters when it reaches zero.
    ///
    /// # Panics
    /// If the counter is already zero (Go panics on a negative counter too).
    pub fn done(&self) {
        let prev = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .expect("WaitGroup::done called more often than add");
        if prev == 1 {
            // Waiters validate "count != 0" under the queue lock; the notify takes that lock
            // after our store, so every waiter either saw zero or is queued and gets woken.
            self.queue
                .notify_filter(|_| super::waitq::Filter::Notify, |_| TOKEN_NORMAL);
        }
    }

    /// The current counter.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Parks until the counter is zero.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_deadline(None, std::panic::Location::caller());
    }

    /// Parks until the counter is zero or `timeout` passes; true if it reached zero.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(
            Instant::now().checked_add(timeout),
            std::panic::Location::caller(),
        )
    }

    fn wait_deadline(
        &self,
        deadline: Option<Instant>,
        site: &'static std::panic::Location<'static>,
    ) -> bool {
        let _wait = crate::task::reason::enter(
            crate::task::reason::at(crate::task::reason::kind::WAITGROUP, self),
            site,
        );
        while self.count.load(Ordering::SeqCst) != 0 {
            let r = self.queue.wait(
                TOKEN_NORMAL,
                || self.count.load(Ordering::SeqCst) != 0,
                || {},
                deadline,
                |_| {},
                // Every waiter is woken when the count reaches zero: nothing to pass on.
                |_| {},
            );
            if r == WaitResult::TimedOut {
                return self.count.load(Ordering::SeqCst) == 0;
            }
        }
        true
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
