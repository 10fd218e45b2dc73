//! The locked wait queue every primitive in `fiber::sync` parks on: a [`WaitList`]
//! (`task::wait`, which has the design, the hand-over rule and the unwinding rule) behind a short
//! `parking_lot` lock, plus the `validate` and `abandoned` steps.
//!
//!
//! # The `validate` step
//!
//! [`WaitQueue::wait`] runs a `validate` closure under the queue lock *before* linking the node.
//! Primitives re-check their condition there (and set their "someone is parked" bit); since their
//! releasing side also takes the queue lock before notifying, "check, then sleep" and "change,
//! then wake" cannot interleave badly. [`WaitQueue::has_waiters`] lets a releasing side skip the
//! lock when nobody waits: the waiter count is raised *before* `validate` runs, so a releaser that
//! changed the condition under the same lock that `validate` takes (a channel's state lock, a
//! mutex guarding a condvar's predicate) is guaranteed to see the count.
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::driver::wait::park_node;
pub(crate) use crate::task::wait::{Node, WaitList, WaitResult, TOKEN_NORMAL};
use crate::task::Wakeup;

/// What a notifier found; passed to its callback while the queue lock is held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotifyResult {
    /// How many waiters are being woken.
    pub(crate) notified: usize,
    /// Whether waiters remain in the queue after this notification.
    pub(crate) have_more: bool,
    /// The key of the (first) waiter being woken, 0 if none.
    pub(crate) key: usize,
    /// Only computed by [`WaitQueue::notify_one_fair`] (it reads the clock), else false: true
    /// about once a millisecond (never on an empty queue), when the primitive should hand its
    /// resource directly to the woken waiter instead of letting newcomers barge.
    pub(crate) be_fair: bool,
}

/// What `notify_filter`'s filter decides for one waiter, in queue order.
pub(crate) enum Filter {
    /// Wake this waiter and continue.
    Notify,
    /// Leave this waiter and every later one.
    Stop,
}

/// The shared wait queue: a [`WaitList`] behind its own short lock. See the module docs.
pub(crate) struct WaitQueue {
    list: parking_lot::Mutex<WaitList>,
    /// Number of linked nodes plus waiters inside `validate` (see `has_waiters`). Only written
    /// with the lock held, so plain load + store suffice (no read-modify-write).
    len: AtomicUsize,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            list: parking_lot::const_mutex(WaitList::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Whether anyone is queued or about to queue. A `false` is reliable only for a caller that
    /// changed the waited-for condition under a lock which waiters take inside `validate` (the
    /// count is raised before `validate` runs); everyone else must use a state bit instead.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.len.load(Ordering::Relaxed) != 0
    }

    #[inline]
    fn sync_len(&self, list: &WaitList, extra: usize) {
        self.len.store(list.len() + extra, Ordering::Relaxed);
    }

    /// Parks the caller on this queue.
    ///
    /// Under the queue lock runs `validate`; if it returns false the caller does not wait
    /// (`Invalid`). Otherwise the caller's node is queued, the lock released, `before_sleep` run
    /// (a condvar unlocks its mutex there), and the caller parks until notified or until
    /// `deadline`. On a time-out `timed_out(queue_now_empty)` runs under the queue lock.
    ///
    /// `abandoned(token)` runs (without the queue lock) if the caller is unwound out of the wait
    /// (runtime shutdown cancels parked fibers) after a notifier had already handed it `token`:
    /// the primitive must release or pass on what the token stood for (a lock, a permit, a
    /// wake-up), or it is lost with the unwinding frame. See "Tokens nobody consumes" in the
    /// module docs.
    pub(crate) fn wait(
        &self,
        key: usize,
        validate: impl FnOnce() -> bool,
        before_sleep: impl FnOnce(),
        deadline: Option<Instant>,
        timed_out: impl FnOnce(bool),
        abandoned: impl FnOnce(usize),
    ) -> WaitResult {
        let node = pin!(Node::new(key));
        let node = node.as_ref();
        // SAFETY: `node` is pinned in this frame. The `Linked` guard below unlinks it before the
        // frame is left, on every path including unwinding, unless a notifier already unlinked it.
        if !unsafe { self.enqueue(node, validate) } {
            return WaitResult::Invalid;
        }
        let guard = Linked {
            queue: self,
            node,
            abandoned: Some(abandoned),
        };
        before_sleep();
        let mut timed_out = Some(timed_out);
        let result = park_node(&node, deadline, || {
            let mut list = self.list.lock();
            // SAFETY: enqueued on this queue above.
            if unsafe { list.remove(node) }.is_some() {
                return false;
            }
            self.sync_len(&list, 0);
            if let Some(f) = timed_out.take() {
                f(list.is_empty());
            }
            true
        });
        std::mem::forget(guard);
        result
    }

    /// Links `node` at the tail if `validate()` (run under the queue lock) returns true.
    ///
    /// # Safety
    /// If this returns true, `node` must stay alive and in place until it has been either notified
    /// (`node.token()` is `Some`) or removed with [`WaitQueue::remove`].
    pub(crate) unsafe fn enqueue(&self, node: Pin<&Node>, validate: impl FnOnce() -> bool) -> bool {
        let mut list = self.list.lock();
        self.sync_len(&list, 1);
        if !validate() {
            self.sync_len(&list, 0);
            return false;
        }
        // SAFETY: forwarded to our caller's contract.
        unsafe { list.push(node) };
        true
    }

