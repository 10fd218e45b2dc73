//! TEMPORARY skeleton: the public park/unpark API with std-thread semantics.
//! The core runtime replaces the bodies; the signatures and semantics stay:
//! `park` consumes one token or waits for `unpark`; spurious wake-ups are allowed,
//! so every caller re-checks its condition in a loop (as with std::thread::park).
use std::time::Duration;

/// A handle to a fiber (or, outside a runtime, to the calling OS thread).
#[derive(Clone, Debug)]
pub struct Fiber {
    thread: std::thread::Thread,
}

/// A unique identifier of a fiber or thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FiberId(u64);

impl Fiber {
    /// Makes the token available / wakes the fiber if it is parked.
    pub fn unpark(&self) {
        self.thread.unpark()
    }
    /// The fiber's name.
    pub fn name(&self) -> Option<&str> {
        self.thread.name()
    }
}

/// The handle of the calling fiber (or OS thread).
pub fn current() -> Fiber {
    Fiber {
        thread: std::thread::current(),
    }
}
/// Blocks the calling fiber until its token is made available.
pub fn park() {
    std::thread::park()
}
/// As `park`, with a timeout.
pub fn park_timeout(dur: Duration) {
    std::thread::park_timeout(dur)
}
