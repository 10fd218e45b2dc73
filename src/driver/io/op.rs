//! The one I/O loop: readiness → try → on `WouldBlock` clear and wait → retry.
//!
//! It works on a borrowed fd and the fd's [`Registration`], with a wait policy handed in: a
//! socket type passes its own (see `IoSource`), and an fd-keyed table can pass the ones it keeps.
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::options::Wait;
use super::registry::{Registered, Registration};
use super::slot::Interest;
use super::thread_wait::poll_fd;
use crate::driver::context;
use crate::task::coop;
use crate::task::reason::{self, kind};

/// Runs the operation `f` on `fd` until it does not say `WouldBlock`, waiting for `interest`
/// between tries as `wait` says: a fiber parks until its reactor reports readiness, a plain
/// thread waits in `poll(2)`. A timeout bounds the whole call (as `SO_RCVTIMEO` bounds one
/// blocking `recv`) and ends it with `WouldBlock` (`EAGAIN`, as std on Unix).
///
/// `drained` tells from a successful result that the kernel's queue is now empty (a short read
/// from a stream), which clears the readiness so that the next call waits for the next edge
/// instead of making a syscall that can only say `WouldBlock`.
#[inline]
pub(crate) fn run<T>(
    fd: RawFd,
    reg: &Registration,
    interest: Interest,
    wait: Wait,
    drained: impl Fn(&T) -> bool,
    mut f: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    coop::spend();
    let mut registered = reg.get();
    let mut deadline = None;
    loop {
        let snapshot = registered.map(|r| r.slot.snapshot());
        // Readiness known clear: skip the syscall and wait for the next edge. Only when the call
        // will wait (in the user's non-blocking mode an operation sees whatever the kernel holds,
        // as std's does, even before the reactor reported it) and only where a reactor of the
        // caller's runtime will set the bit again (on a plain thread, or in another runtime,
        // nothing would).
        let known_clear = matches!(
            registered,
            Some(r) if !r.slot.is_ready(interest)
                && !matches!(wait, Wait::NonBlocking)
                && r.wakes_caller()
        );
        if !known_clear {
            match f() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if matches!(wait, Wait::NonBlocking) {
                        return Err(e);
                    }
                }
                result => {
                    if let (Ok(v), Some(r), Some(s)) = (&result, registered, snapshot) {
                        if drained(v) {
                            r.slot.clear_after_short_read(s);
                        }
                    }
                    return result;
                }
            }
        }
        let deadline = *deadline.get_or_insert_with(|| match wait {
            Wait::Timeout(Some(d)) => {
                Some(Instant::now().checked_add(d).unwrap_or_else(far_future))
            }
            Wait::Timeout(None) | Wait::NonBlocking => None,
        });
        registered = wait_ready(fd, reg, interest, snapshot, deadline)?;
    }
}

/// Waits until `fd` may be ready for `interest`; `WouldBlock` (`EAGAIN`) once `deadline` passed.
/// Clears the readiness that the try after `snapshot` proved stale, then parks the fiber on the
/// fd's slot, or, on a plain thread, polls. Returns the registration the next try goes with.
#[cold]
fn wait_ready(
    fd: RawFd,
    reg: &Registration,
    interest: Interest,
    snapshot: Option<usize>,
    deadline: Option<Instant>,
) -> io::Result<Option<&Registered>> {
    // A fiber registers with its own worker's reactor. `None`: a plain OS thread, or a fiber of
    // another runtime than the one the fd is registered with (documented gap: that fiber blocks
    // its worker in poll(2)).
    // Described for dumps, unless a hooked libc call describes it already (its function name).
    let kind = if interest.0 & Interest::WRITE.0 != 0 {
        kind::FD_WRITE
    } else {
        kind::FD_READ
    };
    let _wait = reason::enter_site_unless_described(reason::word(kind, fd as u32 as u64), 0);
    let registered = context::with_current(|h| reg.for_reactor(h, fd)).transpose()?;
    let registered = registered.flatten();
    let ready = match registered {
        Some(r) => {
            if let Some(s) = snapshot {
                r.slot.clear(s, interest);
            }
            r.slot.wait(interest, deadline)
        }
        None => poll_fd(fd, interest, deadline)?,
    };
    if ready {
        Ok(registered)
    } else {
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}
