//! Support code for [`crate::select!`]: waiting on several channel operations at once.
//!
//! The macro first tries every arm once, starting at a random arm (so that no ready arm is
//! systematically preferred: select fairness). If none is ready it calls [`__select_wait`], which
//! links one wait-queue node per arm (a boxed slice that does not move until every node is
//! unlinked again), parks until any node is notified or the deadline passes, unlinks all nodes and
//! reports which arms were notified. The macro then tries again. When an arm completes, notified
//! arms that were *not* used pass their notification on ([`__select_finish`]), so a message that
//! woke this selector is not stranded while another receiver sleeps.
use std::cell::Cell;
use std::pin::Pin;
use std::sync::mpsc::{TryRecvError, TrySendError};
use std::time::Instant;

use super::chan::{Chan, SELECT_KEY};
use crate::sync::waitq::Node;

/// The channel side of one `select!` arm, type-erased.
pub(crate) trait SelectChan {
    /// # Safety
    /// As [`crate::sync::waitq::WaitQueue::enqueue`].
    unsafe fn register(&self, node: Pin<&Node>, is_send: bool) -> bool;
    /// # Safety
    /// `node` must have been registered on this channel with the same `is_send`.
    unsafe fn unregister(&self, node: Pin<&Node>, is_send: bool) -> Option<usize>;
    fn renotify(&self, is_send: bool);
}

impl<T> SelectChan for Chan<T> {
    unsafe fn register(&self, node: Pin<&Node>, is_send: bool) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe { Chan::register(self, node, is_send) }
    }

    unsafe fn unregister(&self, node: Pin<&Node>, is_send: bool) -> Option<usize> {
        // SAFETY: forwarded to the caller.
        unsafe { Chan::unregister(self, node, is_send) }
    }

    fn renotify(&self, is_send: bool) {
        Chan::renotify(self, is_send)
    }
}

/// One arm of a `select!`: a channel end and the direction. Built by the macro.
#[doc(hidden)]
pub struct SelectArm<'a> {
    chan: &'a dyn SelectChan,
    is_send: bool,
}

/// Implemented by every receiving end usable in `select!` (hidden; used by the macro).
#[doc(hidden)]
pub trait __RecvEnd {
    /// The message type.
    type Item;
    /// `try_recv`.
    fn __try_recv(&self) -> Result<Self::Item, TryRecvError>;
    /// The arm descriptor.
    fn __arm(&self) -> SelectArm<'_>;
}

/// Implemented by every sending end usable in `select!` (hidden; used by the macro).
#[doc(hidden)]
pub trait __SendEnd {
    /// The message type.
    type Item;
    /// `try_send`.
    fn __try_send(&self, msg: Self::Item) -> Result<(), TrySendError<Self::Item>>;
    /// The arm descriptor.
    fn __arm(&self) -> SelectArm<'_>;
}

impl<T> __RecvEnd for super::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }
    fn __arm(&self) -> SelectArm<'_> {
        SelectArm {
            chan: &*self.chan,
            is_send: false,
        }
    }
}

impl<T> __SendEnd for super::Sender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(msg)
    }
    fn __arm(&self) -> SelectArm<'_> {
        SelectArm {
            chan: &*self.chan,
            is_send: true,
        }
    }
}

impl<T> __RecvEnd for crate::sync::mpsc::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.chan.try_recv()
    }
    fn __arm(&self) -> SelectArm<'_> {
        SelectArm {
            chan: &*self.inner.chan,
            is_send: false,
        }
    }
}

impl<T> __SendEnd for crate::sync::mpsc::Sender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.inner.chan.try_send(msg)
    }
    fn __arm(&self) -> SelectArm<'_> {
        SelectArm {
            chan: &*self.inner.chan,
            is_send: true,
        }
    }
}

impl<T> __SendEnd for crate::sync::mpsc::SyncSender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.inner.chan.try_send(msg)
    }
    fn __arm(&self) -> SelectArm<'_> {
        SelectArm {
            chan: &*self.inner.chan,
            is_send: true,
        }
    }
}

