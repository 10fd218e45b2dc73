//! What the user sees as a socket's mode: its blocking mode and timeouts, and the wait policy an
//! operation derives from them. The kernel mode is always non-blocking ([`make_nonblocking`]).
//!
//! Separate from the loop because the loop does not know where a policy comes from: a
//! [`IoSource`](super::IoSource) keeps its [`Options`] (shared by `try_clone`s, as socket options
//! are in std); the libc interposition (issue 13) will keep the same fields in its fd table, set
//! by `fcntl(F_SETFL)`, `ioctl(FIONBIO)` and `setsockopt(SO_RCVTIMEO)`; `connect_timeout` makes
//! its own.
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Interest;

/// How an operation that got `WouldBlock` goes on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Return the `WouldBlock` to the caller (user-visible non-blocking mode).
    NonBlocking,
    /// Wait at most this long in total, then fail with `WouldBlock` (`EAGAIN`, as std on Unix).
    Timeout(Option<Duration>),
}

/// The user-visible blocking mode and timeouts of a socket. Timeouts are nanoseconds, 0 = none.
#[derive(Debug, Default)]
pub(crate) struct Options {
    nonblocking: AtomicBool,
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

impl Options {
    /// Blocking mode `nonblocking`, no timeouts.
    pub(crate) fn new(nonblocking: bool) -> Options {
        Options {
            nonblocking: AtomicBool::new(nonblocking),
            ..Options::default()
        }
    }

    /// The user-visible non-blocking mode.
    #[cfg(fiber_hook)]
    pub(crate) fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.read_timeout
            .store(to_nanos(check_timeout(dur)?), Ordering::Relaxed);
        Ok(())
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.write_timeout
            .store(to_nanos(check_timeout(dur)?), Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        from_nanos(self.read_timeout.load(Ordering::Relaxed))
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        from_nanos(self.write_timeout.load(Ordering::Relaxed))
    }

    /// The wait policy of an operation with `interest` under the current options.
    pub(crate) fn policy(&self, interest: Interest) -> Wait {
        if self.nonblocking.load(Ordering::Relaxed) {
            Wait::NonBlocking
        } else if interest == Interest::READ {
            Wait::Timeout(self.read_timeout())
        } else {
            Wait::Timeout(self.write_timeout())
        }
    }
}

fn to_nanos(dur: Option<Duration>) -> u64 {
    match dur {
        None => 0,
        Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
    }
}

fn check_timeout(dur: Option<Duration>) -> io::Result<Option<Duration>> {
    if dur == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(dur)
}

fn from_nanos(n: u64) -> Option<Duration> {
    (n != 0).then(|| Duration::from_nanos(n))
}

/// Puts `fd` into kernel non-blocking mode; returns whether it already was (the mode the user
/// asked for when adopting a socket made elsewhere).
pub(crate) fn make_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no argument and only reads the flags of `fd`; a bad fd yields EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::O_NONBLOCK != 0;
    if !was {
        // SAFETY: F_SETFL with an int flag argument only changes the status flags of `fd`.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(was)
}
