//! Which reactor this thread's fibers wait with: the driver's thread-local.
//!
//! A worker enters its own reactor's handle once, when it starts; on any other thread there is
//! none, and I/O waits fall back to `poll(2)` on the thread. Unit tests enter a test reactor's
//! handle the same way.
use std::cell::RefCell;
use std::sync::Arc;

use super::Handle;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Handle>>> = const { RefCell::new(None) };
}

/// Runs `f` with the reactor of the caller's worker, if the caller runs on one.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<Handle>) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(f))
}

/// Makes `handle` this thread's reactor until the guard is dropped.
pub(crate) fn enter(handle: Arc<Handle>) -> Entered {
    let previous = CURRENT.with(|c| c.replace(Some(handle)));
    Entered { previous }
}

/// Restores the previous reactor when dropped.
pub(crate) struct Entered {
    previous: Option<Arc<Handle>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}
