//! The reactor: one `mio::Poll` per runtime, polled by whichever worker runs out of work.
//!
//! There is no reactor thread. An idle worker takes the *poll turn* (a `try_lock`) and blocks in
//! `epoll_wait` until its next timer deadline; a worker that finds the turn taken sleeps on its own
//! thread parker instead. Anyone who needs the poller awake (work for it, shutdown) writes the
//! `mio::Waker`. Busy workers also poll without blocking every few dozen scheduling ticks, so I/O
//! readiness is noticed while all workers are busy.
//!
//! Contract with the I/O layer: `current_handle()` gives the registry of the runtime the caller
//! runs on (`None` on a plain OS thread); every event except the waker's is passed to
//! `io::dispatch`, which unparks the waiting fibers.
pub(crate) mod io;
pub(crate) mod timer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

/// Token reserved for the driver's own `mio::Waker`.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// Shared handle to one runtime's reactor.
pub(crate) struct Handle {
    pub(crate) registry: mio::Registry,
    /// Registered I/O sources; while zero, busy workers skip their non-blocking polls.
    pub(crate) sources: AtomicUsize,
}

/// The reactor of the runtime the caller runs on, if any.
pub(crate) fn current_handle() -> Option<Arc<Handle>> {
    crate::scheduler::context::with_worker(|w| w.shared().driver.handle.clone())
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
    pub(crate) fn new() -> std::io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let handle = Arc::new(Handle {
            registry: poll.registry().try_clone()?,
            sources: AtomicUsize::new(0),
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

    /// Takes the poll turn if nobody has it.
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
