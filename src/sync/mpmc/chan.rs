//! The channel core shared by `mpmc` and `mpsc`.
//!
//! One short `parking_lot` lock protects the `VecDeque` buffer, the end counts and the two
//! [`WaitList`]s of parked receivers and senders (the shared intrusive list of `waitq`, here kept
//! under the channel's own lock rather than behind a second one). "Buffer empty, so queue myself"
//! and "push, then wake the first queued receiver" are therefore each one critical section, which
//! rules out lost wake-ups, and a send or receive costs one lock round trip on its fast path.
//!
//! Wake-ups are *hints*: a woken receiver re-tries `try_recv` and may find that a newcomer took
//! the message first (barging; it then queues again, at the tail). A waiter that was notified but
//! leaves without consuming (a `select!` that took another arm, a fiber unwound by runtime
//! shutdown) passes the notification on with `renotify`, so the message is not stranded while
//! others sleep.
//!
//! # Capacity 0 (rendezvous)
//!
//! A zero-capacity channel has no buffer of messages in flight: a message goes from one waiting
//! party to the other in one critical section, and both sides *commit* there.
//! - A plain `send` or `recv` that finds no partner queues a [`RecvNode`] (a node with a slot for
//!   one message: the sender's message, or room for the receiver's) and parks.
//! - A `select!` arm queues a [`SelectNode`]: it points at the `select!`'s [`SelectCell`] (shared
//!   by all its arms, on every channel) and at the arm's packet (the message to send, or room for
//!   the received one). The cell is `WAITING` until one party claims the whole `select!` for one
//!   arm by a CAS; the `select!` itself closes it (CAS `WAITING -> CLOSED`) before it leaves.
//! - An operation looks for a partner in the opposite list, in order: a plain node always
//!   matches; a `select!` node only if the CAS on its cell wins (else it is skipped: its
//!   `select!` is leaving or committed elsewhere). The message moves between the two slots under
//!   the lock, the partner's node is unlinked and handed `TOKEN_VALUE`, and both sides complete:
//!   exactly once, and a sender returns `Ok` only when a receiver has the message.
//! - `register` (a `select!` queueing its arm) reports the arm ready if a partner that could be
//!   claimed is waiting, other than the `select!` itself; the `select!` then closes its cell,
//!   unlinks everything and retries its arms, and in that retry it is the claimer. So plain and
//!   `select!` operations meet in all four pairings, and a `select!` never pairs with itself.
//!
//! # Messages nobody received (unwinding)
//!
//! A message handed directly to a receiver (`TOKEN_VALUE` in its node or packet) that is then
//! unwound by runtime shutdown before it returns is not dropped: it is put back at the *front* of
//! the buffer (it is older than anything buffered since) and the next receiver is woken. On a
//! bounded channel this may exceed the capacity by the messages put back; on a zero-capacity
//! channel, whose sender already returned `Ok`, it is offered to a waiting receiver first and
//! otherwise kept in the buffer, which receivers drain before meeting senders. Such messages are
//! dropped, like buffered ones, when the last receiver goes.
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::pin::{pin, Pin};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError};
use std::time::Instant;

use crate::driver::wait::park_node;
use crate::task::reason::{self, kind};
use crate::task::wait::{Node, WaitList, WaitResult, TOKEN_NORMAL};
use crate::task::Wakeup;
use std::panic::Location;

/// Wait-list key bit of `select!` nodes, which are [`SelectNode`]s (plain waiters use 0 or
/// [`DIRECT_KEY`]); the low bits are the arm's index.
pub(crate) const SELECT_KEY: usize = 1 << (usize::BITS - 1);

/// Wait-list key of a plain waiter whose node is a [`RecvNode`]: every plain receiver, and on a
/// zero-capacity channel every plain sender too (its slot holds the message).
const DIRECT_KEY: usize = 1;

/// Token of a wake-up that completed the operation: a message was put into the receiver's slot,
/// or taken out of the sender's.
pub(crate) const TOKEN_VALUE: usize = 1;

