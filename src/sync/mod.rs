//! Synchronisation primitives and channels that park the waiting *fiber*, not its carrier thread.
//!
//! The API mirrors `std::sync` method for method (poisoning included), so porting is a change of
//! `use` lines. The same values can be shared between fibers and plain OS threads: a waiter inside
//! a fiber parks only that fiber, a waiter on an OS thread parks the thread.
//!
//! Every primitive waits through one shared wait queue (`waitq`), built only on
//! [`crate::current`], [`crate::Fiber::unpark`], [`crate::park`] and [`crate::park_timeout`].
//! Fast paths are one atomic operation and never allocate. See `docs/sync.md` for the design, the
//! fairness policies and the measurements.
//!
//! Additions beyond std: [`Semaphore`], [`WaitGroup`], [`RawMutex`] (a `lock_api::RawMutex`),
//! [`mpmc`] channels and [`crate::select!`].

mod barrier;
mod call_once;
mod condvar;
pub mod mpmc;
pub mod mpsc;
mod mutex;
mod once;
mod poison;
mod rwlock;
mod semaphore;
mod waitgroup;
pub(crate) mod waitq;

pub use barrier::{Barrier, BarrierWaitResult};
pub use call_once::{Once, OnceState};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard, RawMutex};
pub use once::{LazyLock, OnceLock};
pub use poison::{LockResult, PoisonError, TryLockError, TryLockResult};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;

/// std's `Arc` and atomics, re-exported so that `use fiber::sync::{Arc, Mutex}` ports unchanged.
pub use std::sync::{atomic, Arc, Weak};
