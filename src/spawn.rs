//! Spawning fibers: `spawn` and `Builder`, as `std::thread`.
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::runtime::{self, Runtime};
use crate::scheduler::{context, Shared};
use crate::task::join::{Completion, JoinHandle, Packet};
use crate::task::{Fiber, Task};

/// Spawns a fiber on the current runtime (the caller's, or the default runtime when called from
/// a plain OS thread, started on first use) and returns its [`JoinHandle`], as
/// [`std::thread::spawn`].
///
/// # Panics
/// If the runtime cannot take the fiber (it is shutting down). Use [`Builder::spawn`] to get an
/// error instead.
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
        self.spawn_in(&runtime::current_shared(), f, None)
    }

    /// Spawns the fiber on the given runtime.
    pub fn spawn_on<F, T>(self, rt: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_in(rt.shared(), f, None)
    }

    /// Spawns `f` with a lifetime the caller guarantees: see `scope` and `block_on`.
    pub(crate) fn spawn_in<'a, F, T>(
        self,
        shared: &Arc<Shared>,
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
        let packet = Arc::new(Packet::new(scope));
        let job = Job {
            f,
            completion: Completion::new(packet.clone()),
        };
        let body: Box<dyn FnOnce() + Send + 'a> = Box::new(move || job.run());
        // SAFETY: erases `'a` to `'static`. Callers with `'a` shorter than `'static` (scoped fibers,
        // `block_on`) do not return before the fiber has finished and its packet is gone or its
        // result taken, so nothing borrowed outlives `'a`; a job dropped unrun drops `f` before
        // completing the packet (field order of `Job`). For `'a = 'static` this is a no-op.
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(body) };
        let task = Arc::new(Task::new(shared.clone(), self.name, stack_size, body));
        shared.schedule_new(task.clone());
        Ok(JoinHandle {
            packet,
            fiber: Fiber::from_task(task),
        })
    }
}

/// A fiber's work: the user closure and where its result goes. Fields drop in declaration order,
/// so a job dropped unrun releases `f` (and what it borrows) before the joiner is told.
struct Job<F, T> {
    f: F,
    completion: Completion<T>,
}

impl<F: FnOnce() -> T, T> Job<F, T> {
    fn run(self) {
        let Job { f, completion } = self;
        let result = catch_unwind(AssertUnwindSafe(f));
        // Fiber-locals die with the fiber, before its joiner sees the result (as TLS in std).
        let _ = catch_unwind(|| context::with_task(|task| task.locals.clear()));
        completion.complete(result);
    }
}
