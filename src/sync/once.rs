//! `OnceLock` and `LazyLock`: std's API; while one fiber runs the initialiser, the others park.
//!
//! State: `INCOMPLETE -> RUNNING -> COMPLETE`. The first caller to CAS `INCOMPLETE -> RUNNING` runs
//! the initialiser; others queue with `validate` = "still RUNNING". If the initialiser panics, the
//! state returns to `INCOMPLETE` and the waiters retry (one of them becomes the new initialiser),
//! as std's `OnceLock` does. `LazyLock` then reports itself poisoned, as std's does.
use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};

use super::call_once::{finish, park_while};
use super::waitq::WaitQueue;

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// A cell written once; readers that arrive during initialisation park until it is done.
pub struct OnceLock<T> {
    state: AtomicU8,
    queue: WaitQueue,
    /// `Some` exactly when the state is COMPLETE. An `Option` rather than `MaybeUninit`, so that
    /// the cell needs no `Drop` impl: the compiler's own drop glue then lets a value that borrows
    /// from a shorter-lived local die with the cell, which std gets from `#[may_dangle]`.
    value: UnsafeCell<Option<T>>,
}

// SAFETY: as std: `&OnceLock<T>` hands out `&T` on any thread (`T: Sync`) and the value may be
// written by one thread and dropped by another (`T: Send`).
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the `T` inside it.
unsafe impl<T: Send> Send for OnceLock<T> {}

/// Resets `RUNNING -> INCOMPLETE` and wakes waiters if the initialiser unwinds.
struct Reset<'a, T> {
    cell: &'a OnceLock<T>,
}

impl<T> Drop for Reset<'_, T> {
    fn drop(&mut self) {
        self.cell.finish(INCOMPLETE);
    }
}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::new(),
            value: UnsafeCell::new(None),
        }
    }

    /// The value, if initialised (never parks).
    #[inline]
    pub fn get(&self) -> Option<&T> {
        crate::task::coop::spend();
        if self.state.load(Ordering::Acquire) == COMPLETE {
            // SAFETY: COMPLETE (Acquire) means the value was written (before the Release store)
            // and is never written again while shared, so shared access is sound.
            let value = unsafe { &*self.value.get() };
            value.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to the value, if initialised.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if *self.state.get_mut() == COMPLETE {
            self.value.get_mut().as_mut()
        } else {
            None
        }
    }

    /// Sets the value if the cell is empty; otherwise returns `Err(value)`.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("called once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, running `f` to initialise it if the cell is empty. Concurrent callers park
    /// until the one running `f` finishes.
    #[inline]
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        self.init_slow(f)
    }

    /// Parks until the cell is initialised (by someone else), then returns the value.
    pub fn wait(&self) -> &T {
        loop {
            if let Some(v) = self.get() {
                return v;
            }
            self.park_while_running(true);
        }
    }

    #[cold]
    fn init_slow<F: FnOnce() -> T>(&self, f: F) -> &T {
        let mut f = Some(f);
        loop {
            match self.state.compare_exchange(
                INCOMPLETE,
                RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let reset = Reset { cell: self };
                    let value = (f.take().expect("initialiser runs once"))();
                    // SAFETY: we own RUNNING, so nobody else reads or writes the slot.
                    unsafe { *self.value.get() = Some(value) };
                    std::mem::forget(reset);
                    self.finish(COMPLETE);
                }
                Err(COMPLETE) => {}
                Err(_) => self.park_while_running(false),
            }
            if let Some(v) = self.get() {
                return v;
            }
        }
    }

    /// Parks while the state is RUNNING (or, if `also_incomplete`, not COMPLETE).
    fn park_while_running(&self, also_incomplete: bool) {
        park_while(&self.queue, &self.state, |s| {
            s == RUNNING || (also_incomplete && s == INCOMPLETE)
        });
    }

    fn finish(&self, state: u8) {
        finish(&self.queue, &self.state, state);
    }

    /// Consumes the cell, returning the value if it was set.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if *self.state.get_mut() == COMPLETE {
            *self.state.get_mut() = INCOMPLETE;
            self.value.get_mut().take()
        } else {
            None
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> Self {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> Self {
        match self.get() {
            Some(v) => OnceLock::from(v.clone()),
            None => OnceLock::new(),
        }
    }
}

/// Equal when both are empty, or both hold equal values, as std's.
impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

/// A value initialised on first access by `F`; concurrent first accesses park until it is ready.
pub struct LazyLock<T, F = fn() -> T> {
    once: OnceLock<T>,
    init: UnsafeCell<Option<F>>,
}

// SAFETY: `init` is only touched by the one caller that owns the OnceLock's RUNNING state (or
// through `&mut`), so sharing needs `F: Send` (it may run on another thread) and the value needs
// what `OnceLock<T>` needs.
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// A lazy value initialised by `f` on first use.
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            once: OnceLock::new(),
            init: UnsafeCell::new(Some(f)),
        }
    }

    /// Forces initialisation and returns the value.
    ///
    /// # Panics
    /// If the initialiser panicked earlier ("poisoned"), as std's `LazyLock`.
    pub fn force(this: &LazyLock<T, F>) -> &T {
        this.once.get_or_init(|| {
            // SAFETY: this closure runs only in the caller that owns RUNNING, so nobody else
            // accesses `init` concurrently.
            let f = unsafe { (*this.init.get()).take() };
            match f {
                Some(f) => f(),
                None => panic!("LazyLock instance has previously been poisoned"),
            }
        })
    }
}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// Forces initialisation and returns the value mutably, as std's `LazyLock::force_mut`;
    /// `&mut` means nobody else can be initialising it.
    ///
    /// # Panics
    /// If the initialiser panicked earlier ("poisoned"), as std's `LazyLock`; a panic of the
    /// initialiser here poisons it too.
    pub fn force_mut(this: &mut LazyLock<T, F>) -> &mut T {
        if this.once.get_mut().is_none() {
            let value = match this.init.get_mut().take() {
                Some(f) => f(),
                None => panic!("LazyLock instance has previously been poisoned"),
            };
            if this.once.set(value).is_err() {
                unreachable!("the cell was empty and `&mut` excludes other writers");
            }
        }
        this.once.get_mut().expect("initialised above")
    }
}

impl<T, F> LazyLock<T, F> {
    /// The value if it has been initialised, without initialising it (as std's `LazyLock::get`).
    pub fn get(this: &LazyLock<T, F>) -> Option<&T> {
        this.once.get()
    }

    /// Mutable access to the value if it has been initialised (as std's `LazyLock::get_mut`).
    pub fn get_mut(this: &mut LazyLock<T, F>) -> Option<&mut T> {
        this.once.get_mut()
    }
}

impl<T, F: FnOnce() -> T> DerefMut for LazyLock<T, F> {
    fn deref_mut(&mut self) -> &mut T {
        LazyLock::force_mut(self)
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    fn default() -> Self {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match self.once.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

// As std: a panicking initialiser leaves the cell empty (never half-written).
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe> std::panic::RefUnwindSafe
    for OnceLock<T>
{
}
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for OnceLock<T> {}
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe, F: std::panic::UnwindSafe>
    std::panic::RefUnwindSafe for LazyLock<T, F>
{
}
