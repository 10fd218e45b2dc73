//! The one intrusive wait list: every primitive of `fiber::sync` and every fd's readiness slot
//! (`driver::io`) queue their waiters on it. The park loop with a deadline is
//! `driver::wait::park_node`; the locked queue with `validate`/`abandoned` is `sync::waitq`.
//!
//! # Design
//!
//! A [`WaitList`] is a FIFO, doubly linked, *intrusive* list of [`Node`]s, kept behind a lock of its
//! owner's. A node lives on the stack of the fiber (or thread) that waits: the waiting
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
//! # Tokens nobody consumes (unwinding)
//!
//! Runtime shutdown unwinds parked fibers out of their waits. A waiter may be unwound *after* a
//! notifier chose it: the token is published, but the waiting frame will never act on it. Many
//! tokens stand for something the notifier gave away: a lock or a permit handed over, or a
//! wake-up that obliges its recipient to retry (and so to wake the next waiter in turn). Dropping
//! such a token loses the lock, the permit or the wake-up for everybody else (issue 11). So the
//! frame's drop guard, after unlinking the node (or finding it already unlinked), passes any token
//! it finds to the primitive's `abandoned` callback ([`WaitQueue::wait`]), outside the queue lock;
//! the primitive releases or passes on what it was given: a mutex or rwlock hand-off is unlocked
//! (which hands it to the next waiter), a semaphore permit released, a condvar's `notify_one`
//! re-issued, a mutex wake-up passed on. Channels apply the same rule to their own nodes
//! (`mpmc::chan`): a message handed to a receiver that is unwound goes back to the channel.
//! A time-out never abandons a token (see above: the waiter takes it and reports success).
use std::cell::Cell;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::context;
use super::park::current;
use super::Fiber;
use super::{Task, Wakeup};
use crate::util::rng::FastRng;

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
    waiter: Waiter,
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
            waiter: match context::task_ptr() {
                Some(task) => Waiter::Fiber(task),
                None => Waiter::Thread(current()),
            },
            state: AtomicUsize::new(WAITING),
            _pin: PhantomPinned,
        }
    }

    /// The key the node was queued with.
    #[inline]
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// The token a notifier handed over, if any.
    pub(crate) fn token(&self) -> Option<usize> {
        let s = self.state.load(Ordering::Acquire);
        (s != WAITING).then_some(s)
    }
}

/// Who waits on a node.
enum Waiter {
    /// The waiting fiber's task, held without a reference count: the node lives on that fiber's
    /// stack, so the task outlives every moment the node is linked.
    Fiber(NonNull<Task>),
    /// A plain OS thread.
    Thread(Fiber),
}

/// The intrusive list itself, without a lock: whoever owns a `WaitList` keeps it behind a lock of
/// its own (`WaitQueue` uses a `parking_lot` mutex; a channel keeps its two lists inside its state
/// mutex, so one lock covers "check the buffer, then queue"). `&mut self` on every method is the
/// proof that the owner's lock is held.
pub(crate) struct WaitList {
    head: *const Node,
    tail: *const Node,
    len: usize,
    /// When the next notification should be "fair" (see `NotifyResult::be_fair`).
    fair_at: Option<Instant>,
    /// Jitters the fairness interval.
    rng: FastRng,
}

// SAFETY: `WaitList` holds raw pointers to `Node`s. They are dereferenced only through `&mut self`
// (its owner's lock is held) and only while the node is linked, and a linked node is kept alive
// and in place by its waiter (see the module docs). The only field of a node that is not plain
// data, `Fiber`, is a thread-safe handle. Moving the list between threads is therefore fine.
unsafe impl Send for WaitList {}

impl WaitList {
    /// An empty list.
    pub(crate) const fn new() -> WaitList {
        WaitList {
            head: ptr::null(),
            tail: ptr::null(),
            len: 0,
            fair_at: None,
            rng: FastRng::new(0x9E37_79B9),
        }
    }

