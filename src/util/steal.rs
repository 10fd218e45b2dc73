//! The one retry loop around crossbeam's `Steal`: `Retry` means "lost a race, try again", so every
//! caller wants the same loop.
use crossbeam_deque::Steal;

/// Repeats `attempt` while it reports `Steal::Retry`; the stolen value, or `None` if empty.
#[inline]
pub(crate) fn steal_with<T>(mut attempt: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match attempt() {
            Steal::Success(value) => return Some(value),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}
