//! `std::sync::mpsc`, method for method, parking fibers (or threads) instead of blocking carriers.
//!
//! A thin layer over the [`mpmc`] channel core (std itself builds its `mpsc` on an
//! mpmc core): `channel()` is unbounded, `sync_channel(n)` is bounded (`0` = rendezvous), the
//! `Receiver` is not `Clone` and not `Sync`, as in std. The error types are std's own, the
//! iterators `mpmc`'s.
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::mpmc;
// The iterators are `mpmc`'s, over the `mpmc` receiver inside `Receiver`. Unlike std's they are
// `Send` (`Iter`, `TryIter`) and `Sync` (`IntoIter`): receiving from several threads is sound.
pub use super::mpmc::{IntoIter, Iter, TryIter};
pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

/// An unbounded channel: `send` never parks.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpmc::unbounded();
    (
        Sender { inner: tx },
        Receiver {
            inner: rx,
            _not_sync: PhantomData,
        },
    )
}

/// A bounded channel holding at most `bound` messages; `0` makes each send wait for a receiver.
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let (tx, rx) = mpmc::bounded(bound);
    (
        SyncSender { inner: tx },
        Receiver {
            inner: rx,
            _not_sync: PhantomData,
        },
    )
}

/// The sending half of [`channel`].
pub struct Sender<T> {
    pub(crate) inner: mpmc::Sender<T>,
}

/// The sending half of [`sync_channel`].
pub struct SyncSender<T> {
    pub(crate) inner: mpmc::Sender<T>,
}

/// The receiving half of either channel kind.
pub struct Receiver<T> {
    pub(crate) inner: mpmc::Receiver<T>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<T> Sender<T> {
    /// Sends without parking; fails (returning the message) if the receiver is gone.
    #[track_caller]
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.inner.send(t)
    }
}

impl<T> SyncSender<T> {
    /// Sends, parking while the buffer is full; fails if the receiver is gone.
    #[track_caller]
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.inner.send(t)
    }

    /// Sends without parking.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.inner.try_send(t)
    }
}

impl<T> Receiver<T> {
    /// Receives, parking while empty; `Err` once empty and every sender is gone.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.inner.recv()
    }

    /// Receives without parking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.try_recv()
    }

    /// Receives, parking at most `timeout`.
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.inner.recv_timeout(timeout)
    }

    /// Receives, parking until `deadline` at most.
    #[track_caller]
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.inner.recv_deadline(deadline)
    }

    /// A blocking iterator that ends when every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        self.inner.iter()
    }

    /// A non-blocking iterator over the messages available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        self.inner.try_iter()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        SyncSender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
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
        self.inner.into_iter()
    }
}
