//! The machinery both group kinds share: spawn members into an owned scope, record each outcome,
//! let the first decisive one cancel the rest, and wait until nothing spawned is left.
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::outcome::Outcome;
use crate::scope::Scope;
use crate::task::{context, park::park_uncancellable};
use crate::{Cancelled, Fiber};

/// Which outcome ends a group early (cancels the members still running).
#[derive(Clone, Copy)]
pub(crate) enum Policy {
    /// The first `Err`, panic or cancellation not caused by the group.
    FailFast,
    /// The first `Ok`.
    FirstOk,
}

impl Policy {
    fn decides<T, E>(self, outcome: &Outcome<T, E>) -> bool {
        match self {
            Policy::FailFast => !outcome.is_ok(),
            Policy::FirstOk => outcome.is_ok(),
        }
    }
}

/// A group of fibers spawned with [`Group::spawn`] inside [`fail_fast`](super::fail_fast) or
/// [`first_ok`](super::first_ok); every one has ended before that call returns.
pub struct Group<'g, 'env: 'g, T, E> {
    scope: Scope<'g, 'env>,
    policy: Policy,
    members: Mutex<Members<T, E>>,
}

/// A handle to one member of a group: to cancel it, or to tell which it is.
#[derive(Clone)]
pub struct Member<'g> {
    index: usize,
    fiber: Fiber,
    group: &'g (dyn CancelMember + Sync),
}

/// What a [`Member`] needs of its group, whatever the group's `T` and `E`.
trait CancelMember {
    fn cancel_member(&self, index: usize, fiber: &Fiber);
}

impl std::fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("index", &self.index)
            .field("fiber", &self.fiber)
            .finish()
    }
}

impl Member<'_> {
    /// Its position in the group's outcomes (order of spawn).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Cancels this member, as [`JoinHandle::cancel`](crate::JoinHandle::cancel); its outcome
    /// is [`Outcome::Cancelled`] unless it had ended already. In a fail-fast group that is its
    /// failure if nothing else failed first, and it cancels the others.
    pub fn cancel(&self) {
        self.group.cancel_member(self.index, &self.fiber)
    }

    /// The member's fiber. (Cancel through [`Member::cancel`]: `fiber().cancel()` bypasses the
    /// group, which sees it only when the member unwinds, or, for one cancelled before it ran,
    /// when every member has ended.)
    pub fn fiber(&self) -> &Fiber {
        &self.fiber
    }
}

/// Members in order of spawn, and which one decided the group.
struct Members<T, E> {
    slots: Vec<Slot<T, E>>,
    decided: Option<usize>,
}

struct Slot<T, E> {
    /// `None` until `spawn` has the fiber.
    fiber: Option<Fiber>,
    /// `None` until the member ends; stays `None` if it was cancelled before it ever ran.
    outcome: Option<Outcome<T, E>>,
}

