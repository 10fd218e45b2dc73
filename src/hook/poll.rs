//! Readiness: `poll` on one fd (what std's `connect_timeout` and many C clients make before they
//! read or write) waits on the worker's reactor in a fiber. `poll` on several fds, `ppoll` and
//! `select` are libc's for now and block the carrier (docs/hook.md).
use std::io;
use std::time::Duration;

use libc::{c_int, nfds_t, pollfd};

use super::real::real;
use super::{errno, fds, in_hooked_fiber, set_errno};
use crate::driver::io::{run, Interest, Wait};
use crate::task::context::without_unwinding;

real!(
    REAL_POLL,
    real_poll,
    c"poll",
    fn(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int,
    {
        set_errno(libc::ENOSYS);
        -1
    }
);

/// `poll(2)`.
///
/// # Safety
/// As libc's: `fds` points to `n` writable `pollfd`s.
#[no_mangle]
pub(crate) unsafe extern "C" fn poll(pfds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    if n != 1 || timeout == 0 || !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_poll(pfds, n, timeout) };
    }
    // SAFETY: `n` is 1, so `pfds` points to one readable pollfd (the caller's contract).
    let Some(&pfd) = (unsafe { pfds.as_ref() }) else {
        set_errno(libc::EFAULT);
        return -1;
    };
    let read = pfd.events & (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) != 0;
    let write = pfd.events & libc::POLLOUT != 0;
    let interest = match (read, write) {
        (true, true) => Interest::READ.or(Interest::WRITE),
        (false, true) => Interest::WRITE,
        // Errors and hang-ups are reported whatever was asked; they raise read readiness.
        _ => Interest::READ,
    };
    let Some(sock) = fds::socket(pfd.fd) else {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_poll(pfds, n, timeout) };
    };
    let wait = Wait::Timeout((timeout > 0).then(|| Duration::from_millis(timeout as u64)));
    let saved = errno();
    let (result, cancelled) = without_unwinding(|| {
        run(
            pfd.fd,
            &sock.reg,
            interest,
            wait,
            |_| false,
            || {
                // SAFETY: as above; a zero timeout only reports.
                match unsafe { real_poll(pfds, 1, 0) } {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    r if r < 0 => Err(io::Error::last_os_error()),
                    r => Ok(r),
                }
            },
        )
    });
    match result {
        Ok(r) => {
            set_errno(saved);
            r
        }
        Err(_) if cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        // The timeout passed with nothing ready.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            set_errno(saved);
            0
        }
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}
