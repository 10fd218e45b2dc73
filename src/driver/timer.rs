//! Per-worker timers: an ordered map from deadline to the fiber to wake.
//!
//! Timers belong to the worker that runs the waiting fiber (carrier affinity), so the map needs no
//! lock: only that worker inserts, cancels and fires. It is a thread-local of the worker's thread
//! ([`with`]): a fiber always runs on its worker's thread, so a fiber that sets a timer and the
//! worker loop that fires it find the same map, with no pointer to publish and no `unsafe`. An ordered map gives O(log n) insert and
//! cancel, so a million pending sleeps stay cheap and a timeout that is cancelled early (the
//! common case for socket and lock timeouts) leaves nothing behind.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::task::Task;

/// What firing a timer does.
pub(crate) enum TimerAction {
    /// Requeue a fiber suspended in `sleep` (it does not use its park token).
    Resume(Arc<Task>),
    /// Unpark a fiber (its `park_timeout` expired).
    Unpark(Arc<Task>),
    /// Cancel a fiber back up to its `fiber::timeout` call (that deadline expired).
    Deadline(Arc<Task>),
}

/// Key of a pending timer, to cancel it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct TimerKey(Instant, u64);

pub(crate) struct Timers {
    map: BTreeMap<TimerKey, TimerAction>,
    seq: u64,
}

thread_local! {
    static TIMERS: RefCell<Timers> = const { RefCell::new(Timers::new()) };
}

/// Runs `f` with this thread's timers. Never hold the borrow across anything that may set or
/// cancel a timer (firing an `Unpark` action, say).
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut Timers) -> R) -> R {
    TIMERS.with(|t| f(&mut t.borrow_mut()))
}

impl Timers {
    const fn new() -> Timers {
        Timers {
            map: BTreeMap::new(),
            seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, action: TimerAction) -> TimerKey {
        self.seq += 1;
        let key = TimerKey(deadline, self.seq);
        self.map.insert(key, action);
        key
    }

    /// Cancels a timer; false if it already fired.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        self.map.remove(&key).is_some()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|(k, _)| k.0)
    }

    /// Removes and returns the first timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerAction> {
        let entry = self.map.first_entry()?;
        if entry.key().0 <= now {
            Some(entry.remove())
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Removes every timer; returns them, for the caller to drop outside the borrow.
    pub(crate) fn clear(&mut self) -> BTreeMap<TimerKey, TimerAction> {
        std::mem::take(&mut self.map)
    }
}
