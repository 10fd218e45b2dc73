//! One registered fd's readiness: the readiness word (bits + tick, see the module docs of
//! `driver::io`) and the fibers waiting for it, queued on the crate's one intrusive wait list.
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::driver::wait::park_node;
use crate::task::wait::{Node, WaitList, WaitResult, TOKEN_NORMAL};

/// Readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(pub(super) usize);

impl Interest {
    /// Readable (also: read side closed, error).
    pub(crate) const READ: Interest = Interest(READABLE | READ_CLOSED);
    /// Writable (also: write side closed, error).
    pub(crate) const WRITE: Interest = Interest(WRITABLE);

    /// Either of `self` and `other`.
    #[cfg(fiber_hook)]
    pub(crate) const fn or(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

pub(super) const READABLE: usize = 0b001;
pub(super) const WRITABLE: usize = 0b010;
/// The read side is closed (or the socket failed). Kept apart from `READABLE` because a short read
/// clears only `READABLE`: an end of stream queued behind the last bytes gets no edge of its own,
/// so it must stay visible to the next read.
pub(super) const READ_CLOSED: usize = 0b100;
const READY_MASK: usize = READABLE | WRITABLE | READ_CLOSED;
/// One tick in the readiness word; the tick occupies the bits above the readiness bits and wraps.
const TICK: usize = 0b1000;

/// Readiness state of one registered fd.
pub(super) struct Slot {
    /// Generation of the current owner (31 bits). Bumped when the slot is freed.
    pub(super) generation: AtomicU32,
    /// Readiness bits (`READY_MASK`) plus a wrapping tick (the bits above).
    readiness: AtomicUsize,
    /// Fibers parked until this fd becomes ready; a node's key is the interest it waits for.
    waiters: Mutex<WaitList>,
}

impl Slot {
    pub(super) fn new() -> Slot {
        Slot {
            generation: AtomicU32::new(0),
            readiness: AtomicUsize::new(0),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// The readiness word, to pass back to [`clear`](Self::clear) after a try.
    #[inline]
    pub(super) fn snapshot(&self) -> usize {
        self.readiness.load(Ordering::Acquire)
    }

    /// Forgets all readiness (a fresh or a freed slot). Nobody may be waiting.
    pub(super) fn reset(&self) {
        debug_assert!(self.waiters.lock().is_empty(), "a freed slot has waiters");
        self.readiness.store(0, Ordering::Release);
    }

    /// Records `ready`, bumps the tick, and wakes the waiters it satisfies.
    ///
    /// The bits are set *under the waiter lock*: so every waiter this call wakes queued before
    /// these bits were set (it checked them under the same lock). Setting them before taking the
    /// lock would let a waiter that already consumed this readiness, and queued again, be woken
    /// by this call and never by the next one.
    pub(super) fn set_ready(&self, ready: usize) {
        let mut waiters = self.waiters.lock();
        // Cannot fail: the closure always returns `Some`.
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.wrapping_add(TICK) | ready)
            });
        waiters.wake_matching(TOKEN_NORMAL, |interest| interest & ready != 0, |w| w.wake());
    }

    /// Clears `interest` unless a dispatch happened since `snapshot` was loaded.
    pub(super) fn clear(&self, snapshot: usize, interest: Interest) {
        let interest = interest.0;
        let mut cur = self.readiness.load(Ordering::Acquire);
        while cur & !READY_MASK == snapshot & !READY_MASK && cur & interest != 0 {
            match self.readiness.compare_exchange_weak(
                cur,
                cur & !interest,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// After a short read from a stream (fewer bytes than asked: the receive queue was empty),
    /// clears `READABLE` unless a dispatch happened since `snapshot` or the read side is closed.
    /// Bytes that arrive after the read's copy raise a new edge, so the next read may wait for
    /// that instead of making a `recv` that can only say `WouldBlock`.
    pub(super) fn clear_after_short_read(&self, snapshot: usize) {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & !READY_MASK == snapshot & !READY_MASK && cur & READ_CLOSED == 0 {
            // A failed exchange means the word changed (a dispatch, or another reader's clear):
            // keep the bits, at worst one `recv` says `WouldBlock`.
            let _ = self.readiness.compare_exchange(
                cur,
                cur & !READABLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    #[inline]
    pub(super) fn is_ready(&self, interest: Interest) -> bool {
        self.readiness.load(Ordering::Acquire) & interest.0 != 0
    }

    /// Parks the caller until `interest` is ready (`true`) or `deadline` passes (`false`).
    ///
    /// The bits are re-checked under the waiter lock before queueing (dispatch sets them while
    /// holding it), so a readiness that arrives meanwhile is never missed. A waiter woken without
    /// readiness (another reader of the same socket consumed it first) queues again.
    pub(super) fn wait(&self, interest: Interest, deadline: Option<Instant>) -> bool {
        if self.is_ready(interest) {
            return true;
        }
        let node = pin!(Node::new(interest.0));
        loop {
            {
                let mut waiters = self.waiters.lock();
                if self.is_ready(interest) {
                    return true;
                }
                // SAFETY: the node is not linked (fresh, or unlinked by the notifier that woke
                // it), and `Queued` keeps this frame from being left while it is linked: it
                // returns only once the node is notified or removed, and unlinks it on unwinding.
                unsafe { waiters.push(node.as_ref()) };
            }
            let queued = Queued {
                slot: self,
                node: node.as_ref(),
            };
            let result = park_node(&node, deadline, || queued.remove());
            match result {
                WaitResult::TimedOut => return self.is_ready(interest),
                // Bits set after we queued were set by the dispatch that woke us.
                WaitResult::Notified(_) if self.is_ready(interest) => return true,
                WaitResult::Notified(_) | WaitResult::Invalid => {}
            }
        }
    }
}

/// A node queued on a slot. Unlinks it if the waiting fiber unwinds while parked (a runtime that
/// shuts down cancels its parked fibers). A readiness token it may have been handed is dropped:
/// dispatch wakes every waiter the readiness satisfies and the bits stay set, so nobody else
/// depended on it.
struct Queued<'a> {
    slot: &'a Slot,
    node: Pin<&'a Node>,
}

impl Queued<'_> {
    /// Unlinks the node if it is still queued: true if it was (nobody notified it).
    fn remove(&self) -> bool {
        // SAFETY: the node was pushed onto this slot's list.
        unsafe { self.slot.waiters.lock().remove(self.node) }.is_none()
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if crate::task::context::panicking() {
            self.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn queued(slot: &Slot) -> usize {
        slot.waiters.lock().len()
    }

    #[test]
    fn clear_respects_tick() {
        let slot = Slot::new();
        slot.set_ready(READABLE);
        let snap = slot.snapshot();
        slot.set_ready(READABLE); // an event between the syscall and the clear
        slot.clear(snap, Interest::READ);
        assert!(
            slot.is_ready(Interest::READ),
            "an event newer than the snapshot must survive"
        );
        let snap = slot.snapshot();
        slot.clear(snap, Interest::READ);
        assert!(!slot.is_ready(Interest::READ));
    }

    #[test]
    fn short_read_keeps_end_of_stream_visible() {
        let slot = Slot::new();
        slot.set_ready(READABLE | READ_CLOSED);
        slot.clear_after_short_read(slot.snapshot());
        assert!(slot.is_ready(Interest::READ), "EOF must stay visible");
        let slot = Slot::new();
        slot.set_ready(READABLE);
        slot.clear_after_short_read(slot.snapshot());
        assert!(!slot.is_ready(Interest::READ));
    }

    #[test]
    fn wait_times_out_and_removes_waiter() {
        let slot = Slot::new();
        let t0 = Instant::now();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(!slot.wait(Interest::READ, Some(deadline)));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(queued(&slot), 0);
    }

    #[test]
    fn set_ready_wakes_only_matching_waiters() {
        let slot: &'static Slot = Box::leak(Box::new(Slot::new()));
        let t = std::thread::spawn(move || slot.wait(Interest::WRITE, None));
        while queued(slot) == 0 {
            std::thread::yield_now();
        }
        slot.set_ready(READABLE);
        assert_eq!(queued(slot), 1, "READABLE must not wake a writer");
        slot.set_ready(WRITABLE);
        assert!(t.join().unwrap());
        assert_eq!(queued(slot), 0);
    }

    #[test]
    fn many_waiters_all_woken_by_one_edge() {
        let slot: &'static Slot = Box::leak(Box::new(Slot::new()));
        let ts: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || slot.wait(Interest::READ, None)))
            .collect();
        while queued(slot) < 8 {
            std::thread::yield_now();
        }
        slot.set_ready(READABLE);
        for t in ts {
            assert!(t.join().unwrap());
        }
    }
}
