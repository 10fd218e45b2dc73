//! The one wait queue every primitive in `fiber::sync` parks on.
//!
//! # Design
//!
//! A [`WaitQueue`] is a FIFO, doubly linked, *intrusive* list of [`Node`]s protected by a short
//! `parking_lot` lock. A node lives on the stack of the fiber (or thread) that waits: the waiting
//! frame does not return while the node is linked, and a fiber's stack does not move while the
//! fiber is parked, so the node's address is stable for as long as anyone else can see it. The
//! slow path of every primitive therefore allocates nothing.
//!
//! Each node holds the waiter's [`Fiber`] handle, a `key` chosen by the primitive (for example
//! "reader" or "writer") and a `state` word: [`WAITING`] until a notifier picks the node, then the
//! *token* the notifier hands over (for example "the lock is now yours"). The waiter parks in a
//! loop until `state != WAITING`, so spurious wake-ups of `crate::park` are harmless.
//!
//! # Who touches what, and when
//!
//! | field          | written by                                   | read by                            |
//! |----------------|----------------------------------------------|------------------------------------|
//! | `prev`, `next`, `linked` | queue-lock holder                  | queue-lock holder                  |
//! | `fiber`, `key` | waiter, before the node is linked (then immutable) | notifier, under the queue lock |
//! | `state`        | notifier, under the queue lock, *last*       | waiter, without the lock (Acquire) |
//!
//! # The hand-over rule (why no lost wake-up and no use-after-free)
//!
//! A notifier, holding the queue lock, (1) unlinks the node, (2) clones the node's `Fiber`,
//! (3) stores the token into `state` with `Release`. After (3) it never touches the node again:
//! the waiter may observe the token, return, and pop the node's stack frame at any moment. The
//! notifier unparks its *clone* of the handle after releasing the lock. Because park/unpark works
//! with a token (std semantics), an unpark that arrives before the waiter parks is not lost, and one
//! that arrives after the waiter left only causes a spurious wake-up somewhere later.
//!
//! A waiter whose deadline passes takes the queue lock: if its node is still linked it unlinks
//! itself and reports a time-out; otherwise a notifier already chose it, the token is visible
//! (it was stored under the lock we now hold), and the waiter reports the notification instead,
//! so a hand-off (of a lock, a permit, ...) is never dropped by a racing time-out.
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
use std::cell::Cell;
use std::marker::PhantomPinned;
use std::pin::{pin, Pin};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Fiber;

/// `Node::state` while nobody has notified the node. Tokens are always smaller.
const WAITING: usize = usize::MAX;

/// Token handed over by the plain `notify_*` calls.
pub(crate) const TOKEN_NORMAL: usize = 0;

/// One waiter. Lives on the waiting fiber's stack; see the module docs.
pub(crate) struct Node {
    prev: Cell<*const Node>,
    next: Cell<*const Node>,
    linked: Cell<bool>,
    key: usize,
    fiber: Fiber,
    state: AtomicUsize,
    _pin: PhantomPinned,
}

impl Node {
    /// A node for the calling fiber (or thread), tagged with `key`.
    pub(crate) fn new(key: usize) -> Node {
        Node {
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            linked: Cell::new(false),
            key,
            fiber: crate::current(),
            state: AtomicUsize::new(WAITING),
            _pin: PhantomPinned,
        }
    }

    /// The token a notifier handed over, if any.
    pub(crate) fn token(&self) -> Option<usize> {
        let s = self.state.load(Ordering::Acquire);
        (s != WAITING).then_some(s)
    }
}

/// The list itself; only ever touched with `WaitQueue::list` locked.
struct List {
    head: *const Node,
    tail: *const Node,
    /// When the next notification should be "fair" (see `NotifyResult::be_fair`).
    fair_at: Option<Instant>,
    /// State of a tiny xorshift generator that jitters the fairness interval.
    seed: u32,
}

// SAFETY: `List` holds raw pointers to `Node`s. They are dereferenced only while the queue lock is
// held and only while the node is linked, and a linked node is kept alive and in place by its
// waiter (see the module docs). The only non-trivially-shareable field a node has, `Fiber`, is a
// thread-safe handle. Moving the list between threads is therefore fine.
unsafe impl Send for List {}