    /// How many nodes are queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Unlinks the waiters `select` picks by key, walking the list in order until it returns
    /// `None` for "stop" (`Some(true)`: take this one, `Some(false)`: skip it). The nodes are
    /// unlinked but not yet told: the caller hands each one a token with [`WaitList::hand_over`]
    /// before it releases the owner's lock (until then the waiters cannot leave).
    pub(crate) fn unlink_selected(
        &mut self,
        mut select: impl FnMut(usize) -> Option<bool>,
    ) -> Vec<NonNull<Node>> {
        let mut taken = Vec::new();
        let mut cur = self.head;
        while let Some(ptr) = NonNull::new(cur.cast_mut()) {
            // SAFETY: `cur` is linked (we walk the list with the owner's lock held), hence alive.
            let node = unsafe { ptr.as_ref() };
            cur = node.next.get();
            match select(node.key) {
                Some(true) => {
                    // SAFETY: linked in this list.
                    unsafe { self.unlink(node) };
                    taken.push(ptr);
                }
                Some(false) => {}
                None => break,
            }
        }
        taken
    }

    /// Whether nobody is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Appends `node` (resetting it to "waiting", so a node can be queued again after a wake-up).
    ///
    /// # Safety
    /// `node` must not be linked, and must stay alive and in place until it has been either
    /// notified (`node.token()` is `Some`) or unlinked with [`WaitList::remove`].
    pub(crate) unsafe fn push(&mut self, node: Pin<&Node>) {
        node.state.store(WAITING, Ordering::Relaxed);
        // SAFETY: forwarded to our caller's contract.
        unsafe { self.push_back(&node) };
    }

    /// Unlinks `node` if it is still queued: `None` if it was (its waiter gives up), else the token
    /// a notifier already handed it.
    ///
    /// # Safety
    /// `node` must have been pushed onto this list.
    pub(crate) unsafe fn remove(&mut self, node: Pin<&Node>) -> Option<usize> {
        if node.linked.get() {
            // SAFETY: linked, and in this list (caller contract).
            unsafe { self.unlink(&node) };
            None
        } else {
            // Stored while the owner's lock was held; we hold it now, so it is visible.
            node.token()
        }
    }