impl<R: __RecvEnd + ?Sized> __RecvEnd for &R {
    type Item = R::Item;
    fn __try_recv(&self) -> Result<R::Item, TryRecvError> {
        (**self).__try_recv()
    }
    fn __arm(&self) -> SelectArm<'_> {
        (**self).__arm()
    }
}

impl<S: __SendEnd + ?Sized> __SendEnd for &S {
    type Item = S::Item;
    fn __try_send(&self, msg: S::Item) -> Result<(), TrySendError<S::Item>> {
        (**self).__try_send(msg)
    }
    fn __arm(&self) -> SelectArm<'_> {
        (**self).__arm()
    }
}

thread_local! {
    static SEED: Cell<u32> = const { Cell::new(0) };
}

/// A pseudo-random start arm in `0..n` (hidden; used by the macro).
#[doc(hidden)]
pub fn __select_start(n: usize) -> usize {
    crate::scheduler::coop::spend();
    assert!(
        (1..=64).contains(&n),
        "select! supports 1 to 64 channel arms"
    );
    let x = SEED.with(|s| {
        let mut x = s.get();
        if x == 0 {
            // Seed from the address of a stack local: differs per thread and call site.
            x = (&x as *const u32 as usize as u32) | 1;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        x
    });
    x as usize % n
}

/// Unlinks every registered node, also when unwinding.
struct Registered<'a, 'b> {
    arms: &'a [SelectArm<'b>],
    nodes: &'a [Node],
    count: usize,
    notified: u64,
}

impl Registered<'_, '_> {
    fn unregister_all(&mut self) {
        for i in 0..self.count {
            // SAFETY: `nodes` is a boxed slice owned by `__select_wait`'s frame that is neither moved
            // nor dropped before this guard, and node `i` was registered on arm `i`.
            let node = unsafe { Pin::new_unchecked(&self.nodes[i]) };
            let arm = &self.arms[i];
            // SAFETY: registered on this arm's channel and direction.
            if unsafe { arm.chan.unregister(node, arm.is_send) }.is_some() {
                self.notified |= 1 << i;
            }
        }
        self.count = 0;
    }
}

impl Drop for Registered<'_, '_> {
    fn drop(&mut self) {
        self.unregister_all();
    }
}

/// Parks until one of `arms` may be ready or `deadline` passes (hidden; used by the macro).
/// Returns `None` on time-out, else a bit mask of the arms that were notified.
#[doc(hidden)]
pub fn __select_wait(arms: &[SelectArm<'_>], deadline: Option<Instant>) -> Option<u64> {
    let nodes: Box<[Node]> = (0..arms.len()).map(|i| Node::new(SELECT_KEY | i)).collect();
    let mut reg = Registered {
        arms,
        nodes: &nodes,
        count: 0,
        notified: 0,
    };
    let mut ready = false;
    for (i, arm) in arms.iter().enumerate() {
        // SAFETY: the node lives in `nodes` (a boxed slice that is not moved or dropped until
        // `reg` has unlinked it) and `reg.count` is bumped so that `reg` unlinks it.
        let linked = unsafe {
            arm.chan
                .register(Pin::new_unchecked(&nodes[i]), arm.is_send)
        };
        if !linked {
            ready = true;
            break;
        }
        reg.count += 1;
    }
    let mut timed_out = false;
    if !ready {
        loop {
            if nodes.iter().any(|n| n.token().is_some()) {
                break;
            }
            match deadline {
                None => crate::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        timed_out = true;
                        break;
                    }
                    crate::park_timeout(d - now);
                }
            }
        }
    }
    reg.unregister_all();
    let notified = reg.notified;
    drop(reg);
    if timed_out && notified == 0 {
        None
    } else {
        Some(notified)
    }
}

/// Passes on notifications of arms other than `done` (hidden; used by the macro).
#[doc(hidden)]
pub fn __select_finish(arms: &[SelectArm<'_>], notified: u64, done: usize) {
    for (i, arm) in arms.iter().enumerate() {
        if i != done && notified & (1 << i) != 0 {
            arm.chan.renotify(arm.is_send);
        }
    }
}