    /// Removes `node` if it is still queued. Returns `None` if it was (the waiter gave up), or the
    /// token if a notifier had already chosen it.
    ///
    /// # Safety
    /// `node` must have been enqueued on this queue by `enqueue`.
    pub(crate) unsafe fn remove(&self, node: Pin<&Node>) -> Option<usize> {
        let mut list = self.list.lock();
        // SAFETY: forwarded to our caller's contract.
        let r = unsafe { list.remove(node) };
        self.sync_len(&list, 0);
        r
    }

    /// Wakes the first waiter, if any. `callback` runs under the queue lock (whether or not a
    /// waiter was found) and returns the token handed to the woken waiter.
    #[inline]
    pub(crate) fn notify_one(&self, callback: impl FnOnce(NotifyResult) -> usize) -> NotifyResult {
        self.notify_one_inner(false, callback)
    }

    /// As `notify_one`, also computing `NotifyResult::be_fair` (eventual-fairness timer).
    #[inline]
    pub(crate) fn notify_one_fair(
        &self,
        callback: impl FnOnce(NotifyResult) -> usize,
    ) -> NotifyResult {
        self.notify_one_inner(true, callback)
    }

    fn notify_one_inner(
        &self,
        want_fair: bool,
        callback: impl FnOnce(NotifyResult) -> usize,
    ) -> NotifyResult {
        let mut list = self.list.lock();
        if list.is_empty() {
            let result = NotifyResult {
                notified: 0,
                have_more: false,
                key: 0,
                be_fair: false,
            };
            callback(result);
            return result;
        }
        let key = list.front_key().expect("the list is not empty");
        let result = NotifyResult {
            notified: 1,
            have_more: list.len() > 1,
            key,
            be_fair: want_fair && list.be_fair(),
        };
        let token = callback(result);
        let wakeup = list.wake_front(token);
        self.sync_len(&list, 0);
        drop(list);
        if let Some(wakeup) = wakeup {
            wakeup.wake();
        }
        result
    }

    /// Wakes every waiter with `token`; returns how many.
    pub(crate) fn notify_all(&self, token: usize) -> usize {
        if !self.has_waiters() {
            // Callers use `notify_all` after changing a condition that waiters validate under a
            // lock that the caller held while changing it; see `has_waiters`.
            return 0;
        }
        self.notify_filter(|_| Filter::Notify, |_| token).notified
    }

    /// Walks the queue in order, waking the waiters `filter` selects (by their key). `callback`
    /// runs under the queue lock once the selection is made and returns the token to hand over.
    pub(crate) fn notify_filter(
        &self,
        mut filter: impl FnMut(usize) -> Filter,
        callback: impl FnOnce(NotifyResult) -> usize,
    ) -> NotifyResult {
        let mut list = self.list.lock();
        let woken = list.unlink_selected(|key| match filter(key) {
            Filter::Notify => Some(true),
            Filter::Stop => None,
        });
        self.sync_len(&list, 0);
        let result = NotifyResult {
            notified: woken.len(),
            have_more: !list.is_empty(),
            // SAFETY: unlinked by us under the lock just now and not handed over: still alive.
            key: woken.first().map_or(0, |n| unsafe { n.as_ref() }.key()),
            be_fair: false,
        };
        let token = callback(result);
        let wakeups: Vec<Wakeup> = woken
            .into_iter()
            .map(|node| {
                // SAFETY: as above; this is the node's last touch by us.
                WaitList::hand_over(unsafe { node.as_ref() }, token)
            })
            .collect();
        drop(list);
        for wakeup in wakeups {
            wakeup.wake();
        }
        result
    }
}

/// Unlinks a still-linked node when `wait` is left by unwinding, and gives a token that was
/// already handed over (but will never be consumed) to the primitive's `abandoned` callback.
struct Linked<'a, F: FnOnce(usize)> {
    queue: &'a WaitQueue,
    node: Pin<&'a Node>,
    abandoned: Option<F>,
}

impl<F: FnOnce(usize)> Drop for Linked<'_, F> {
    fn drop(&mut self) {
        // SAFETY: the node was enqueued on `self.queue` by `wait`.
        let token = unsafe { self.queue.remove(self.node) };
        // The queue lock is released again: the callback may unlock, notify, ...
        if let (Some(token), Some(f)) = (token, self.abandoned.take()) {
            f(token);
        }
    }
}

/// Bounded busy-wait used by lock slow paths before they queue: a few `spin_loop` rounds with
/// exponential back-off. It never yields the OS thread: inside a fiber that would stall every
/// fiber on the carrier, and the holder may be a fiber on this very carrier anyway.
pub(crate) struct Spin(u32);

impl Spin {
    pub(crate) const fn new() -> Spin {
        Spin(0)
    }

    /// Spins once more; false when the budget is spent.
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        if self.0 >= 6 {
            return false;
        }
        self.0 += 1;
        for _ in 0..(1u32 << self.0) {
            std::hint::spin_loop();
        }
        true
    }

    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

// The queue's invariants hold between any two of its operations (no user code runs while the
// list is inconsistent), so observing it after a caught panic is fine.
impl std::panic::RefUnwindSafe for WaitQueue {}
impl std::panic::UnwindSafe for WaitQueue {}