    /// Unlinks the first waiter, hands it `token` and returns its handle, to be unparked by the
    /// caller (preferably after releasing the lock).
    #[inline]
    pub(crate) fn wake_front(&mut self, token: usize) -> Option<Wakeup> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: `head` is linked, hence alive; `&mut self` means the owner's lock is held.
        let node = unsafe { &*head };
        // SAFETY: linked in this list.
        unsafe { self.unlink(node) };
        Some(Self::hand_over(node, token))
    }

    /// The key of the first waiter, if any.
    #[inline]
    pub(crate) fn front_key(&self) -> Option<usize> {
        // SAFETY: a non-null head is linked, hence alive; `&self` means the owner's lock is held.
        (!self.head.is_null()).then(|| unsafe { (*self.head).key })
    }

    /// As `wake_front`, first running `fill` on the node: how a notifier passes data into the
    /// waiter's frame (the waiter cannot leave before the token is published, after `fill`).
    #[inline]
    pub(crate) fn wake_front_with(
        &mut self,
        token: usize,
        fill: impl FnOnce(NonNull<Node>),
    ) -> Option<Wakeup> {
        let head = NonNull::new(self.head.cast_mut())?;
        // SAFETY: `head` is linked, hence alive; `&mut self` means the owner's lock is held.
        let node = unsafe { head.as_ref() };
        // SAFETY: linked in this list.
        unsafe { self.unlink(node) };
        fill(head);
        Some(Self::hand_over(node, token))
    }

    /// Walks the list in order and wakes the first waiter that `claim` accepts: `claim` runs
    /// (owner's lock held, node still linked, so its waiter cannot look at it yet) on each node
    /// until it returns true; that node is unlinked and handed `token`. `claim` may move data
    /// into or out of the node (see `wake_front_with`) and must do so only when returning true.
    pub(crate) fn wake_first_claimed(
        &mut self,
        token: usize,
        mut claim: impl FnMut(NonNull<Node>) -> bool,
    ) -> Option<Wakeup> {
        let mut cur = self.head;
        while let Some(ptr) = NonNull::new(cur.cast_mut()) {
            // SAFETY: `cur` is linked (we walk the list with the lock held), hence alive.
            let node = unsafe { ptr.as_ref() };
            let next = node.next.get();
            if claim(ptr) {
                // SAFETY: linked in this list.
                unsafe { self.unlink(node) };
                return Some(Self::hand_over(node, token));
            }
            cur = next;
        }
        None
    }

    /// Wakes, in queue order, every waiter whose key `select` accepts: unlinks it, hands it
    /// `token`, and passes its wake-up to `deliver` (called with the owner's lock held, which
    /// costs nothing extra when the lock is short and saves collecting the wake-ups).
    pub(crate) fn wake_matching(
        &mut self,
        token: usize,
        mut select: impl FnMut(usize) -> bool,
        mut deliver: impl FnMut(Wakeup),
    ) {
        let mut cur = self.head;
        while let Some(ptr) = NonNull::new(cur.cast_mut()) {
            // SAFETY: `cur` is linked (we walk the list with the owner's lock held), hence alive.
            let node = unsafe { ptr.as_ref() };
            cur = node.next.get();
            if select(node.key) {
                // SAFETY: linked in this list.
                unsafe { self.unlink(node) };
                deliver(Self::hand_over(node, token));
            }
        }
    }

    /// Whether `pred` holds for any queued node (owner's lock held, nodes linked).
    pub(crate) fn any(&self, mut pred: impl FnMut(NonNull<Node>) -> bool) -> bool {
        let mut cur = self.head;
        while let Some(ptr) = NonNull::new(cur.cast_mut()) {
            if pred(ptr) {
                return true;
            }
            // SAFETY: `cur` is linked (we walk the list with the lock held), hence alive.
            cur = unsafe { ptr.as_ref() }.next.get();
        }
        false
    }

    /// Wakes every waiter with `token`; returns their wake-ups.
    pub(crate) fn wake_all(&mut self, token: usize) -> Vec<Wakeup> {
        let mut fibers = Vec::with_capacity(self.len);
        while let Some(f) = self.wake_front(token) {
            fibers.push(f);
        }
        fibers
    }

    /// The last touch of a node by its notifier: prepare the wake-up, then publish the token.
    #[inline]
    pub(crate) fn hand_over(node: &Node, token: usize) -> Wakeup {
        let wakeup = match &node.waiter {
            // SAFETY: the node is still linked (its token is not published), so its fiber's
            // frame, and with it the fiber's task, is alive (see `Waiter::Fiber`).
            Waiter::Fiber(task) => unsafe { task.as_ref() }.prepare_wakeup(),
            Waiter::Thread(thread) => Wakeup::Unpark(thread.clone()),
        };
        // After this store the waiter may return and free the node.
        node.state.store(token, Ordering::Release);
        wakeup
    }

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
        self.len += 1;
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
        self.len -= 1;
    }

    /// Decides whether this notification should be fair: true at most about once per
    /// millisecond (a jittered interval in 0.5..1.5 ms), as parking_lot's "eventual fairness".
    pub(crate) fn be_fair(&mut self) -> bool {
        let now = Instant::now();
        let fair = matches!(self.fair_at, Some(t) if now >= t);
        if fair || self.fair_at.is_none() {
            let jitter = Duration::from_nanos(500_000 + self.rng.below(1_000_000) as u64);
            self.fair_at = Some(now + jitter);
        }
        fair
    }
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
