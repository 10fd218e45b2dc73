//! How a plain OS thread waits for an fd: `poll(2)`, so fiber's sockets behave as std's blocking
//! sockets there.
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use super::slot::Interest;

/// Waits in `poll(2)` until `fd` is ready for `interest` (or has an error or hang-up), `true`, or
/// `deadline` passes, `false`.
pub(super) fn poll_fd(
    fd: RawFd,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let events = if interest == Interest::READ {
        libc::POLLIN
    } else {
        libc::POLLOUT
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(false);
                }
                // Round up, so we never wake before the deadline and spin.
                let ms = (deadline - now).as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid, exclusively borrowed pollfd and we pass nfds = 1.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
