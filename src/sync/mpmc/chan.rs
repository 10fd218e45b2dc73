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
//! leaves without consuming (a `select!` that took another arm) passes the notification on with
//! `renotify_*`, so the message is not stranded while others sleep.
//!
//! Capacity 0 (rendezvous), as std's `sync_channel(0)`: a blocked `send` puts its message in the
//! buffer tagged with a sequence number and waits (keyed by that number) until a receiver has
//! taken exactly that message; on time-out or disconnection it takes its message back out. So
//! `try_recv` succeeds whenever a sender is blocked, and `send` returns only after the hand-over.
//! `try_send` succeeds only while more receivers are blocked in `recv` (`ready`) than messages are
//! buffered.
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::pin::{pin, Pin};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError};
use std::time::Instant;

use crate::sync::waitq::{park_node, Node, WaitList, WaitResult, TOKEN_NORMAL};
use crate::task::Wakeup;

/// Wait-list key bit of `select!` nodes (plain waiters use sequence numbers or 0).
pub(crate) const SELECT_KEY: usize = 1 << (usize::BITS - 1);

/// Wait-list key of a receiver in `recv` whose node is a [`RecvNode`]: a sender may put its
/// message straight into the node (the direct hand-off, see [`Chan::push`]).
const DIRECT_KEY: usize = 1;

/// Token of a wake-up that carries the message in the receiver's node.
const TOKEN_VALUE: usize = 1;

/// A blocked receiver's node with room for a message handed to it directly, so the woken
/// receiver returns without taking the channel lock again.
#[repr(C)] // `node` first: the wait list's `*const Node` is also a pointer to the `RecvNode`.
struct RecvNode<T> {
    node: Node,
    slot: UnsafeCell<Option<T>>,
}

struct Inner<T> {
    buf: VecDeque<T>,
    /// Capacity 0 only: the sequence number of each buffered message (parallel to `buf`).
    seqs: VecDeque<u64>,
    next_seq: u64,
    senders: usize,
    receivers: usize,
    /// Receivers blocked in `recv` (only tracked for capacity 0).
    ready: usize,
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

/// A node of the calling fiber queued on one of a channel's lists; unlinks it if the frame is
/// left (also by unwinding, e.g. a runtime shutting down a parked fiber) while it is queued.
struct Queued<'a, T> {
    chan: &'a Chan<T>,
    node: Pin<&'a Node>,
    is_send: bool,
    armed: bool,
}