impl List {
    /// Appends `node`.
    ///
    /// # Safety
    /// `node` must stay at its address and alive until it is unlinked (by `unlink` or `pop_front`).
    unsafe fn push_back(&mut self, node: &Node) {
        node.prev.set(self.tail);
        node.next.set(ptr::null());
        node.linked.set(true);
        if self.tail.is_null() {
            self.head = node;
        } else {
            // SAFETY: `tail` is linked, hence alive (caller contract of the earlier push_back),
            // and we hold the queue lock, the only licence to touch links.
            unsafe { (*self.tail).next.set(node) };
        }
        self.tail = node;
    }

    /// Unlinks `node`, which must be linked in this list.
    ///
    /// # Safety
    /// `node` must currently be linked in `self`.
    unsafe fn unlink(&mut self, node: &Node) {
        debug_assert!(node.linked.get());
        let (prev, next) = (node.prev.get(), node.next.get());
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: neighbours of a linked node are linked, hence alive; we hold the lock.
            unsafe { (*prev).next.set(next) };
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            // SAFETY: as above.
            unsafe { (*next).prev.set(prev) };
        }
        node.prev.set(ptr::null());
        node.next.set(ptr::null());
        node.linked.set(false);
    }

    /// Decides whether this notification should be fair: true at most about once per
    /// millisecond (a jittered interval in 0.5..1.5 ms), as parking_lot's "eventual fairness".
    fn be_fair(&mut self) -> bool {
        let now = Instant::now();
        let fair = matches!(self.fair_at, Some(t) if now >= t);
        if fair || self.fair_at.is_none() {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 17;
            self.seed ^= self.seed << 5;
            let jitter = Duration::from_nanos(500_000 + u64::from(self.seed % 1_000_000));
            self.fair_at = Some(now + jitter);
        }
        fair
    }
}

/// What a notifier found; passed to its callback while the queue lock is held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotifyResult {
    /// How many waiters are being woken.
    pub(crate) notified: usize,
    /// Whether waiters remain in the queue after this notification.
    pub(crate) have_more: bool,
    /// True about once a millisecond (and never on an empty queue): the primitive should hand its
    /// resource directly to the woken waiter instead of letting newcomers barge.
    pub(crate) be_fair: bool,
}

/// What `notify_filter`'s filter decides for one waiter, in queue order.
pub(crate) enum Filter {
    /// Wake this waiter and continue.
    Notify,
    /// Leave this waiter queued and continue.
    Skip,
    /// Leave this waiter and every later one.
    Stop,
}

/// How a `wait` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// A notifier handed over this token.
    Notified(usize),
    /// `validate` returned false; the caller never slept.
    Invalid,
    /// The deadline passed while the node was still queued; it has been removed.
    TimedOut,
}

/// The shared wait queue. See the module docs.
pub(crate) struct WaitQueue {
    list: parking_lot::Mutex<List>,
    /// Number of linked nodes plus waiters inside `validate`; see `has_waiters`.
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
            list: parking_lot::const_mutex(List {
                head: ptr::null(),
                tail: ptr::null(),
                fair_at: None,
                seed: 0x9E37_79B9,
            }),
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

