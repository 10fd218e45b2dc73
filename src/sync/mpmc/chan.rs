//! The channel core shared by `mpmc` and `mpsc`.
//!
//! A short `parking_lot` lock protects a `VecDeque` buffer and the end counts; two [`WaitQueue`]s
//! hold the parked receivers and senders. Waiters re-check the channel under its lock inside the
//! queue's `validate` step, and the opposite side changes the channel under that lock before it
//! looks at `has_waiters`; that ordering is what rules out lost wake-ups (see `waitq`).
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
use std::collections::VecDeque;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError};
use std::time::Instant;

use crate::sync::waitq::{Filter, Node, WaitQueue, WaitResult, TOKEN_NORMAL};

/// Wait-queue key bit of `select!` nodes (plain waiters use small keys).
pub(crate) const SELECT_KEY: usize = 1 << (usize::BITS - 1);

pub(crate) struct State<T> {
    buf: VecDeque<T>,
    /// Capacity 0 only: the sequence number of each buffered message (parallel to `buf`).
    seqs: VecDeque<u64>,
    next_seq: u64,
    senders: usize,
    receivers: usize,
    /// Receivers blocked in `recv` (only tracked for capacity 0).
    ready: usize,
}

pub(crate) struct Chan<T> {
    state: parking_lot::Mutex<State<T>>,
    /// `None`: unbounded.
    cap: Option<usize>,
    pub(crate) recv_q: WaitQueue,
    pub(crate) send_q: WaitQueue,
}

