//! # fiber: virtual threads for Rust
//!
//! Write plain blocking code — spawn, join, sleep, park — and run hundreds of thousands of
//! *fibers* (virtual threads: stackful coroutines) on a few OS threads. A call that would block
//! parks only the fiber; its worker thread runs other fibers meanwhile. The API mirrors
//! `std::thread`, so porting is a change of `use` lines, and the same calls made from a plain OS
//! thread behave exactly as `std` does.
//!
//! ```
//! let handles: Vec<_> = (0..1000)
//!     .map(|i| fiber::spawn(move || {
//!         fiber::sleep(std::time::Duration::from_millis(10));
//!         i * 2
//!     }))
//!     .collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 999 * 1000);
//! ```
//!
//! # Implementation
//! Fibers run on an M:N work-stealing scheduler: one worker OS thread per CPU by default (threads
//! named `fiber-default-N` for the default runtime, started on first use). A fiber that has
//! started stays on its worker (thread-locals stay sound); only unstarted fibers are stolen. Idle
//! workers sleep, one of them in the `mio` reactor. Stacks are pooled `mmap` regions; see
//! `docs/architecture.md` and `docs/caveats.md` (thread-locals, blocking calls, CPU loops, stack
//! sizes).

mod blocking;
mod coro;
pub(crate) mod driver;
pub mod fs;
pub mod group;
#[cfg(feature = "hook")]
pub mod hook;
mod monitor;
pub mod net;
mod observe;
pub mod os;
pub mod runtime;
mod scheduler;
mod scope;
mod spawn;
pub mod sync;
mod task;
pub mod thread;
pub mod time;
mod timeout;
mod util;

pub use blocking::spawn_blocking;
pub use driver::wait::{park_timeout, sleep, sleep_until};
pub use monitor::metrics::{Metrics, WorkerMetrics};
pub use monitor::watchdog::{
    CarrierState, WatchdogReport, DEFAULT_THRESHOLD as WATCHDOG_THRESHOLD,
};
pub use observe::{dump, Cycle, Dump, FiberInfo, FiberState, WaitReason};
pub use runtime::{
    current_metrics as metrics, run, Builder as RuntimeBuilder, Runtime, DEFAULT_STACK_SIZE,
    MAX_STACK_SIZE, MAX_WORKER_THREADS, MIN_STACK_SIZE,
};
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use spawn::{spawn, Builder};
pub use task::context::{uncancellable, Cancelled};
pub use task::join::JoinHandle;
pub use task::local::LocalKey;
pub use task::park::{current, is_fiber, park, yield_now};
pub use task::{Fiber, FiberId};
/// std's names, at the root too, for ports that write `use fiber as thread;`.
pub use thread::{available_parallelism, panicking, Thread, ThreadId};
pub use timeout::{timeout, timeout_at, Elapsed};

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