    /// Parks the caller on this queue.
    ///
    /// Under the queue lock runs `validate`; if it returns false the caller does not wait
    /// (`Invalid`). Otherwise the caller's node is queued, the lock released, `before_sleep` run
    /// (a condvar unlocks its mutex there), and the caller parks until notified or until
    /// `deadline`. On a time-out `timed_out(queue_now_empty)` runs under the queue lock.
    pub(crate) fn wait(
        &self,
        key: usize,
        validate: impl FnOnce() -> bool,
        before_sleep: impl FnOnce(),
        deadline: Option<Instant>,
        timed_out: impl FnOnce(bool),
    ) -> WaitResult {
        let node = pin!(Node::new(key));
        let node = node.as_ref();
        // SAFETY: `node` is pinned in this frame. The `Linked` guard below unlinks it before the
        // frame is left, on every path including unwinding, unless a notifier already unlinked it.
        if !unsafe { self.enqueue(node, validate) } {
            return WaitResult::Invalid;
        }
        let guard = Linked { queue: self, node };
        before_sleep();
        loop {
            if let Some(token) = node.token() {
                std::mem::forget(guard);
                return WaitResult::Notified(token);
            }
            match deadline {
                None => crate::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now < deadline {
                        crate::park_timeout(deadline - now);
                        continue;
                    }
                    let mut list = self.list.lock();
                    if node.linked.get() {
                        // SAFETY: linked in this list (checked under the lock we hold).
                        unsafe { list.unlink(&node) };
                        self.len.fetch_sub(1, Ordering::Relaxed);
                        timed_out(list.head.is_null());
                        drop(list);
                        std::mem::forget(guard);
                        return WaitResult::TimedOut;
                    }
                    // A notifier unlinked us and stored the token under this lock: loop to read it.
                }
            }
        }
    }

    /// Links `node` at the tail if `validate()` (run under the queue lock) returns true.
    ///
    /// # Safety
    /// If this returns true, `node` must stay alive and in place until it has been either notified
    /// (`node.token()` is `Some`) or removed with [`WaitQueue::remove`].
    pub(crate) unsafe fn enqueue(&self, node: Pin<&Node>, validate: impl FnOnce() -> bool) -> bool {
        let mut list = self.list.lock();
        self.len.fetch_add(1, Ordering::Relaxed);
        if !validate() {
            self.len.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        // SAFETY: forwarded to our caller's contract.
        unsafe { list.push_back(&node) };
        true
    }

    /// Removes `node` if it is still queued. Returns `None` if it was (the waiter gave up), or the
    /// token if a notifier had already chosen it.
    ///
    /// # Safety
    /// `node` must have been enqueued on this queue by `enqueue`.
    pub(crate) unsafe fn remove(&self, node: Pin<&Node>) -> Option<usize> {
        let mut list = self.list.lock();
        if node.linked.get() {
            // SAFETY: linked (checked under the lock) in this queue (caller contract).
            unsafe { list.unlink(&node) };
            self.len.fetch_sub(1, Ordering::Relaxed);
            None
        } else {
            // Stored under the lock we hold, so visible.
            node.token()
        }
    }

    /// Wakes the first waiter, if any. `callback` runs under the queue lock (whether or not a
    /// waiter was found) and returns the token handed to the woken waiter.
    pub(crate) fn notify_one(&self, callback: impl FnOnce(NotifyResult) -> usize) -> NotifyResult {
        let mut list = self.list.lock();
        let head = list.head;
        if head.is_null() {
            let result = NotifyResult {
                notified: 0,
                have_more: false,
                be_fair: false,
            };
            callback(result);
            return result;
        }
        // SAFETY: `head` is linked, hence alive (waiters keep linked nodes alive); lock held.
        let node = unsafe { &*head };
        // SAFETY: `node` is linked in `list`.
        unsafe { list.unlink(node) };
        self.len.fetch_sub(1, Ordering::Relaxed);
        let result = NotifyResult {
            notified: 1,
            have_more: !list.head.is_null(),
            be_fair: list.be_fair(),
        };
        let token = callback(result);
        let fiber = node.fiber.clone();
        // Last touch of `node`: after this store its waiter may free it.
        node.state.store(token, Ordering::Release);
        drop(list);
        fiber.unpark();
        result
    }

    /// Wakes every waiter with `token`; returns how many.
    pub(crate) fn notify_all(&self, token: usize) -> usize {
        if !self.has_waiters() {
            // Callers use `notify_all` after changing a condition that waiters validate under a
            // lock that the caller held while changing it, or after a SeqCst store; see
            // `has_waiters`. A waiter that has not bumped `len` yet will see the new condition.
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
        let mut woken: Vec<&Node> = Vec::new();
        let mut list = self.list.lock();
        let mut cur = list.head;
        while !cur.is_null() {
            // SAFETY: `cur` is linked (we walk the list under the lock), hence alive.
            let node = unsafe { &*cur };
            cur = node.next.get();
            match filter(node.key) {
                Filter::Notify => {
                    // SAFETY: linked in `list`.
                    unsafe { list.unlink(node) };
                    woken.push(node);
                }
                Filter::Skip => {}
                Filter::Stop => break,
            }
        }
        self.len.fetch_sub(woken.len(), Ordering::Relaxed);
        let result = NotifyResult {
            notified: woken.len(),
            have_more: !list.head.is_null(),
            be_fair: !woken.is_empty() && list.be_fair(),
        };
        let token = callback(result);
        let fibers: Vec<Fiber> = woken
            .into_iter()
            .map(|node| {
                let fiber = node.fiber.clone();
                // Last touch of `node`; see `notify_one`.
                node.state.store(token, Ordering::Release);
                fiber
            })
            .collect();
        drop(list);
        for fiber in fibers {
            fiber.unpark();
        }
        result
    }
}

/// Unlinks a still-linked node when `wait` is left by unwinding.
struct Linked<'a> {
    queue: &'a WaitQueue,
    node: Pin<&'a Node>,
}

impl Drop for Linked<'_> {
    fn drop(&mut self) {
        // SAFETY: the node was enqueued on `self.queue` by `wait`.
        unsafe { self.queue.remove(self.node) };
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
