//! The reactor. TEMPORARY skeleton of the interface the I/O layer builds on.
//!
//! Contract (kept by the core runtime when it lands):
//! - `current_handle()` returns the reactor of the runtime whose worker calls it, `None` on a plain
//!   OS thread (then I/O waits with poll(2) on the fd instead).
//! - Whichever worker runs out of work polls the `mio::Poll`; for every event whose token is not
//!   `WAKER_TOKEN` it calls `io::dispatch(&event)`. Dispatch unparks waiters with `Fiber::unpark`.
pub(crate) mod io;

use std::sync::Arc;

/// Token reserved for the driver's own `mio::Waker`.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// Shared handle to one runtime's reactor.
pub(crate) struct Handle {
    pub(crate) registry: mio::Registry,
}

/// The reactor of the runtime the caller runs on, if any.
pub(crate) fn current_handle() -> Option<Arc<Handle>> {
    None
}
