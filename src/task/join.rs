//! The join slot: where a fiber's result waits for its `JoinHandle`.
//!
//! `Packet` holds the result and a one-word state. The fiber writes the result, then swaps in
//! `DONE`; a joiner that must wait first stores its `Fiber` handle, then swaps `RUNNING → WAITING`.
//! Whoever comes second sees the other's mark: the fiber unparks the joiner, or the joiner takes
//! the result without parking. No lock, no lost wake-up.
use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Result;

use super::Fiber;
use crate::scope::ScopeData;

const RUNNING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

pub(crate) struct Packet<T> {
    state: AtomicU8,
    /// Written once by the fiber before `DONE`; read by the joiner after seeing `DONE`.
    result: UnsafeCell<Option<Result<T>>>,
    /// Written by the joiner before `WAITING`; read by the fiber after seeing `WAITING`.
    waiter: UnsafeCell<Option<Fiber>>,
    /// The scope this fiber belongs to, told when the packet (and the result in it) is gone.
    scope: Option<Arc<ScopeData>>,
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        let unhandled_panic = matches!(self.result.get_mut(), Some(Err(_)));
        // The result may borrow from a scope's environment: drop it before telling the scope.
        *self.result.get_mut() = None;
        if let Some(scope) = self.scope.take() {
            scope.fiber_finished(unhandled_panic);
        }
    }
}

// SAFETY: `result` and `waiter` are each written by one side before a release swap of `state` and
// read by the other side only after an acquire of that state (see module docs); `T: Send` because
// the result crosses threads.
unsafe impl<T: Send> Sync for Packet<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Packet<T> {}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet {
            state: AtomicU8::new(RUNNING),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            scope,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Stores the result and wakes the joiner. Called once, by the fiber (or its drop guard).
    fn complete(&self, result: Result<T>) {
        // SAFETY: only the completing side writes `result`, once, before publishing DONE.
        unsafe { *self.result.get() = Some(result) };
        if self.state.swap(DONE, Ordering::AcqRel) == WAITING {
            // SAFETY: the joiner wrote `waiter` before its release swap to WAITING, which our
            // acquire swap observed; it does not touch `waiter` again.
            if let Some(waiter) = unsafe { (*self.waiter.get()).take() } {
                waiter.unpark();
            }
        }
    }

    /// Waits for the result and takes it. Called once, by the unique `JoinHandle`.
    pub(crate) fn wait(&self) -> Result<T> {
        if self.state.load(Ordering::Acquire) != DONE {
            // SAFETY: the completing side reads `waiter` only after seeing WAITING, which we have
            // not published yet.
            unsafe { *self.waiter.get() = Some(crate::current()) };
            if self
                .state
                .compare_exchange(RUNNING, WAITING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                while self.state.load(Ordering::Acquire) != DONE {
                    crate::park();
                }
            }
        }
        // SAFETY: DONE was observed with acquire ordering: the result is written and nobody else
        // touches it any more.
        unsafe { (*self.result.get()).take() }.expect("fiber result taken twice")
    }
}

/// Owns the completion of a packet: completes it with the fiber's result, or, if dropped without
/// one (the fiber never ran: runtime shut down, or no stack could be had), with an error.
pub(crate) struct Completion<T>(Option<Arc<Packet<T>>>);

impl<T> Completion<T> {
    pub(crate) fn new(packet: Arc<Packet<T>>) -> Completion<T> {
        Completion(Some(packet))
    }

    pub(crate) fn complete(mut self, result: Result<T>) {
        if let Some(packet) = self.0.take() {
            packet.complete(result);
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(packet) = self.0.take() {
            let msg: Box<dyn Any + Send> = Box::new(
                "the fiber never ran: its runtime shut down or no stack could be allocated",
            );
            packet.complete(Err(msg));
        }
    }
}

/// An owned permission to join a fiber (wait for it to finish and take its result), as
/// [`std::thread::JoinHandle`].
///
/// Dropping the handle detaches the fiber: it keeps running.
pub struct JoinHandle<T> {
    pub(crate) packet: Arc<Packet<T>>,
    pub(crate) fiber: Fiber,
}

impl<T> JoinHandle<T> {
    /// Waits for the fiber to finish and returns its result; a panic in the fiber comes back as
    /// `Err` with the panic payload. Inside a fiber this parks only the calling fiber.
    pub fn join(self) -> Result<T> {
        self.packet.wait()
    }

    /// True once the fiber's body has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.packet.is_done()
    }

    /// The handle of the fiber.
    pub fn fiber(&self) -> &Fiber {
        &self.fiber
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("fiber", &self.fiber)
            .finish_non_exhaustive()
    }
}
