//! What a group member ended with, and what a group returns when it does not succeed.
use std::any::Any;
use std::fmt;
use std::panic::resume_unwind;

/// How one member of a group ended.
pub enum Outcome<T, E> {
    /// It returned `Ok(value)`.
    Ok(T),
    /// It returned `Err(error)`.
    Err(E),
    /// It panicked; the payload, as `std::thread::JoinHandle::join` gives it.
    Panicked(Box<dyn Any + Send + 'static>),
    /// It was cancelled (by the group, or through its handle) before it returned.
    Cancelled,
}

impl<T, E> Outcome<T, E> {
    /// True for [`Outcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// True for [`Outcome::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Outcome::Cancelled)
    }

    /// The value, if the member returned `Ok`.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok(value) => Some(value),
            _ => None,
        }
    }

    /// The error, if the member returned `Err`.
    pub fn err(self) -> Option<E> {
        match self {
            Outcome::Err(error) => Some(error),
            _ => None,
        }
    }

    /// The member's result as `std::thread::Result`: a cancellation is `Err` with the payload
    /// [`Cancelled`](crate::Cancelled), as `JoinHandle::join` reports it.
    pub fn into_thread_result(self) -> std::thread::Result<Result<T, E>> {
        match self {
            Outcome::Ok(value) => Ok(Ok(value)),
            Outcome::Err(error) => Ok(Err(error)),
            Outcome::Panicked(payload) => Err(payload),
            Outcome::Cancelled => Err(Box::new(crate::Cancelled::TARGETED)),
        }
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for Outcome<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(value) => f.debug_tuple("Ok").field(value).finish(),
            Outcome::Err(error) => f.debug_tuple("Err").field(error).finish(),
            Outcome::Panicked(_) => f.write_str("Panicked(..)"),
            Outcome::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// A [`fail_fast`](super::fail_fast) group that did not succeed: the member that failed first
/// (and so cancelled the others), and every member's outcome in order of spawn.
pub struct GroupError<T, E> {
    first: usize,
    outcomes: Vec<Outcome<T, E>>,
}

impl<T, E> GroupError<T, E> {
    pub(crate) fn new(first: usize, outcomes: Vec<Outcome<T, E>>) -> Self {
        debug_assert!(!outcomes[first].is_ok());
        GroupError { first, outcomes }
    }

    /// The spawn index of the member whose failure cancelled the others.
    pub fn index(&self) -> usize {
        self.first
    }

    /// How that member failed: [`Outcome::Err`], [`Outcome::Panicked`], or
    /// [`Outcome::Cancelled`] (it was cancelled through its handle, not by the group).
    pub fn first(&self) -> &Outcome<T, E> {
        &self.outcomes[self.first]
    }

    /// The first failure's error, if it was an `Err` (not a panic or a cancellation).
    pub fn error(&self) -> Option<&E> {
        match self.first() {
            Outcome::Err(error) => Some(error),
            _ => None,
        }
    }

    /// True if the first failure was a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self.first(), Outcome::Panicked(_))
    }

    /// Every member's outcome, in order of spawn.
    pub fn outcomes(&self) -> &[Outcome<T, E>] {
        &self.outcomes
    }

    /// Every member's outcome, in order of spawn.
    pub fn into_outcomes(self) -> Vec<Outcome<T, E>> {
        self.outcomes
    }

    /// The first failure's error, with a panic resumed (as `join().unwrap()` would) and a
    /// cancellation resumed as a cancellation unwind: for `fail_fast(..).map_err(GroupError::into_error)`,
    /// which gives `Result<Vec<T>, E>` with panics propagated.
    pub fn into_error(mut self) -> E {
        match self.outcomes.swap_remove(self.first) {
            Outcome::Err(error) => error,
            Outcome::Panicked(payload) => resume_unwind(payload),
            Outcome::Cancelled => resume_unwind(Box::new(crate::Cancelled::TARGETED)),
            Outcome::Ok(_) => unreachable!("the first failure is not an Ok"),
        }
    }
}

impl<T, E: fmt::Debug> fmt::Debug for GroupError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count =
            |pred: fn(&Outcome<T, E>) -> bool| self.outcomes.iter().filter(|o| pred(o)).count();
        f.debug_struct("GroupError")
            .field("index", &self.first)
            .field("first", &Failure(self.first()))
            .field("members", &self.outcomes.len())
            .field("ok", &count(Outcome::is_ok))
            .field("cancelled", &count(Outcome::is_cancelled))
            .finish()
    }
}

impl<T, E: fmt::Display> fmt::Display for GroupError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group member {} ", self.first)?;
        match self.first() {
            Outcome::Err(error) => write!(f, "failed: {error}"),
            Outcome::Panicked(_) => f.write_str("panicked"),
            _ => f.write_str("was cancelled"),
        }
    }
}

impl<T, E: fmt::Debug + fmt::Display> std::error::Error for GroupError<T, E> {}

/// Debug of a failure without requiring `T: Debug`.
struct Failure<'a, T, E>(&'a Outcome<T, E>);

impl<T, E: fmt::Debug> fmt::Debug for Failure<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Outcome::Err(error) => f.debug_tuple("Err").field(error).finish(),
            Outcome::Panicked(_) => f.write_str("Panicked(..)"),
            Outcome::Cancelled => f.write_str("Cancelled"),
            Outcome::Ok(_) => f.write_str("Ok(..)"),
        }
    }
}
