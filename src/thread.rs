//! `std::thread`, item for item, on fibers: porting is `use std::thread;` → `use fiber::thread;`.
//!
//! Every name std's module has for spawning and waiting is here with std's signature. Where fiber
//! has its own name, both work: [`Thread`] is [`Fiber`](crate::Fiber), [`ThreadId`] is
//! [`FiberId`](crate::FiberId), and `JoinHandle::thread()` is `JoinHandle::fiber()`. On a plain
//! OS thread each call behaves as std's.
//!
//! What differs by design (docs/porting.md): [`LocalKey`] is fiber-local (made by
//! [`fiber_local!`](crate::fiber_local); `thread_local!` still declares std's per-carrier keys), and
//! the OS thread names are the carriers' (a fiber's name is `current().name()`).
pub use std::thread::{available_parallelism, AccessError, Result};

pub use crate::driver::wait::{park_timeout, sleep, sleep_until};
pub use crate::scope::{scope, Scope, ScopedJoinHandle};
pub use crate::spawn::{spawn, Builder};
pub use crate::task::join::JoinHandle;
pub use crate::task::local::LocalKey;
pub use crate::task::park::{current, park, yield_now};

/// A handle to a fiber, as `std::thread::Thread`: `id()`, `name()`, `unpark()`.
pub type Thread = crate::Fiber;

/// A fiber's unique id, as `std::thread::ThreadId`.
pub type ThreadId = crate::FiberId;

/// Whether the caller is unwinding because of a panic, as `std::thread::panicking`, but answered
/// for the running fiber: a neighbour on the same carrier that is parked in the middle of its own
/// unwind does not make this fiber look as if it were panicking (docs/caveats.md "Panics").
pub fn panicking() -> bool {
    crate::task::context::panicking()
}