impl<T> Drop for Queued<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.chan.inner.lock();
            let list = if self.is_send {
                &mut s.send_w
            } else {
                &mut s.recv_w
            };
            // SAFETY: `armed` means the node was pushed on this list and not yet unlinked by us.
            unsafe { list.remove(self.node) };
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
                seqs: VecDeque::new(),
                next_seq: 0,
                senders: 1,
                receivers: 1,
                ready: 0,
                recv_w: WaitList::new(),
                send_w: WaitList::new(),
            }),
            cap,
        }
    }

    fn is_full(&self, s: &Inner<T>) -> bool {
        match self.cap {
            None => false,
            Some(0) => s.buf.len() >= s.ready,
            Some(c) => s.buf.len() >= c,
        }
    }

    fn recv_ready(s: &Inner<T>) -> bool {
        !s.buf.is_empty() || s.senders == 0
    }

    fn send_ready(&self, s: &Inner<T>) -> bool {
        s.receivers == 0 || !self.is_full(s)
    }

    /// Buffers `value` (room checked by the caller) and picks a receiver to wake.
    ///
    /// When the buffer is empty and the first queued receiver is a plain `recv`, the message goes
    /// straight into that receiver's node instead: the woken receiver then needs no second lock
    /// round trip. FIFO order holds, since the buffer was empty and each receiver takes one
    /// message. Not for capacity 0 (its senders track their buffered message), nor while senders
    /// are queued: they wait for a receiver's `take` to wake them, which a hand-off skips.
    #[inline]
    fn push(&self, s: &mut Inner<T>, value: T) -> Option<Wakeup> {
        if s.buf.is_empty()
            && s.recv_w.front_key() == Some(DIRECT_KEY)
            && s.send_w.is_empty()
            && self.cap != Some(0)
        {
            return s.recv_w.wake_front_with(TOKEN_VALUE, |node| {
                let node = node.cast::<RecvNode<T>>();
                // SAFETY: only `recv_slow` queues nodes with `DIRECT_KEY`, and those are the
                // `node` field at offset 0 of a `RecvNode<T>` (`repr(C)`) of this channel's `T`,
                // alive until their token is published (after this closure). Its waiter reads the
                // slot only after seeing `TOKEN_VALUE` (Acquire), so nobody else touches it now.
                unsafe { *(*node.as_ptr()).slot.get() = Some(value) };
            });
        }
        s.buf.push_back(value);
        if self.cap == Some(0) {
            let seq = s.next_seq;
            s.next_seq += 1;
            s.seqs.push_back(seq);
        }
        s.recv_w.wake_front(TOKEN_NORMAL)
    }

    /// Takes the first message and picks a sender to wake (the one whose message it was, for
    /// capacity 0; the first queued one for other bounded channels).
    #[inline]
    fn take(&self, s: &mut Inner<T>) -> Option<(T, Option<Wakeup>)> {
        let v = s.buf.pop_front()?;
        let fiber = match self.cap {
            None => None,
            Some(0) => {
                let seq = s.seqs.pop_front().expect("parallel queues");
                let key = seq as usize & !SELECT_KEY;
                s.send_w.wake_first(|k| k == key, TOKEN_NORMAL)
            }
            Some(_) => s.send_w.wake_front(TOKEN_NORMAL),
        };
        Some((v, fiber))
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut s = self.inner.lock();
        if s.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if self.is_full(&s) {
            return Err(TrySendError::Full(value));
        }
        let f = self.push(&mut s, value);
        drop(s);
        unpark(f);
        Ok(())
    }

    pub(crate) fn send(&self, value: T, deadline: Option<Instant>) -> Result<(), SendFail<T>> {
        let mut s = self.inner.lock();
        if s.receivers == 0 {
            return Err(SendFail::Disconnected(value));
        }
        if self.cap == Some(0) {
            return self.send_rendezvous(s, value, deadline);
        }
        if !self.is_full(&s) {
            let f = self.push(&mut s, value);
            drop(s);
            unpark(f);
            return Ok(());
        }
        self.send_slow(s, value, deadline)
    }

    #[cold]
    fn send_slow<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, Inner<T>>,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendFail<T>> {
        let node = pin!(Node::new(0));
        let mut q = Queued {
            chan: self,
            node: node.as_ref(),
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
    ) -> Result<(), SendFail<T>> {
        let seq = s.next_seq;
        let f = self.push(&mut s, value);
        let node = pin!(Node::new(seq as usize & !SELECT_KEY));
        let mut q = Queued {
            chan: self,
            node: node.as_ref(),
            is_send: true,
            armed: false,
        };
        q.push(&mut s);
        drop(s);
        unpark(f);
        loop {
            let timed_out = q.park(deadline) == WaitResult::TimedOut
                || deadline.is_some_and(|d| Instant::now() >= d);
            let mut s = self.inner.lock();
            let Some(pos) = s.seqs.iter().position(|&x| x == seq) else {
                return Ok(());
            };
            if s.receivers == 0 || timed_out {
                s.seqs.remove(pos);
                let v = s.buf.remove(pos).expect("parallel queues");
                return Err(if s.receivers == 0 {
                    SendFail::Disconnected(v)
                } else {
                    SendFail::Timeout(v)
                });
            }
            q.push(&mut s);
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
        self.recv_slow(s, deadline)
    }

    #[cold]
    fn recv_slow<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, Inner<T>>,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError> {
        let rendezvous = self.cap == Some(0);
        let direct = pin!(RecvNode {
            node: Node::new(if rendezvous { 0 } else { DIRECT_KEY }),
            slot: UnsafeCell::new(None),
        });
        let direct = direct.as_ref();
        // SAFETY: a structural projection of a pinned value; `node` is never moved out.
        let node = unsafe { direct.map_unchecked(|d| &d.node) };
        let mut q = Queued {
            chan: self,
            node,
            is_send: false,
            armed: false,
        };
        let mut selector = None;
        if rendezvous {
            s.ready += 1;
            // A `select!` send arm may proceed now that a receiver is blocked.
            selector = s.send_w.wake_first(|k| k & SELECT_KEY != 0, TOKEN_NORMAL);
        }
        loop {
            // Here: locked, buffer empty, senders connected.
            q.push(&mut s);
            drop(s);
            unpark(selector.take());
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
            // Even at the deadline, a message that is there is taken (for capacity 0 its sender
            // counted on us).
            let result = match self.take(&mut s) {
                Some((v, f)) => Ok((v, f)),
                None if s.senders == 0 => Err(RecvTimeoutError::Disconnected),
                None if timed_out => Err(RecvTimeoutError::Timeout),
                None => continue,
            };
            if rendezvous {
                s.ready -= 1;
            }
            drop(s);
            return result.map(|(v, f)| {
                unpark(f);
                v
            });
        }
    }

    /// Links a `select!` node on one of the lists if the operation is not ready.
    ///
    /// # Safety
    /// If this returns true, `node` must stay alive and in place until it has been notified or
    /// removed with [`Chan::unregister`].
    pub(crate) unsafe fn register(&self, node: Pin<&Node>, is_send: bool) -> bool {
        let mut s = self.inner.lock();
        if is_send {
            if self.send_ready(&s) {
                return false;
            }
            // SAFETY: forwarded to the caller.
            unsafe { s.send_w.push(node) };
        } else {
            if Self::recv_ready(&s) {
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
    pub(crate) unsafe fn unregister(&self, node: Pin<&Node>, is_send: bool) -> Option<usize> {
        let mut s = self.inner.lock();
        let list = if is_send {
            &mut s.send_w
        } else {
            &mut s.recv_w
        };
        // SAFETY: forwarded to the caller.
        unsafe { list.remove(node) }
    }

    /// Passes on a notification that its recipient (a `select!`) did not use.
    pub(crate) fn renotify(&self, is_send: bool) {
        let mut s = self.inner.lock();
        let f = if is_send {
            if !self.send_ready(&s) {
                return;
            }
            if self.cap == Some(0) {
                s.send_w.wake_first(|k| k & SELECT_KEY != 0, TOKEN_NORMAL)
            } else {
                s.send_w.wake_front(TOKEN_NORMAL)
            }
        } else {
            if !Self::recv_ready(&s) {
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
        // Capacity 0: blocked senders take their own messages back (they get `SendError(msg)`).
        let buf = if self.cap == Some(0) {
            VecDeque::new()
        } else {
            std::mem::take(&mut s.buf)
        };
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
