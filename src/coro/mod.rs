//! Stackful coroutines for fibers: a thin wrapper over `corosensei`.
//!
//! This layer knows nothing of tasks or threads. It creates a coroutine on a pooled stack, resumes
//! it with a [`Resume`] message, and reports how it stopped: [`Outcome`].
//!
//! # Why no `Send` impl
//!
//! A suspended coroutine's stack may hold `!Send` values (an `Rc`, a `thread_local!` reference, a
//! `MutexGuard` of std), and LLVM may cache thread-local addresses across a switch
//! (llvm-project#98479). Moving a *started* coroutine to another OS thread is therefore undefined
//! behaviour reachable from safe code. `Coro` is `!Send` (it holds a `corosensei::Coroutine`), and
//! the task layer keeps it on the worker that created it; only a fiber's `Send` closure ever
//! crosses threads, before any coroutine exists for it. The single `unsafe impl Send`/`Sync` that
//! relies on this is on `task::Task`, next to the argument.
pub(crate) mod overflow;
pub(crate) mod stack;

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};

pub(crate) use stack::FiberStack;

use overflow::{RunningStack, RUNNING};

/// Why a fiber is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Go on running.
    Run,
    /// The runtime is shutting down: unwind the fiber's stack.
    Cancel,
}

/// Why a fiber switched out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Still runnable: requeue it behind the others.
    Yield,
    /// Waiting: whoever wakes it (a timer, I/O) will requeue it with a reference of its own.
    Wait,
    /// Parked (`begin_park` succeeded): the worker's reference becomes the run token held by the
    /// parked state, taken over by the unparker that requeues it (src/task/state.rs).
    Park,
}

/// How a resume ended.
pub(crate) enum Outcome {
    /// The fiber suspended with this reason.
    Suspended(Suspend),
    /// The fiber's body returned; its stack is free for reuse.
    Finished(FiberStack),
}

/// The handle a running fiber uses to switch back to its worker.
pub(crate) type Yielder = corosensei::Yielder<Resume, Suspend>;

/// A fiber's body as a coroutine.
pub(crate) struct Coro {
    co: Option<Coroutine<Resume, Suspend, (), FiberStack>>,
    running: RunningStack,
    /// Bottom of an unguarded stack, whose red zone is checked at every switch; 0 if guarded.
    red_zone: usize,
}

impl Coro {
    /// Prepares `body` to run on `stack`. `name` must outlive the coroutine (it is used only to
    /// report an overflow).
    pub(crate) fn new(
        stack: FiberStack,
        id: u64,
        name: Option<&'static String>,
        body: impl FnOnce(&Yielder) + 'static,
    ) -> Coro {
        let (guard_lo, guard_hi) = stack.guard_range();
        let stack_lo = stack.limit().get();
        let red_zone = if stack.is_guarded() { 0 } else { guard_lo };
        let co = Coroutine::with_stack(stack, move |yielder: &Yielder, first: Resume| {
            // A fiber cancelled before it first ran still gets here: it must not run user code.
            if first == Resume::Run {
                body(yielder);
            }
        });
        Coro {
            co: Some(co),
            running: RunningStack {
                guard_lo,
                guard_hi,
                stack_lo,
                id,
                name,
            },
            red_zone,
        }
    }

    /// Runs the fiber until it suspends or finishes.
    #[inline(always)]
    pub(crate) fn resume(&mut self, msg: Resume) -> Outcome {
        let co = self.co.as_mut().expect("resumed a finished fiber");
        let prev = RUNNING.with(|r| r.replace(&self.running));
        let result = co.resume(msg);
        RUNNING.with(|r| r.set(prev));
        // SAFETY: `red_zone` is the bottom of this coroutine's own unguarded stack, mapped for as
        // long as the coroutine holds the stack.
        if self.red_zone != 0 && unsafe { stack::red_zone_touched(self.red_zone) } {
            overflow::report_overflow(self.running.name.map(String::as_str), self.running.id);
        }
        match result {
            CoroutineResult::Yield(reason) => Outcome::Suspended(reason),
            CoroutineResult::Return(()) => {
                let co = self.co.take().expect("checked above");
                Outcome::Finished(co.into_stack())
            }
        }
    }
}