/// Why a timed send failed.
pub(crate) enum SendFail<T> {
    Timeout(T),
    Disconnected(T),
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        let buf = match cap {
            Some(c) => VecDeque::with_capacity(c.min(4096)),
            None => VecDeque::new(),
        };
        Chan {
            state: parking_lot::Mutex::new(State {
                buf,
                seqs: VecDeque::new(),
                next_seq: 0,
                senders: 1,
                receivers: 1,
                ready: 0,
            }),
            cap,
            recv_q: WaitQueue::new(),
            send_q: WaitQueue::new(),
        }
    }

    fn is_full(&self, s: &State<T>) -> bool {
        match self.cap {
            None => false,
            Some(0) => s.buf.len() >= s.ready,
            Some(c) => s.buf.len() >= c,
        }
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut s = self.state.lock();
        if s.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if self.is_full(&s) {
            return Err(TrySendError::Full(value));
        }
        s.buf.push_back(value);
        if self.cap == Some(0) {
            let seq = s.next_seq;
            s.next_seq += 1;
            s.seqs.push_back(seq);
        }
        drop(s);
        if self.recv_q.has_waiters() {
            self.recv_q.notify_one(|_| TOKEN_NORMAL);
        }
        Ok(())
    }

    /// `send` on a zero-capacity channel; see the module docs.
    fn send_rendezvous(&self, value: T, deadline: Option<Instant>) -> Result<(), SendFail<T>> {
        let mut s = self.state.lock();
        if s.receivers == 0 {
            return Err(SendFail::Disconnected(value));
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.buf.push_back(value);
        s.seqs.push_back(seq);
        drop(s);
        if self.recv_q.has_waiters() {
            self.recv_q.notify_one(|_| TOKEN_NORMAL);
        }
        let key = seq as usize & !SELECT_KEY;
        loop {
            let r = self.send_q.wait(
                key,
                || {
                    let s = self.state.lock();
                    s.receivers != 0 && s.seqs.contains(&seq)
                },
                || {},
                deadline,
                |_| {},
            );
            let mut s = self.state.lock();
            let Some(pos) = s.seqs.iter().position(|&x| x == seq) else {
                return Ok(());
            };
            let timed_out =
                r == WaitResult::TimedOut || deadline.is_some_and(|d| Instant::now() >= d);
            if s.receivers == 0 || timed_out {
                s.seqs.remove(pos);
                let v = s.buf.remove(pos).expect("parallel queues");
                return Err(if s.receivers == 0 {
                    SendFail::Disconnected(v)
                } else {
                    SendFail::Timeout(v)
                });
            }
        }
    }

    pub(crate) fn send(&self, mut value: T, deadline: Option<Instant>) -> Result<(), SendFail<T>> {
        if self.cap == Some(0) {
            return self.send_rendezvous(value, deadline);
        }
        loop {
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(v)) => return Err(SendFail::Disconnected(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            let r = self.send_q.wait(
                TOKEN_NORMAL,
                || {
                    let s = self.state.lock();
                    s.receivers != 0 && self.is_full(&s)
                },
                || {},
                deadline,
                |_| {},
            );
            if r == WaitResult::TimedOut {
                // One last try, so that a slot freed at the deadline is not wasted.
                return match self.try_send(value) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Disconnected(v)) => Err(SendFail::Disconnected(v)),
                    Err(TrySendError::Full(v)) => Err(SendFail::Timeout(v)),
                };
            }
        }
    }

    /// Pops under the lock and wakes a sender if a slot opened.
    fn pop(&self, mut s: parking_lot::MutexGuard<'_, State<T>>) -> Result<T, TryRecvError> {
        match s.buf.pop_front() {
            Some(v) => {
                let seq = if self.cap == Some(0) {
                    s.seqs.pop_front()
                } else {
                    None
                };
                drop(s);
                if self.cap.is_some() && self.send_q.has_waiters() {
                    match seq {
                        // Wake exactly the sender whose message this was.
                        Some(seq) => {
                            let key = seq as usize & !SELECT_KEY;
                            let found = std::cell::Cell::new(false);
                            self.send_q.notify_filter(
                                |k| {
                                    if found.get() {
                                        Filter::Stop
                                    } else if k == key {
                                        found.set(true);
                                        Filter::Notify
                                    } else {
                                        Filter::Skip
                                    }
                                },
                                |_| TOKEN_NORMAL,
                            );
                        }
                        None => {
                            self.send_q.notify_one(|_| TOKEN_NORMAL);
                        }
                    }
                }
                Ok(v)
            }
            None if s.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.pop(self.state.lock())
    }

    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        match self.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let rendezvous = self.cap == Some(0);
        if rendezvous {
            self.add_ready(1);
        }
        let result = loop {
            let r = self.recv_q.wait(
                TOKEN_NORMAL,
                || {
                    let s = self.state.lock();
                    s.buf.is_empty() && s.senders != 0
                },
                || {},
                deadline,
                |_| {},
            );
            let mut s = self.state.lock();
            let timed_out =
                r == WaitResult::TimedOut || deadline.is_some_and(|d| Instant::now() >= d);
            if s.buf.is_empty() && s.senders != 0 && !timed_out {
                continue;
            }
            if rendezvous {
                s.ready -= 1;
            }
            break match self.pop(s) {
                Ok(v) => Ok(v),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
            };
        };
        result
    }

    /// Capacity 0: a receiver starts (or, negative, stops) blocking; may let a sender proceed.
    pub(crate) fn add_ready(&self, delta: isize) {
        let mut s = self.state.lock();
        s.ready = s.ready.checked_add_signed(delta).expect("ready count");
        drop(s);
        if delta > 0 && self.send_q.has_waiters() {
            // Blocked plain senders already have their message in the buffer; only a `select!`
            // send arm can use a newly ready receiver.
            self.wake_one_selector(&self.send_q);
        }
    }

    fn wake_one_selector(&self, q: &WaitQueue) {
        let found = std::cell::Cell::new(false);
        q.notify_filter(
            |k| {
                if found.get() {
                    Filter::Stop
                } else if k & SELECT_KEY != 0 {
                    found.set(true);
                    Filter::Notify
                } else {
                    Filter::Skip
                }
            },
            |_| TOKEN_NORMAL,
        );
    }

    /// For `select!`: would `try_recv` not return `Empty`?
    pub(crate) fn recv_ready(&self) -> bool {
        let s = self.state.lock();
        !s.buf.is_empty() || s.senders == 0
    }

    /// For `select!`: would `try_send` not return `Full`?
    pub(crate) fn send_ready(&self) -> bool {
        let s = self.state.lock();
        s.receivers == 0 || !self.is_full(&s)
    }

    /// Passes on a receive notification that its recipient did not use.
    pub(crate) fn renotify_recv(&self) {
        if self.recv_ready() {
            self.recv_q.notify_one(|_| TOKEN_NORMAL);
        }
    }

    /// Passes on a send notification that its recipient did not use.
    pub(crate) fn renotify_send(&self) {
        if self.send_ready() {
            if self.cap == Some(0) {
                self.wake_one_selector(&self.send_q);
            } else {
                self.send_q.notify_one(|_| TOKEN_NORMAL);
            }
        }
    }

    /// Links a `select!` node on one of the queues if the operation is not ready.
    ///
    /// # Safety
    /// As [`WaitQueue::enqueue`].
    pub(crate) unsafe fn register(&self, node: std::pin::Pin<&Node>, is_send: bool) -> bool {
        if is_send {
            // SAFETY: forwarded to the caller.
            unsafe { self.send_q.enqueue(node, || !self.send_ready()) }
        } else {
            // SAFETY: forwarded to the caller.
            unsafe { self.recv_q.enqueue(node, || !self.recv_ready()) }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.cap
    }

    pub(crate) fn add_sender(&self) {
        self.state.lock().senders += 1;
    }

    pub(crate) fn add_receiver(&self) {
        self.state.lock().receivers += 1;
    }

    pub(crate) fn drop_sender(&self) {
        let mut s = self.state.lock();
        s.senders -= 1;
        let last = s.senders == 0;
        drop(s);
        if last {
            self.recv_q.notify_all(TOKEN_NORMAL);
        }
    }

    pub(crate) fn drop_receiver(&self) {
        let mut s = self.state.lock();
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
        drop(s);
        // Messages nobody can receive any more are dropped now, outside the lock.
        drop(buf);
        self.send_q.notify_all(TOKEN_NORMAL);
    }

    pub(crate) fn is_disconnected_for_sender(&self) -> bool {
        self.state.lock().receivers == 0
    }
}