/// A blocked plain waiter's node with a slot for one message: a receiver's room for a message
/// handed to it directly (so the woken receiver returns without taking the channel lock again),
/// or a zero-capacity sender's message waiting for a receiver.
#[repr(C)] // `node` first: the wait list's `*const Node` is also a pointer to the `RecvNode`.
struct RecvNode<T> {
    node: Node,
    slot: UnsafeCell<Option<T>>,
}

/// The selection state of one `select!` wait, shared by all its nodes (see the module docs).
pub(crate) struct SelectCell(AtomicUsize);

const CELL_WAITING: usize = usize::MAX;
const CELL_CLOSED: usize = usize::MAX - 1;

impl SelectCell {
    pub(crate) const fn new() -> SelectCell {
        SelectCell(AtomicUsize::new(CELL_WAITING))
    }

    /// Claims the `select!` for `arm`; false if it is closed or already claimed.
    fn try_claim(&self, arm: usize) -> bool {
        self.0
            .compare_exchange(CELL_WAITING, arm, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_waiting(&self) -> bool {
        self.0.load(Ordering::Acquire) == CELL_WAITING
    }

    /// Closes the cell so that nobody can claim it any more; `Some(arm)` if somebody already did.
    pub(crate) fn close(&self) -> Option<usize> {
        match self.0.compare_exchange(
            CELL_WAITING,
            CELL_CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) | Err(CELL_CLOSED) => None,
            Err(arm) => Some(arm),
        }
    }

    /// The arm that claimed the closed cell, if any.
    pub(crate) fn claimed(&self) -> Option<usize> {
        match self.0.load(Ordering::Acquire) {
            CELL_WAITING | CELL_CLOSED => None,
            arm => Some(arm),
        }
    }
}

/// A `select!` arm's node (key `SELECT_KEY | arm`).
#[repr(C)] // `node` first, as `RecvNode`.
pub(crate) struct SelectNode {
    pub(crate) node: Node,
    /// The `select!`'s cell; outlives the node's time on any list.
    cell: *const SelectCell,
    /// The arm's `Packet<T>` of this channel's `T`: the message of a send arm, room for the
    /// message of a recv arm. Touched by a channel only after winning the CAS on `cell`.
    packet: *const (),
}

impl SelectNode {
    pub(crate) fn new(arm: usize, cell: &SelectCell, packet: *const ()) -> SelectNode {
        SelectNode {
            node: Node::new(SELECT_KEY | arm),
            cell,
            packet,
        }
    }
}

/// The message slot of a `select!` arm (hidden; the macro builds one per arm): the value to send,
/// or where a received value lands when a zero-capacity partner completes the arm directly.
///
/// Only the `select!` that owns it uses the methods; a channel touches it (through the arm's
/// [`SelectNode`]) only while the `select!` is parked inside `__select_wait`, under the channel's
/// lock, after claiming the `select!`'s cell.
#[doc(hidden)]
pub struct Packet<T>(UnsafeCell<Option<T>>);

impl<T> Packet<T> {
    /// A packet holding `value`.
    pub fn new(value: Option<T>) -> Packet<T> {
        Packet(UnsafeCell::new(value))
    }

    /// Takes the value out.
    pub fn take(&self) -> Option<T> {
        // SAFETY: `Packet` is not `Sync`, so this is the owning thread; channels write to it only
        // while the owner is inside `__select_wait` (see the type's docs), not now.
        unsafe { (*self.0.get()).take() }
    }

