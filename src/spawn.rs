//! Spawning fibers: `spawn` and `Builder`, as `std::thread`.
use std::io;

use crate::runtime::{self, Runtime};
use crate::scope::{Scope, ScopedJoinHandle};
use crate::task::join::JoinHandle;

/// Spawns a fiber on the current runtime (the caller's, or the default runtime when called from
/// a plain OS thread, started on first use) and returns its [`JoinHandle`], as
/// [`std::thread::spawn`].
///
/// # Panics
/// If the runtime cannot take the fiber (it is shutting down). Use [`Builder::spawn`] to get an
/// error instead.
///
/// The closure must be `Send`: it may start on any worker. Capturing an `Rc` does not compile:
///
/// ```compile_fail
/// let shared = std::rc::Rc::new(1);
/// fiber::spawn(move || *shared + 1);
/// ```
///
/// Once started, a fiber never changes thread, so `!Send` values created *inside* it are fine:
///
/// ```
/// let h = fiber::spawn(|| {
///     let local = std::rc::Rc::new(41);
///     fiber::yield_now(); // the Rc lives across a switch, on the same carrier thread
///     *local + 1
/// });
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[cfg_attr(feature = "tracing", track_caller)]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|err| panic!("failed to spawn fiber: {err}"))
}

/// Configures a fiber before spawning it, as [`std::thread::Builder`].
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the fiber (shown by `Fiber::name` and in stack-overflow reports).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// The fiber's stack size in bytes (rounded up to whole pages); must lie within
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)..=[`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the fiber on the current runtime (see [`spawn`]).
    ///
    /// # Panics
    /// If the name contains a NUL byte, as std's `Builder::spawn` (the same message).
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        runtime::spawn::spawn_in(
            runtime::current_or_default(),
            self.name,
            self.stack_size,
            f,
            None,
        )
    }

    /// Spawns the fiber on the given runtime.
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn spawn_on<F, T>(self, rt: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        runtime::spawn::spawn_in(rt.shared().clone(), self.name, self.stack_size, f, None)
    }

    /// Spawns a scoped fiber with this configuration, as `std::thread::Builder::spawn_scoped`.
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        scope.spawn_with(self.name, self.stack_size, f)
    }
}
