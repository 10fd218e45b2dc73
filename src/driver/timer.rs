//! Per-worker timers: an ordered map from deadline to the fiber to wake.
//!
//! Timers belong to the worker that runs the waiting fiber (carrier affinity), so the map needs no
//! lock: only that worker inserts, cancels and fires. An ordered map gives O(log n) insert and
//! cancel, so a million pending sleeps stay cheap and a timeout that is cancelled early (the
//! common case for socket and lock timeouts) leaves nothing behind.
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
}

/// Key of a pending timer, to cancel it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct TimerKey(Instant, u64);

#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, TimerAction>,
    seq: u64,
}

impl Timers {
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

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}