    /// Puts a value (back) in.
    pub fn put(&self, value: T) {
        // SAFETY: as in `take`.
        unsafe { *self.0.get() = Some(value) };
    }
}

impl<T> Default for Packet<T> {
    fn default() -> Self {
        Packet::new(None)
    }
}

struct Inner<T> {
    buf: VecDeque<T>,
    senders: usize,
    receivers: usize,
    recv_w: WaitList,
    send_w: WaitList,
}

pub(crate) struct Chan<T> {
    inner: parking_lot::Mutex<Inner<T>>,
    /// `None`: unbounded.
    cap: Option<usize>,
}

/// Why a timed send failed.
pub(crate) enum SendFail<T> {
    Timeout(T),
    Disconnected(T),
}

#[inline]
fn unpark(wakeup: Option<Wakeup>) {
    if let Some(w) = wakeup {
        w.wake();
    }
}

/// What a node on a zero-capacity channel's list is, for matching.
enum Peer<'a> {
    Plain,
    Select(&'a SelectNode),
}

/// Classifies a linked node of a zero-capacity channel.
///
/// # Safety
/// `node` must be linked on one of the channel's lists (owner's lock held).
unsafe fn peer<'a>(node: NonNull<Node>) -> Peer<'a> {
    // SAFETY: linked, hence alive (caller).
    let key = unsafe { node.as_ref() }.key();
    if key & SELECT_KEY == 0 {
        Peer::Plain
    } else {
        // SAFETY: every node keyed `SELECT_KEY` is the first field of a `repr(C)` `SelectNode`.
        Peer::Select(unsafe { node.cast::<SelectNode>().as_ref() })
    }
}

/// A node of the calling fiber queued on one of a channel's lists; unlinks it if the frame is
/// left (also by unwinding, e.g. a runtime shutting down a parked fiber) while it is queued, and
/// then deals with a token it had already been handed (see "Messages nobody received").
struct Queued<'a, T> {
    chan: &'a Chan<T>,
    node: Pin<&'a Node>,
    /// The node's slot, for receivers (a message handed over must not be lost).
    slot: Option<&'a UnsafeCell<Option<T>>>,
    is_send: bool,
    armed: bool,
}

impl<T> Drop for Queued<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = self.chan.inner.lock();
        let list = if self.is_send {
            &mut s.send_w
        } else {
            &mut s.recv_w
        };
        // SAFETY: `armed` means the node was pushed on this list and not yet unlinked by us.
        let token = unsafe { list.remove(self.node) };
        drop(s);
        match (token, self.slot) {
            (Some(TOKEN_VALUE), Some(slot)) if !self.is_send => {
                // SAFETY: the sender filled the slot before publishing the token, which `remove`
                // returned under the lock; nobody else touches the slot any more.
                if let Some(v) = unsafe { (*slot.get()).take() } {
                    self.chan.restore(v);
                }
            }
            // A hint we will not act on: pass it on.
            (Some(TOKEN_NORMAL), _) => self.chan.renotify(self.is_send),
            _ => {}
        }
    }
}

