//! Structured groups of fibers: fail-fast ([`fail_fast`]) and first-success ([`first_ok`]).
//!
//! A group borrows like [`fiber::scope`](crate::scope): its members may borrow from the caller's
//! stack, and every member has ended (returned, panicked or been unwound) before the group call
//! returns. Members return `Result<T, E>`; the first outcome that decides the group cancels the
//! others with [`Fiber::cancel`](crate::Fiber::cancel) (docs/cancellation.md, "Groups"):
//!
//! - a member parked (sleep, I/O, channel, lock, join, ...) unwinds from that wait at once, so its
//!   destructors run;
//! - a member running is cancelled at its next park or yield (including the cooperative-budget
//!   check); a pure CPU loop that never yields runs to its end;
//! - a member inside an interposed libc call gets `ECANCELED` from it (docs/hook.md) and unwinds
//!   at its next runtime park.
//!
//! The group waits for the cancelled members too, so "the group returned" means "nothing it
//! spawned still runs".
mod core;
mod outcome;

pub use self::core::{Group, Member};
pub use self::outcome::{GroupError, Outcome};

use self::core::{run_group, Policy};

/// Runs a fail-fast group (Python's `TaskGroup`, Loom's `ShutdownOnFailure`, Go's `errgroup`):
/// the first member to fail — return `Err`, panic, or be cancelled through its handle — cancels
/// the others. When every member has ended, returns every value in order of spawn if all
/// returned `Ok`, else a [`GroupError`] naming the first failure, with every member's
/// [`Outcome`] (`Ok` for those that finished before the failure, mostly `Cancelled` for the
/// rest). A panic is reported, not resumed; [`GroupError::into_error`] resumes it.
///
/// ```
/// let inputs = ["1", "2", "x", "4"];
/// let result = fiber::group::fail_fast(|g| {
///     for input in &inputs {
///         g.spawn(move || input.parse::<u32>());
///     }
/// });
/// let err = result.unwrap_err();
/// assert_eq!(err.index(), 2);
/// assert!(err.error().is_some());
///
/// let sum: u32 = fiber::group::fail_fast(|g| {
///     g.spawn(|| Ok::<_, std::num::ParseIntError>(1));
///     g.spawn(|| Ok(2));
/// })
/// .unwrap()
/// .into_iter()
/// .sum();
/// assert_eq!(sum, 3);
/// ```
///
/// A panic in `f` itself cancels the members, and is resumed once they have ended.
#[track_caller]
pub fn fail_fast<'env, T, E, F>(f: F) -> Result<Vec<T>, GroupError<T, E>>
where
    T: Send,
    E: Send,
    F: for<'g> FnOnce(&'g Group<'g, 'env, T, E>),
{
    let (outcomes, decided) = run_group(Policy::FailFast, f);
    // Undecided yet not all Ok: a member cancelled before it ran, bypassing the group
    // (`Member::fiber().cancel()`, runtime shutdown); it is the failure.
    let decided = decided.or_else(|| outcomes.iter().position(|o| !o.is_ok()));
    match decided {
        Some(first) => Err(GroupError::new(first, outcomes)),
        None => Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.ok().expect("no member failed"))
            .collect()),
    }
}

/// Runs a first-success group (Loom's `ShutdownOnSuccess`: happy eyeballs, hedged requests): the
/// first member to return `Ok` cancels the others, and its value is returned once they have
/// ended. If none succeeds, returns every member's error in order of spawn — unless one
/// panicked, in which case that (first) panic is resumed, as `std::thread::scope` does. Members
/// cancelled through their handles add no error; a loser's panic after a success is dropped (the
/// panic hook has already printed it).
///
/// ```
/// use std::time::Duration;
/// let winner = fiber::group::first_ok(|g| {
///     g.spawn(|| { fiber::sleep(Duration::from_secs(10)); Ok::<_, String>("slow") });
///     g.spawn(|| Ok("fast"));
///     g.spawn(|| Err("broken".to_string()));
/// });
/// assert_eq!(winner, Ok("fast"));
/// ```
#[track_caller]
pub fn first_ok<'env, T, E, F>(f: F) -> Result<T, Vec<E>>
where
    T: Send,
    E: Send,
    F: for<'g> FnOnce(&'g Group<'g, 'env, T, E>),
{
    let (outcomes, decided) = run_group(Policy::FirstOk, f);
    if let Some(winner) = decided {
        let value = outcomes.into_iter().nth(winner).and_then(Outcome::ok);
        return Ok(value.expect("the deciding member returned Ok"));
    }
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Err(error) => errors.push(error),
            Outcome::Panicked(payload) => std::panic::resume_unwind(payload),
            Outcome::Ok(_) | Outcome::Cancelled => {}
        }
    }
    Err(errors)
}
