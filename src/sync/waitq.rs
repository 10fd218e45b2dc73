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
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::scheduler::context;
use crate::task::{Task, Wakeup};
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
            waiter: match context::current_task_ptr() {
                Some(task) => Waiter::Fiber(task),
                None => Waiter::Thread(crate::current()),
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
    /// State of a tiny xorshift generator that jitters the fairness interval.
    seed: u32,
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
            seed: 0x9E37_79B9,
        }
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
    fn hand_over(node: &Node, token: usize) -> Wakeup {
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

/// Parks the caller until `node` is notified or `deadline` passes. At the deadline `expire` runs:
/// it must take the owner's lock and `remove` the node, returning true if the node was still
/// queued (then this returns `TimedOut`); if a notifier got there first it returns false and the
/// token (now visible) is returned instead. This is the one park loop of `fiber::sync`.
pub(crate) fn park_node(
    node: &Node,
    deadline: Option<Instant>,
    mut expire: impl FnMut() -> bool,
) -> WaitResult {
    loop {
        if let Some(token) = node.token() {
            return WaitResult::Notified(token);
        }
        match deadline {
            None => crate::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now < deadline {
                    crate::park_timeout(deadline - now);
                } else if expire() {
                    return WaitResult::TimedOut;
                }
            }
        }
    }
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
        self.len.store(list.len + extra, Ordering::Relaxed);
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
        // SAFETY: the list is not empty, so `head` is linked, hence alive; lock held.
        let key = unsafe { (*list.head).key };
        let result = NotifyResult {
            notified: 1,
            have_more: list.len > 1,
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
                Filter::Stop => break,
            }
        }
        self.sync_len(&list, 0);
        let result = NotifyResult {
            notified: woken.len(),
            have_more: !list.is_empty(),
            key: woken.first().map_or(0, |n| n.key),
            be_fair: false,
        };
        let token = callback(result);
        let wakeups: Vec<Wakeup> = woken
            .into_iter()
            .map(|node| WaitList::hand_over(node, token))
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