impl<T> Queued<'_, T> {
    /// Queues the node on its list; `s` is the locked channel.
    fn push(&mut self, s: &mut Inner<T>) {
        let list = if self.is_send {
            &mut s.send_w
        } else {
            &mut s.recv_w
        };
        // SAFETY: the node is pinned in the caller's frame, which `self` (borrowing it) does not
        // outlive; `armed` makes our `Drop` unlink it if the frame is left while it is queued.
        unsafe { list.push(self.node) };
        self.armed = true;
    }

    /// Parks until notified or `deadline`; afterwards the node is not queued any more.
    fn park(&mut self, deadline: Option<Instant>) -> WaitResult {
        let (chan, node, is_send) = (self.chan, self.node, self.is_send);
        let r = park_node(&node, deadline, || {
            let mut s = chan.inner.lock();
            let list = if is_send {
                &mut s.send_w
            } else {
                &mut s.recv_w
            };
            // SAFETY: pushed on this list by `push`.
            unsafe { list.remove(node) }.is_none()
        });
        self.armed = false;
        r
    }
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        let buf = match cap {
            Some(c) => VecDeque::with_capacity(c.min(4096)),
            None => VecDeque::new(),
        };
        Chan {
            inner: parking_lot::Mutex::new(Inner {
                buf,
                senders: 1,
                receivers: 1,
                recv_w: WaitList::new(),
                send_w: WaitList::new(),
            }),
            cap,
        }
    }

    #[inline]
    fn is_rendezvous(&self) -> bool {
        self.cap == Some(0)
    }

    /// Capacity > 0 only.
    fn is_full(&self, s: &Inner<T>) -> bool {
        match self.cap {
            None => false,
            Some(c) => s.buf.len() >= c,
        }
    }

    fn recv_ready(&self, s: &Inner<T>, own: *const SelectCell) -> bool {
        !s.buf.is_empty()
            || s.senders == 0
            || (self.is_rendezvous() && Self::partner_waiting(&s.send_w, own))
    }

    fn send_ready(&self, s: &Inner<T>, own: *const SelectCell) -> bool {
        s.receivers == 0
            || if self.is_rendezvous() {
                Self::partner_waiting(&s.recv_w, own)
            } else {
                !self.is_full(s)
            }
    }

    /// Capacity 0: whether `list` holds a partner that could be claimed now by anyone but the
    /// `select!` owning `own`.
    fn partner_waiting(list: &WaitList, own: *const SelectCell) -> bool {
        list.any(|node| {
            // SAFETY: `node` is linked on this channel's list; we hold the lock.
            match unsafe { peer(node) } {
                Peer::Plain => true,
                // SAFETY: a linked select node's cell outlives its time on the list.
                Peer::Select(sel) => sel.cell != own && unsafe { &*sel.cell }.is_waiting(),
            }
        })
    }

    /// Capacity 0: the message slot of a partner node found on one of this channel's lists, if it
    /// can be claimed: a plain node always, a `select!` node only if the CAS on its cell wins.
    ///
    /// # Safety
    /// `node` must be linked on one of this channel's wait lists, and the channel lock held. A
    /// returned slot may be accessed only while the lock is held and before the node is handed
    /// its token.
    unsafe fn claim_slot(node: NonNull<Node>) -> Option<*mut Option<T>> {
        // SAFETY: `node` is linked on this channel's list; we hold the lock (caller contract).
        match unsafe { peer(node) } {
            // SAFETY: plain nodes of a zero-capacity channel are `RecvNode<T>`s (`repr(C)`),
            // whose waiter reads the slot only after the token is published.
            Peer::Plain => Some(unsafe { node.cast::<RecvNode<T>>().as_ref() }.slot.get()),
            Peer::Select(sel) => {
                // SAFETY: the cell outlives the node's time on the list.
                if !unsafe { &*sel.cell }.try_claim(sel.node.key() & !SELECT_KEY) {
                    return None;
                }
                // SAFETY: a select node's packet is a `Packet<T>` of this channel's `T`; having
                // claimed the cell, we are the only one to touch it until the `select!`
                // unregisters (under this lock).
                Some(unsafe { &*sel.packet.cast::<Packet<T>>() }.0.get())
            }
        }
    }

    /// Capacity 0: gives `value` to the first waiting receiver that can be claimed.
    fn rdv_give(s: &mut Inner<T>, value: T) -> Result<Option<Wakeup>, T> {
        let mut value = Some(value);
        let wakeup = s.recv_w.wake_first_claimed(TOKEN_VALUE, |node| {
            // SAFETY: `node` is linked on this channel's receiver list; we hold the lock.
            let Some(slot) = (unsafe { Self::claim_slot(node) }) else {
                return false;
            };
            // SAFETY: claimed under the lock, token not yet published: nobody else accesses it.
            unsafe { *slot = value.take() };
            true
        });
        match value {
            None => Ok(wakeup),
            Some(v) => Err(v),
        }
    }

    /// Capacity 0: takes the message of the first waiting sender that can be claimed.
    fn rdv_take(s: &mut Inner<T>) -> Option<(T, Option<Wakeup>)> {
        let mut value = None;
        let wakeup = s.send_w.wake_first_claimed(TOKEN_VALUE, |node| {
            // SAFETY: `node` is linked on this channel's sender list; we hold the lock.
            let Some(slot) = (unsafe { Self::claim_slot(node) }) else {
                return false;
            };
            // SAFETY: as in `rdv_give`.
            value = unsafe { (*slot).take() };
            debug_assert!(value.is_some(), "a waiting sender holds its message");
            true
        });
        value.map(|v| (v, wakeup))
    }

    /// Buffers `value` (room checked by the caller) and picks a receiver to wake.
    ///
    /// When the buffer is empty and the first queued receiver is a plain `recv`, the message goes
    /// straight into that receiver's node instead: the woken receiver then needs no second lock
    /// round trip. FIFO order holds, since the buffer was empty and each receiver takes one
    /// message. Not while senders are queued: they wait for a receiver's `take` to wake them,
    /// which a hand-off skips. Capacity > 0 only.
    #[inline]
    fn push(&self, s: &mut Inner<T>, value: T) -> Option<Wakeup> {
        debug_assert!(!self.is_rendezvous());
        if s.buf.is_empty() && s.recv_w.front_key() == Some(DIRECT_KEY) && s.send_w.is_empty() {
            return s.recv_w.wake_front_with(TOKEN_VALUE, |node| {
                // SAFETY: nodes keyed `DIRECT_KEY` are the `node` field at offset 0 of a
                // `RecvNode<T>` (`repr(C)`) of this channel's `T`, alive until their token is
                // published (after this closure).
                let slot = unsafe { node.cast::<RecvNode<T>>().as_ref() }.slot.get();
                // SAFETY: the waiter reads the slot only after seeing `TOKEN_VALUE` (Acquire), so
                // nobody else touches it now.
                unsafe { *slot = Some(value) };
            });
        }
        s.buf.push_back(value);
        s.recv_w.wake_front(TOKEN_NORMAL)
    }

    /// Takes the first message and picks a sender to wake: the first queued one for bounded
    /// channels; on a zero-capacity channel a waiting sender's message (after any put back).
    #[inline]
    fn take(&self, s: &mut Inner<T>) -> Option<(T, Option<Wakeup>)> {
        if let Some(v) = s.buf.pop_front() {
            let fiber = match self.cap {
                Some(c) if c > 0 => s.send_w.wake_front(TOKEN_NORMAL),
                _ => None,
            };
            return Some((v, fiber));
        }
        if self.is_rendezvous() {
            return Self::rdv_take(s);
        }
        None
    }

    /// A message handed directly to a receiver that will not return it (it is being unwound, see
    /// the module docs): back to the front of the channel, for the next receiver.
    fn restore(&self, value: T) {
        let mut s = self.inner.lock();
        if s.receivers == 0 {
            drop(s);
            return; // Nobody can receive it any more: dropped, as buffered messages are.
        }
        let wakeup = if self.is_rendezvous() {
            match Self::rdv_give(&mut s, value) {
                Ok(w) => w,
                Err(v) => {
                    s.buf.push_front(v);
                    s.recv_w.wake_front(TOKEN_NORMAL)
                }
            }
        } else {
            s.buf.push_front(value);
            s.recv_w.wake_front(TOKEN_NORMAL)
        };
        drop(s);
        unpark(wakeup);
    }

    /// As `restore`, for a `select!` recv arm that was completed by a partner and is unwound.
    pub(crate) fn restore_packet(&self, packet: *const ()) {
        // SAFETY: `packet` is the arm's `Packet<T>` of this channel's `T`; its `select!` has
        // unregistered every node, so nobody else touches it.
        if let Some(v) = unsafe { &*packet.cast::<Packet<T>>() }.take() {
            self.restore(v);
        }
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut s = self.inner.lock();
        if s.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        let f = if self.is_rendezvous() {
            match Self::rdv_give(&mut s, value) {
                Ok(f) => f,
                Err(v) => return Err(TrySendError::Full(v)),
            }
        } else {
            if self.is_full(&s) {
                return Err(TrySendError::Full(value));
            }
            self.push(&mut s, value)
        };
        drop(s);
        unpark(f);
        Ok(())
    }

    #[track_caller]
    pub(crate) fn send(&self, value: T, deadline: Option<Instant>) -> Result<(), SendFail<T>> {
        let mut s = self.inner.lock();
        if s.receivers == 0 {
            return Err(SendFail::Disconnected(value));
        }
        if self.is_rendezvous() {
            return self.send_rendezvous(s, value, deadline, Location::caller());
        }
        if !self.is_full(&s) {
            let f = self.push(&mut s, value);
            drop(s);
            unpark(f);
            return Ok(());
        }
        self.send_slow(s, value, deadline, Location::caller())
    }

    #[cold]
    fn send_slow<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, Inner<T>>,
        value: T,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> Result<(), SendFail<T>> {
        let _wait = reason::enter(reason::at(kind::CHAN_SEND, self), site);
        let node = pin!(Node::new(0));
        let mut q = Queued {
            chan: self,
            node: node.as_ref(),
            slot: None,
            is_send: true,
            armed: false,
        };
        let mut timed_out = false;
        loop {
            if s.receivers == 0 {
                return Err(SendFail::Disconnected(value));
            }
            if !self.is_full(&s) {
                let f = self.push(&mut s, value);
                drop(s);
                unpark(f);
                return Ok(());
            }
            if timed_out {
                return Err(SendFail::Timeout(value));
            }
            q.push(&mut s);
            drop(s);
            timed_out = q.park(deadline) == WaitResult::TimedOut
                || deadline.is_some_and(|d| Instant::now() >= d);
            s = self.inner.lock();
        }
    }

    /// `send` on a zero-capacity channel; see the module docs.
    #[cold]
    fn send_rendezvous<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, Inner<T>>,
        value: T,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> Result<(), SendFail<T>> {
        let _wait = reason::enter(reason::at(kind::CHAN_SEND, self), site);
        let value = match Self::rdv_give(&mut s, value) {
            Ok(f) => {
                drop(s);
                unpark(f);
                return Ok(());
            }
            Err(v) => v,
        };
        let direct = pin!(RecvNode {
            node: Node::new(DIRECT_KEY),
            slot: UnsafeCell::new(Some(value)),
        });
        let direct = direct.as_ref();
        // SAFETY: a structural projection of a pinned value; `node` is never moved out.
        let node = unsafe { direct.map_unchecked(|d| &d.node) };
        let mut q = Queued {
            chan: self,
            node,
            slot: None, // our own message: if we are unwound while it waits, it was never sent
            is_send: true,
            armed: false,
        };
        loop {
            // Here: locked, receivers connected, no receiver to claim, our message in the slot.
            q.push(&mut s);
            drop(s);
            let result = q.park(deadline);
            if result == WaitResult::Notified(TOKEN_VALUE) {
                return Ok(()); // a receiver took the message out of the slot
            }
            s = self.inner.lock();
            // SAFETY: our node is unlinked (`park` returned without `TOKEN_VALUE`): nobody else
            // touches the slot.
            let value = unsafe { (*direct.slot.get()).take() }.expect("our message is still ours");
            if s.receivers == 0 {
                return Err(SendFail::Disconnected(value));
            }
            let value = match Self::rdv_give(&mut s, value) {
                Ok(f) => {
                    drop(s);
                    unpark(f);
                    return Ok(());
                }
                Err(v) => v,
            };
            if result == WaitResult::TimedOut || deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SendFail::Timeout(value));
            }
            // SAFETY: as above; the node is not queued, so the slot is ours.
            unsafe { *direct.slot.get() = Some(value) };
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut s = self.inner.lock();
        match self.take(&mut s) {
            Some((v, f)) => {
                drop(s);
                unpark(f);
                Ok(v)
            }
            None if s.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    #[track_caller]
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut s = self.inner.lock();
        if let Some((v, f)) = self.take(&mut s) {
            drop(s);
            unpark(f);
            return Ok(v);
        }
        if s.senders == 0 {
            return Err(RecvTimeoutError::Disconnected);
        }
        self.recv_slow(s, deadline, Location::caller())
    }

    #[cold]
    fn recv_slow<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, Inner<T>>,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> Result<T, RecvTimeoutError> {
        let _wait = reason::enter(reason::at(kind::CHAN_RECV, self), site);
        let direct = pin!(RecvNode {
            node: Node::new(DIRECT_KEY),
            slot: UnsafeCell::new(None),
        });
        let direct = direct.as_ref();
        // SAFETY: a structural projection of a pinned value; `node` is never moved out.
        let node = unsafe { direct.map_unchecked(|d| &d.node) };
        let mut q = Queued {
            chan: self,
            node,
            slot: Some(&direct.get_ref().slot),
            is_send: false,
            armed: false,
        };
        loop {
            // Here: locked, nothing to take, senders connected.
            q.push(&mut s);
            drop(s);
            let result = q.park(deadline);
            if result == WaitResult::Notified(TOKEN_VALUE) {
                // SAFETY: a sender filled the slot before publishing this token, which we have
                // seen (Acquire), and is done with the node.
                let value = unsafe { (*direct.slot.get()).take() };
                return Ok(value.expect("a direct hand-off fills the slot"));
            }
            let timed_out =
                result == WaitResult::TimedOut || deadline.is_some_and(|d| Instant::now() >= d);
            s = self.inner.lock();
            // Even at the deadline, a message that is there is taken.
            let result = match self.take(&mut s) {
                Some((v, f)) => Ok((v, f)),
                None if s.senders == 0 => Err(RecvTimeoutError::Disconnected),
                None if timed_out => Err(RecvTimeoutError::Timeout),
                None => continue,
            };
            drop(s);
            return result.map(|(v, f)| {
                unpark(f);
                v
            });
        }
    }

    /// Links a `select!` node on one of the lists unless the operation is ready now (then
    /// false). `own` is the `select!`'s cell: its own nodes on the other list are no partners.
    ///
    /// # Safety
    /// If this returns true, `node` (and the cell and packet it points to) must stay alive and in
    /// place until it has been notified or removed with [`Chan::unregister`].
    pub(crate) unsafe fn register(&self, node: Pin<&SelectNode>, is_send: bool) -> bool {
        let mut s = self.inner.lock();
        let own = node.cell;
        // SAFETY: a structural projection of a pinned value.
        let node = unsafe { node.map_unchecked(|n| &n.node) };
        if is_send {
            if self.send_ready(&s, own) {
                return false;
            }
            // SAFETY: forwarded to the caller.
            unsafe { s.send_w.push(node) };
        } else {
            if self.recv_ready(&s, own) {
                return false;
            }
            // SAFETY: forwarded to the caller.
            unsafe { s.recv_w.push(node) };
        }
        true
    }

    /// Removes a `select!` node: `None` if it was still queued, else its token.
    ///
    /// # Safety
    /// `node` must have been registered on this channel with the same `is_send`.
    pub(crate) unsafe fn unregister(&self, node: Pin<&SelectNode>, is_send: bool) -> Option<usize> {
        // SAFETY: a structural projection of a pinned value.
        let node = unsafe { node.map_unchecked(|n| &n.node) };
        let mut s = self.inner.lock();
        let list = if is_send {
            &mut s.send_w
        } else {
            &mut s.recv_w
        };
        // SAFETY: forwarded to the caller.
        unsafe { list.remove(node) }
    }

    /// Passes on a wake-up hint that its recipient (a `select!`, an unwound waiter) did not use.
    pub(crate) fn renotify(&self, is_send: bool) {
        let mut s = self.inner.lock();
        let f = if is_send {
            // Zero capacity: senders get no hints (only disconnection, which wakes them all).
            if self.is_rendezvous() || !self.send_ready(&s, std::ptr::null()) {
                return;
            }
            s.send_w.wake_front(TOKEN_NORMAL)
        } else {
            if s.buf.is_empty() && s.senders != 0 {
                return;
            }
            s.recv_w.wake_front(TOKEN_NORMAL)
        };
        drop(s);
        unpark(f);
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().buf.len()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.cap
    }

    pub(crate) fn add_sender(&self) {
        self.inner.lock().senders += 1;
    }

    pub(crate) fn add_receiver(&self) {
        self.inner.lock().receivers += 1;
    }

    pub(crate) fn drop_sender(&self) {
        let mut s = self.inner.lock();
        s.senders -= 1;
        if s.senders != 0 {
            return;
        }
        let wakeups = s.recv_w.wake_all(TOKEN_NORMAL);
        drop(s);
        wakeups.into_iter().for_each(Wakeup::wake);
    }

    pub(crate) fn drop_receiver(&self) {
        let mut s = self.inner.lock();
        s.receivers -= 1;
        if s.receivers != 0 {
            return;
        }
        // Blocked zero-capacity senders still hold their messages (they get `SendError(msg)`).
        let buf = std::mem::take(&mut s.buf);
        let wakeups = s.send_w.wake_all(TOKEN_NORMAL);
        drop(s);
        // Messages nobody can receive any more are dropped now, outside the lock.
        drop(buf);
        wakeups.into_iter().for_each(Wakeup::wake);
    }

    pub(crate) fn is_disconnected_for_sender(&self) -> bool {
        self.inner.lock().receivers == 0
    }
}
