//! Support code for [`crate::select!`]: waiting on several channel operations at once.
//!
//! The macro first tries every arm once, starting at a random arm (so that no ready arm is
//! systematically preferred: select fairness). If none is ready it calls [`__select_wait`], which
//! links one [`SelectNode`] per arm (a boxed slice that does not move until every node is
//! unlinked again), all pointing at one [`SelectCell`], parks until any node is notified or the
//! deadline passes, closes the cell, unlinks all nodes and reports what happened:
//! - *claimed*: a zero-capacity partner completed one arm directly (moved the message into or
//!   out of the arm's [`Packet`]) after winning the cell; the macro completes exactly that arm;
//! - *retry*: some arms were notified (hints: a message or room may be there, or a channel
//!   disconnected), or an arm was ready when it was registered; the macro tries its arms again;
//! - *timed out*.
//!
//! When an arm completes, notified arms that were *not* used pass their notification on
//! ([`__select_finish`]), so a message that woke this selector is not stranded while another
//! receiver sleeps. If the selector is unwound (runtime shutdown) while it waits, the guard does
//! the same, and a message a partner had already put into a recv arm's packet goes back to its
//! channel (see `chan`'s "Messages nobody received").
use std::pin::Pin;
use std::sync::mpsc::{TryRecvError, TrySendError};
use std::time::Instant;

use super::chan::{Chan, Packet, SelectCell, SelectNode, TOKEN_VALUE};
use crate::driver::wait::park_while_not;
use crate::util::rng::FastRng;

/// The channel side of one `select!` arm, type-erased.
pub(crate) trait SelectChan {
    /// # Safety
    /// As [`Chan::register`]; `node`'s packet must be a `Packet` of this channel's message type.
    unsafe fn register(&self, node: Pin<&SelectNode>, is_send: bool) -> bool;
    /// # Safety
    /// `node` must have been registered on this channel with the same `is_send`.
    unsafe fn unregister(&self, node: Pin<&SelectNode>, is_send: bool) -> Option<usize>;
    fn renotify(&self, is_send: bool);
    /// # Safety
    /// `packet` must be a `Packet` of this channel's message type that nobody else touches.
    unsafe fn restore_packet(&self, packet: *const ());
}

impl<T> SelectChan for Chan<T> {
    unsafe fn register(&self, node: Pin<&SelectNode>, is_send: bool) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe { Chan::register(self, node, is_send) }
    }

    unsafe fn unregister(&self, node: Pin<&SelectNode>, is_send: bool) -> Option<usize> {
        // SAFETY: forwarded to the caller.
        unsafe { Chan::unregister(self, node, is_send) }
    }

    fn renotify(&self, is_send: bool) {
        Chan::renotify(self, is_send)
    }

    unsafe fn restore_packet(&self, packet: *const ()) {
        Chan::restore_packet(self, packet)
    }
}

/// One arm of a `select!`: a channel end, the direction and the arm's packet. Built by the macro.
#[doc(hidden)]
pub struct SelectArm<'a> {
    chan: &'a dyn SelectChan,
    is_send: bool,
    /// A `Packet<T>` of the channel's `T`, borrowed for `'a`.
    packet: *const (),
}

/// Implemented by every receiving end usable in `select!` (hidden; used by the macro).
#[doc(hidden)]
pub trait __RecvEnd {
    /// The message type.
    type Item;
    /// `try_recv`.
    fn __try_recv(&self) -> Result<Self::Item, TryRecvError>;
    /// The arm descriptor; `packet` receives a message a zero-capacity sender hands over.
    fn __arm<'a>(&'a self, packet: &'a Packet<Self::Item>) -> SelectArm<'a>;
}

/// Implemented by every sending end usable in `select!` (hidden; used by the macro).
#[doc(hidden)]
pub trait __SendEnd {
    /// The message type.
    type Item;
    /// `try_send`.
    fn __try_send(&self, msg: Self::Item) -> Result<(), TrySendError<Self::Item>>;
    /// The arm descriptor; `packet` holds the message (a zero-capacity receiver may take it).
    fn __arm<'a>(&'a self, packet: &'a Packet<Self::Item>) -> SelectArm<'a>;
}

impl<T> __RecvEnd for super::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<T>) -> SelectArm<'a> {
        SelectArm {
            chan: &*self.chan,
            is_send: false,
            packet: (packet as *const Packet<T>).cast(),
        }
    }
}

impl<T> __SendEnd for super::Sender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(msg)
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<T>) -> SelectArm<'a> {
        SelectArm {
            chan: &*self.chan,
            is_send: true,
            packet: (packet as *const Packet<T>).cast(),
        }
    }
}

// The `mpsc` ends take part through the `mpmc` ends they wrap.
impl<T> __RecvEnd for crate::sync::mpsc::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.__try_recv()
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<T>) -> SelectArm<'a> {
        self.inner.__arm(packet)
    }
}

impl<T> __SendEnd for crate::sync::mpsc::Sender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.inner.__try_send(msg)
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<T>) -> SelectArm<'a> {
        self.inner.__arm(packet)
    }
}

impl<T> __SendEnd for crate::sync::mpsc::SyncSender<T> {
    type Item = T;
    fn __try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.inner.__try_send(msg)
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<T>) -> SelectArm<'a> {
        self.inner.__arm(packet)
    }
}

