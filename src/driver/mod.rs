//! The reactors: one `mio::Poll` per worker (see docs/decisions/0003-per-worker-reactors.md).
//!
//! There is no reactor thread. A worker polls its own reactor: without blocking every few dozen
//! scheduling ticks while busy and before each yield of its idle search, and blocking in
//! `epoll_wait` (until its next timer deadline) when it goes to sleep. Whoever has work for a
//! sleeping worker writes that worker's `mio::Waker`. Fibers never migrate, so the worker that
//! polls is the one that runs the fibers the events wake.
//!
//! A reactor has two halves: the [`Reactor`] that other threads may touch (the registry handle
//! and the waker; it lives in the scheduler's per-worker `Remote`) and the [`Poller`] that only
//! its worker touches (the `mio::Poll` and its event buffer; a field of the worker, no lock).
//!
//! Contract with the I/O layer: `context::with_current` gives the registry of the caller's worker
//! (`None` on a plain OS thread); handles of one runtime share a runtime id; every event except
//! the waker's is passed to `io::dispatch`, which unparks the waiting fibers.
pub(crate) mod context;
pub(crate) mod io;
pub(crate) mod timer;
pub(crate) mod wait;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Token reserved for the driver's own `mio::Waker`.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// Shared handle to one worker's reactor.
pub(crate) struct Handle {
    pub(crate) registry: mio::Registry,
    /// Registered I/O sources; while zero, the worker skips its non-blocking polls.
    pub(crate) sources: AtomicUsize,
    /// The runtime whose worker polls this reactor: every reactor of one runtime has the same id.
    pub(crate) runtime: u64,
}

impl Handle {
    /// Do `self` and `other` belong to the same runtime (so a fiber of one is woken by the other's
    /// dispatch)?
    pub(crate) fn same_runtime(&self, other: &Handle) -> bool {
        self.runtime == other.runtime
    }
}

/// A fresh runtime id for [`Handle::runtime`].
pub(crate) fn new_runtime_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The half of a worker's reactor that other threads use: its registry and its waker.
pub(crate) struct Reactor {
    waker: mio::Waker,
    pub(crate) handle: Arc<Handle>,
}

/// The half of a worker's reactor that only the worker touches: the poll and its events.
pub(crate) struct Poller {
    poll: mio::Poll,
    events: mio::Events,
}

/// Creates one worker's reactor, both halves.
pub(crate) fn new_reactor(runtime: u64) -> std::io::Result<(Reactor, Poller)> {
    let poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
    let handle = Arc::new(Handle {
        registry: poll.registry().try_clone()?,
        sources: AtomicUsize::new(0),
        runtime,
    });
    let poller = Poller {
        poll,
        events: mio::Events::with_capacity(1024),
    };
    Ok((Reactor { waker, handle }, poller))
}

impl Reactor {
    /// True if any I/O source is registered (worth a non-blocking poll while busy).
    pub(crate) fn has_sources(&self) -> bool {
        self.handle.sources.load(Ordering::Relaxed) != 0
    }

    /// Interrupts the worker blocked in `poll`, if any.
    pub(crate) fn wake(&self) {
        // Failure means the eventfd counter is saturated: the poller is being woken anyway.
        let _ = self.waker.wake();
    }
}

impl Poller {
    /// Polls for readiness, blocking at most `timeout` (`None`: until woken), and dispatches the
    /// events. Returns the number of I/O events dispatched.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) -> usize {
        if let Err(err) = self.poll.poll(&mut self.events, timeout) {
            if err.kind() != std::io::ErrorKind::Interrupted {
                // epoll_wait fails only on programming errors (EBADF, EFAULT, EINVAL).
                panic!("fiber: polling the reactor failed: {err}");
            }
            return 0;
        }
        let mut n = 0;
        for event in self.events.iter().filter(|e| e.token() != WAKER_TOKEN) {
            io::dispatch(event);
            n += 1;
        }
        n
    }
}
