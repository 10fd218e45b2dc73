//! Creating a fiber on a runtime: the task allocation, its lifetime erasure, and its first
//! queueing. The public `spawn`/`Builder` (src/spawn.rs), `Scope::spawn` and `block_on` all end here.
use std::io;
use std::sync::Arc;

use super::validate_stack_size;
use crate::scheduler::Handle;
use crate::task::join::{JobCell, JoinHandle, JoinTarget, ScopeData};
use crate::task::trace;
use crate::task::{Fiber, Job, Task};

/// Spawns `f` on `shared` with a lifetime the caller guarantees: see `scope` and `block_on`.
/// Panics if `name` holds a NUL byte: std's check and message at spawn, so that ported code and
/// tests see the same panic. Called before anything is counted or allocated for the fiber.
pub(crate) fn check_name(name: Option<&str>) {
    if let Some(Err(nul)) = name
        .filter(|n| n.contains('\0'))
        .map(std::ffi::CString::new)
    {
        panic!("thread name may not contain interior null bytes: {nul:?}");
    }
}

pub(crate) fn spawn_in<'a, F, T>(
    shared: Arc<Handle>,
    name: Option<String>,
    site: &'static std::panic::Location<'static>,
    stack_size: Option<usize>,
    f: F,
    scope: Option<Arc<ScopeData>>,
) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    check_name(name.as_deref());
    let stack_size = match stack_size {
        None => 0,
        Some(bytes) => {
            let bytes = validate_stack_size(bytes)?;
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
    let kind = trace::kind(scope.is_some());
    // Written in place: `Arc::new` moved the ~300-byte task twice (stack → `ArcInner` → heap),
    // two `memcpy`s per spawn.
    let mut slot = Arc::<Task<JobCell<F, T>>>::new_uninit();
    Arc::get_mut(&mut slot)
        .expect("a new Arc is unique")
        .write(Task::new(
            shared.clone(),
            name,
            site,
            stack_size,
            kind,
            JobCell::new(f, scope),
        ));
    // SAFETY: initialised just above.
    let task = unsafe { slot.assume_init() };
    let target: Arc<Task<dyn JoinTarget<T> + 'a>> = task.clone();
    let task: Arc<Task<dyn Job + 'a>> = task;
    // SAFETY: erases `'a` to `'static` (same pointers, same vtables). Callers with `'a` shorter
    // than `'static` (scoped fibers, `block_on`) do not return before the closure has been
    // consumed or dropped and the packet's result taken or dropped (`Packet::release`), so
    // nothing borrowed is used after `'a`. For `'a = 'static` this is a no-op.
    let task = unsafe {
        std::mem::transmute::<Arc<Task<dyn Job + 'a>>, Arc<Task<dyn Job + 'static>>>(task)
    };
    // SAFETY: the same argument, for the join handle's view of the same allocation.
    let target = unsafe {
        std::mem::transmute::<
            Arc<Task<dyn JoinTarget<T> + 'a>>,
            Arc<Task<dyn JoinTarget<T> + 'static>>,
        >(target)
    };
    shared.schedule_new(task.clone());
    Ok(JoinHandle {
        target,
        fiber: Fiber::from_task(task),
    })
}

/// Runs `f` as a fiber of `shared` and waits for its result; `f` may borrow from the caller.
#[track_caller]
pub(crate) fn run_borrowed<F, T>(shared: &Arc<Handle>, f: F) -> std::thread::Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let site = std::panic::Location::caller();
    let handle = spawn_in(shared.clone(), None, site, None, f, None)
        .unwrap_or_else(|err| panic!("failed to spawn fiber: {err}"));
    // Waiting for the result is what makes the borrow sound (see `spawn_in`), so runtime shutdown
    // must not unwind the caller out of this wait either.
    handle.join_uncancellable()
}
