//! Spawning fibers: `spawn` and `Builder`, as `std::thread`.
use std::io;
use std::sync::Arc;

use crate::runtime::{self, Runtime};
use crate::scheduler::Shared;
use crate::task::join::{JobCell, JoinHandle, JoinTarget};
use crate::task::{Fiber, Job, Task};

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
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match crate::scheduler::context::with_worker(|w| w.shared().clone()) {
            Some(shared) => self.spawn_in(shared, f, None),
            None => self.spawn_in(runtime::default_runtime().shared().clone(), f, None),
        }
    }

    /// Spawns the fiber on the given runtime.
    pub fn spawn_on<F, T>(self, rt: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_in(rt.shared().clone(), f, None)
    }

    /// Spawns `f` with a lifetime the caller guarantees: see `scope` and `block_on`.
    pub(crate) fn spawn_in<'a, F, T>(
        self,
        shared: Arc<Shared>,
        f: F,
        scope: Option<Arc<crate::scope::ScopeData>>,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let stack_size = match self.stack_size {
            None => 0,
            Some(bytes) => {
                let bytes = runtime::validate_stack_size(bytes)?;
                if bytes == shared.stacks.stack_size() {
                    0
                } else {
                    bytes
                }
            }
        };
        if shared.is_shutdown() {
            return Err(io::Error::other(
                "cannot spawn a fiber: its runtime is shutting down",
            ));
        }
        let task = Arc::new(Task::new(
            shared,
            self.name,
            stack_size,
            JobCell::new(f, scope),
        ));
        let target: Arc<Task<dyn JoinTarget<T> + 'a>> = task.clone();
        let task: Arc<Task<dyn Job + 'a>> = task;
        // SAFETY: erases `'a` to `'static` (same pointers, same vtables). Callers with `'a` shorter
        // than `'static` (scoped fibers, `block_on`) do not return before the closure has been
        // consumed or dropped and the packet's result taken or dropped (`Packet::release`), so
        // nothing borrowed is used after `'a`. For `'a = 'static` this is a no-op.
        let (task, target) = unsafe {
            (
                std::mem::transmute::<Arc<Task<dyn Job + 'a>>, Arc<Task<dyn Job + 'static>>>(task),
                std::mem::transmute::<
                    Arc<Task<dyn JoinTarget<T> + 'a>>,
                    Arc<Task<dyn JoinTarget<T> + 'static>>,
                >(target),
            )
        };
        task.shared.schedule_new(task.clone());
        Ok(JoinHandle {
            target,
            fiber: Fiber::from_task(task),
        })
    }
}
