//! The reactors: one `mio::Poll` per worker (see docs/decisions/0003-per-worker-reactors.md).
//!
//! There is no reactor thread. A worker polls its own reactor: without blocking every few dozen
//! scheduling ticks while busy and before each yield of its idle search, and blocking in
//! `epoll_wait` (until its next timer deadline) when it goes to sleep. Whoever has work for a
//! sleeping worker writes that worker's `mio::Waker`. Fibers never migrate, so the worker that
//! polls is the one that runs the fibers the events wake.
//!
//! Contract with the I/O layer: `current_handle()` gives the registry of the caller's worker
//! (`None` on a plain OS thread); handles of one runtime share a runtime id; every event except
//! the waker's is passed to `io::dispatch`, which unparks the waiting fibers.
pub(crate) mod io;
pub(crate) mod timer;
pub(crate) mod wait;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

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

/// The reactor of the worker the caller runs on, if any.
pub(crate) fn current_handle() -> Option<Arc<Handle>> {
    crate::scheduler::context::with_worker(|w| w.driver().handle.clone())
}

pub(crate) struct PollTurn {
    poll: mio::Poll,
    events: mio::Events,
}

pub(crate) struct Driver {
    turn: Mutex<PollTurn>,
    waker: mio::Waker,
    pub(crate) handle: Arc<Handle>,
}

impl Driver {
    pub(crate) fn new(runtime: u64) -> std::io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let handle = Arc::new(Handle {
            registry: poll.registry().try_clone()?,
            sources: AtomicUsize::new(0),
            runtime,
        });
        Ok(Driver {
            turn: Mutex::new(PollTurn {
                poll,
                events: mio::Events::with_capacity(1024),
            }),
            waker,
            handle,
        })
    }

    /// True if any I/O source is registered (worth a non-blocking poll while busy).
    pub(crate) fn has_sources(&self) -> bool {
        self.handle.sources.load(Ordering::Relaxed) != 0
    }

    /// Lends the poll to its worker. Only the owning worker polls, so this fails only if the
    /// worker is already inside `poll` (it is not reentrant).
    pub(crate) fn try_turn(&self) -> Option<MutexGuard<'_, PollTurn>> {
        self.turn.try_lock()
    }

    /// Polls for readiness, blocking at most `timeout` (`None`: until woken), and dispatches the
    /// events. Returns the number of I/O events dispatched.
    pub(crate) fn poll(&self, turn: &mut PollTurn, timeout: Option<Duration>) -> usize {
        let PollTurn { poll, events } = turn;
        if let Err(err) = poll.poll(events, timeout) {
            if err.kind() != std::io::ErrorKind::Interrupted {
                // epoll_wait fails only on programming errors (EBADF, EFAULT, EINVAL).
                panic!("fiber: polling the reactor failed: {err}");
            }
            return 0;
        }
        let mut n = 0;
        for event in events.iter() {
            if event.token() != WAKER_TOKEN {
                dispatch(event);
                n += 1;
            }
        }
        n
    }

    /// Interrupts the worker blocked in `poll`, if any.
    pub(crate) fn wake(&self) {
        // Failure means the eventfd counter is saturated: the poller is being woken anyway.
        let _ = self.waker.wake();
    }
}

/// Hands one readiness event to the I/O layer.
fn dispatch(event: &mio::event::Event) {
    io::dispatch(event)
}
