//! Multi-producer, multi-consumer channels whose receivers can be cloned, plus [`select!`].
//!
//! [`bounded`] (capacity `0` is a rendezvous channel) and [`unbounded`] return a `(Sender,
//! Receiver)` pair; both ends are `Clone + Send + Sync`. Each message is received exactly once, by
//! one of the receivers. The error types are std's (`std::sync::mpsc::{SendError, TrySendError,
//! RecvError, TryRecvError, RecvTimeoutError}`), plus [`SendTimeoutError`].
//!
//! [`select!`]: crate::select!
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod chan;
mod macros;
mod select;

#[doc(hidden)]
pub use chan::Packet as __Packet;
use chan::{Chan, SendFail};
#[doc(hidden)]
pub use select::{
    __RecvEnd, __SelectWait, __SendEnd, __select_finish, __select_start, __select_wait, SelectArm,
};
pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

/// Error of [`Sender::send_timeout`]: the message comes back in either case.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The channel stayed full until the time-out.
    Timeout(T),
    /// All receivers are gone.
    Disconnected(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(t) | SendTimeoutError::Disconnected(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}

/// A channel holding at most `cap` messages; `cap == 0` makes every send wait for a receiver.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(cap)));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// A channel without a capacity limit: `send` never waits.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving half; clone it for more consumers.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends, parking while the channel is full. Fails (returning the message) once every
    /// receiver is gone.
    #[track_caller]
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        crate::task::coop::spend();
        self.chan.send(msg, None).map_err(|e| match e {
            SendFail::Disconnected(t) | SendFail::Timeout(t) => SendError(t),
        })
    }

    /// Sends without waiting.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        crate::task::coop::spend();
        self.chan.try_send(msg)
    }

    /// Sends, parking at most `timeout` while the channel is full.
    #[track_caller]
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(msg, Instant::now().checked_add(timeout))
    }

    #[track_caller]
    fn send_deadline(&self, msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        crate::task::coop::spend();
        self.chan.send(msg, deadline).map_err(|e| match e {
            SendFail::Disconnected(t) => SendTimeoutError::Disconnected(t),
            SendFail::Timeout(t) => SendTimeoutError::Timeout(t),
        })
    }

    /// Messages currently buffered.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (`None` for unbounded channels).
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.chan.is_disconnected_for_sender()
    }
}

impl<T> Receiver<T> {
    /// Receives, parking while the channel is empty; `Err` once it is empty and every sender is
    /// gone.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        crate::task::coop::spend();
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        crate::task::coop::spend();
        self.chan.try_recv()
    }

    /// Receives, parking at most `timeout`.
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        crate::task::coop::spend();
        self.chan.recv(Instant::now().checked_add(timeout))
    }

    /// Receives, parking until `deadline` at most.
    #[track_caller]
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        crate::task::coop::spend();
        self.chan.recv(Some(deadline))
    }

    /// A blocking iterator that ends when the channel is disconnected.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator over the messages available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Messages currently buffered.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (`None` for unbounded channels).
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.add_receiver();
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Blocking iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Non-blocking iterator of [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Owning blocking iterator of `Receiver::into_iter`.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