impl<'g, 'env, T: Send, E: Send> Group<'g, 'env, T, E> {
    /// Spawns a member running `f`, which may borrow from outside the group (as
    /// [`Scope::spawn`](crate::Scope::spawn)). If the group is already decided, the member is
    /// cancelled at once (its closure does not run, or unwinds at its first wait). Panics if the
    /// runtime cannot take the fiber.
    pub fn spawn<F>(&'g self, f: F) -> Member<'g>
    where
        F: FnOnce() -> Result<T, E> + Send + 'g,
    {
        let index = {
            let mut members = self.lock();
            members.slots.push(Slot {
                fiber: None,
                outcome: None,
            });
            members.slots.len() - 1
        };
        let handle = self.scope.spawn(move || self.run(index, f));
        let fiber = handle.fiber().clone();
        // Not joined: the member stores its outcome itself, and the scope counts it until it ends.
        drop(handle);
        let late = {
            let mut members = self.lock();
            members.slots[index].fiber = Some(fiber.clone());
            members.decided.is_some()
        };
        if late {
            fiber.cancel();
        }
        Member {
            index,
            fiber,
            group: self,
        }
    }

    /// A member's body: run `f`, record how it ended, and cancel the others if that decides.
    fn run<F: FnOnce() -> Result<T, E>>(&self, index: usize, f: F) {
        let outcome = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(value)) => Outcome::Ok(value),
            Ok(Err(error)) => Outcome::Err(error),
            Err(payload) if payload.is::<Cancelled>() => Outcome::Cancelled,
            Err(payload) => Outcome::Panicked(payload),
        };
        let decisive = self.policy.decides(&outcome);
        let mut members = self.lock();
        if members.slots[index].outcome.is_some() {
            // Cancelled through its handle, and so reported (see `cancel_member`). The value is
            // dropped outside the lock: its destructor may do anything.
            drop(members);
            drop(outcome);
            return;
        }
        members.slots[index].outcome = Some(outcome);
        let to_cancel = if decisive && members.decided.is_none() {
            members.decided = Some(index);
            members.unfinished()
        } else {
            Vec::new()
        };
        drop(members);
        // Outside the lock: cancelling only sets a bit and perhaps requeues; it never waits.
        for fiber in to_cancel {
            fiber.cancel();
        }
    }

    /// Cancels every member that has not ended.
    fn cancel_all(&self) {
        let to_cancel = self.lock().unfinished();
        for fiber in to_cancel {
            fiber.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Members<T, E>> {
        // Nothing panics while holding it; recover rather than cascade if that ever changes.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Send, E: Send> CancelMember for Group<'_, '_, T, E> {
    fn cancel_member(&self, index: usize, fiber: &Fiber) {
        let mut to_cancel = vec![fiber.clone()];
        {
            let mut members = self.lock();
            let fail_fast = matches!(self.policy, Policy::FailFast);
            if fail_fast && members.slots[index].outcome.is_none() && members.decided.is_none() {
                // Decided now, not when the member unwinds: one cancelled before it ran never
                // records an outcome itself.
                members.slots[index].outcome = Some(Outcome::Cancelled);
                members.decided = Some(index);
                to_cancel.extend(members.unfinished());
            }
        }
        for fiber in to_cancel {
            fiber.cancel();
        }
    }
}

impl<T, E> Members<T, E> {
    /// Fibers of the members that have not recorded an outcome.
    fn unfinished(&self) -> Vec<Fiber> {
        let open = self.slots.iter().filter(|slot| slot.outcome.is_none());
        open.filter_map(|slot| slot.fiber.clone()).collect()
    }
}

/// Runs a group body: `body` spawns the members; returns every outcome in order of spawn and the
/// index of the one that decided the group, once every member has ended. A panic in `body`
/// cancels the members and is resumed once they have ended. If the calling fiber is cancelled
/// meanwhile, the cancel is passed on to the members, and lands on the caller when they have ended.
pub(crate) fn run_group<'env, T, E, F>(
    policy: Policy,
    body: F,
) -> (Vec<Outcome<T, E>>, Option<usize>)
where
    T: Send,
    E: Send,
    F: for<'g> FnOnce(&'g Group<'g, 'env, T, E>),
{
    let group = Group {
        scope: Scope::owned(),
        policy,
        members: Mutex::new(Members {
            slots: Vec::new(),
            decided: None,
        }),
    };
    let result = catch_unwind(AssertUnwindSafe(|| body(&group)));
    if result.is_err() {
        group.cancel_all();
    }
    // The members borrow from this stack: this wait must not be cut short. A cancel of this
    // fiber wakes it once (the park is uncancellable) and is passed on to the members.
    let mut passed_on = false;
    while group.scope.running() != 0 {
        if !passed_on && caller_cancelled() {
            group.cancel_all();
            passed_on = true;
        }
        park_uncancellable();
    }
    group.scope.forget_fibers();
    if let Err(payload) = result {
        resume_unwind(payload);
    }
    if caller_cancelled() {
        // Sticky: this yield unwinds the caller with `Cancelled`, here rather than at its next wait.
        crate::yield_now();
    }
    let members = std::mem::replace(
        &mut *group.lock(),
        Members {
            slots: Vec::new(),
            decided: None,
        },
    );
    let outcomes = members.slots.into_iter();
    // A member cancelled before it ever ran recorded nothing.
    let outcomes = outcomes.map(|slot| slot.outcome.unwrap_or(Outcome::Cancelled));
    (outcomes.collect(), members.decided)
}

/// Has the calling fiber been asked to cancel, in a way it honours now? False on a plain thread,
/// while it unwinds (a group run by a destructor works as usual, as every wait does then), and
/// inside [`uncancellable`](crate::uncancellable): a shielded group runs to its end.
fn caller_cancelled() -> bool {
    context::with_task(context::cancel_would_land).unwrap_or(false)
}