impl<R: __RecvEnd + ?Sized> __RecvEnd for &R {
    type Item = R::Item;
    fn __try_recv(&self) -> Result<R::Item, TryRecvError> {
        (**self).__try_recv()
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<Self::Item>) -> SelectArm<'a> {
        (**self).__arm(packet)
    }
}

impl<S: __SendEnd + ?Sized> __SendEnd for &S {
    type Item = S::Item;
    fn __try_send(&self, msg: S::Item) -> Result<(), TrySendError<S::Item>> {
        (**self).__try_send(msg)
    }
    fn __arm<'a>(&'a self, packet: &'a Packet<Self::Item>) -> SelectArm<'a> {
        (**self).__arm(packet)
    }
}

thread_local! {
    /// Seeded from the address of a stack local at first use: differs per thread.
    static RNG: FastRng = {
        let probe = 0u8;
        FastRng::new(&probe as *const u8 as u64)
    };
}

/// A pseudo-random start arm in `0..n` (hidden; used by the macro).
#[doc(hidden)]
pub fn __select_start(n: usize) -> usize {
    crate::task::coop::spend();
    assert!(
        (1..=64).contains(&n),
        "select! supports 1 to 64 channel arms"
    );
    RNG.with(|rng| rng.below(n))
}

/// What [`__select_wait`] found (hidden; used by the macro).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct __SelectWait {
    /// A zero-capacity partner completed this arm: its packet holds the received message (recv)
    /// or has been emptied (send). The macro must complete exactly this arm.
    pub claimed: Option<usize>,
    /// Bit mask of the arms that were notified (hints to pass on if not used).
    pub notified: u64,
    /// The deadline passed and nothing was notified.
    pub timed_out: bool,
}

/// Unlinks every registered node, also when unwinding; see the module docs.
struct Registered<'a, 'b> {
    arms: &'a [SelectArm<'b>],
    nodes: &'a [SelectNode],
    cell: &'a SelectCell,
    count: usize,
    notified: u64,
}

impl Registered<'_, '_> {
    fn unregister_all(&mut self) {
        for i in 0..self.count {
            // SAFETY: `nodes` is a boxed slice owned by `__select_wait`'s frame that is neither
            // moved nor dropped before this guard, and node `i` was registered on arm `i`.
            let node = unsafe { Pin::new_unchecked(&self.nodes[i]) };
            let arm = &self.arms[i];
            // SAFETY: registered on this arm's channel and direction.
            match unsafe { arm.chan.unregister(node, arm.is_send) } {
                // A claim's token: reported through the cell.
                Some(TOKEN_VALUE) => {}
                Some(_) => self.notified |= 1 << i,
                None => {}
            }
        }
        self.count = 0;
    }
}

impl Drop for Registered<'_, '_> {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        // Unwinding out of the park (runtime shutdown): nobody may claim us any more, and what
        // we were given must not be lost.
        self.cell.close();
        self.unregister_all();
        if let Some(k) = self.cell.claimed() {
            let arm = &self.arms[k];
            if !arm.is_send {
                // SAFETY: every node is unlinked, so nobody else touches the packet, which is a
                // `Packet` of this arm's channel's type (`__arm`).
                unsafe { arm.chan.restore_packet(arm.packet) };
            }
        }
        __select_finish(self.arms, self.notified, usize::MAX);
    }
}

/// Parks until one of `arms` may be ready, one is completed by a partner, or `deadline` passes
/// (hidden; used by the macro).
#[doc(hidden)]
pub fn __select_wait(arms: &[SelectArm<'_>], deadline: Option<Instant>) -> __SelectWait {
    let _wait = crate::task::reason::enter_site(
        crate::task::reason::word(crate::task::reason::kind::SELECT, 0),
        0,
    );
    let cell = SelectCell::new();
    let nodes: Box<[SelectNode]> = arms
        .iter()
        .enumerate()
        .map(|(i, arm)| SelectNode::new(i, &cell, arm.packet))
        .collect();
    let mut reg = Registered {
        arms,
        nodes: &nodes,
        cell: &cell,
        count: 0,
        notified: 0,
    };
    let mut ready = false;
    for (i, arm) in arms.iter().enumerate() {
        // SAFETY: the node lives in `nodes`, a boxed slice that is not moved or dropped until
        // `reg` has unlinked it.
        let node = unsafe { Pin::new_unchecked(&nodes[i]) };
        // SAFETY: the node stays in place (above), the cell outlives `reg`, the packet is
        // borrowed by `arms`, of the arm's channel's type (`__arm`); `reg.count` is bumped so
        // that `reg` unlinks it.
        let linked = unsafe { arm.chan.register(node, arm.is_send) };
        if !linked {
            ready = true;
            break;
        }
        reg.count += 1;
    }
    let timed_out =
        !ready && !park_while_not(|| nodes.iter().any(|n| n.node.token().is_some()), deadline);
    // From here on nobody can claim this wait; a claim that won before is completed by the time
    // `unregister_all` has taken each channel's lock.
    let claimed = cell.close();
    reg.unregister_all();
    let notified = reg.notified;
    drop(reg);
    __SelectWait {
        claimed,
        notified,
        timed_out: timed_out && claimed.is_none() && notified == 0,
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
