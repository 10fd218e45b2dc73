//! Readiness on pollfd arrays: `poll`, `ppoll`, and the fortified `__poll_chk`, `__ppoll_chk`.
//!
//! In a fiber, a call with a timeout other than zero:
//! - **One socket** the hooks manage (std's `connect_timeout`, the usual "poll, then read" of C
//!   clients): waits through the socket's own reactor registration, the same loop as a read
//!   (`driver::io::run`), no syscall beyond the zero-timeout `poll`s. Only when that registration
//!   wakes the caller (a socket registered by another runtime's fiber takes the general path).
//! - **Anything else** (several fds, pipes, eventfds, timerfds, epoll fds): a real
//!   `poll(fds, n, 0)` first; if something is ready, or it fails, that is the answer, exactly
//!   libc's. Otherwise the fiber parks on a temporary epoll set of the fds (`waitset`), and each
//!   wake-up makes the real zero-timeout `poll` again, which fills `revents`. So every result is
//!   the kernel's own poll result; the set only says when to look. The set costs an
//!   `epoll_create1`, one `epoll_ctl` per fd, a registration with the reactor and a close per
//!   call that waits (a call that finds something ready at once costs one `poll`, as libc's).
//!   Why not register each fd with the reactor for good, as sockets are? Those registrations
//!   would outlive the fds the hooks do not see closed (`fclose`, `pclose`, raw syscalls), and a
//!   reused number would wait on a dead registration; a set per call cannot go stale.
//!
//! Negative fds are ignored, as poll does; fds epoll refuses (regular files) are always ready
//! for poll, so the first call reported them. If the set cannot be made (`EMFILE`, epoll
//! nesting too deep) the call is libc's blocking one with the time left: correct, but it blocks
//! the carrier.
//!
//! Timeouts: negative is infinite; the call returns 0 no earlier than the timeout. A timeout of
//! zero, a plain thread, and `FIBER_HOOK=0` go straight to libc. `ppoll` with a signal mask goes
//! to libc too (and blocks the carrier): the mask is a property of the OS thread for the
//! duration of the wait, which cannot be given to one fiber of many on that thread; with a null
//! mask it is `poll` with a `timespec`. glibc's `ppoll` does not write the time left back, and
//! neither does this one.
//!
//! A successful call leaves errno as it was; a cancellation (runtime shutdown) is `-1` with
//! `ECANCELED`; `EINTR` never comes from the hooks (a signal does not interrupt a parked fiber).
use std::io;
use std::time::{Duration, Instant};

use libc::{c_int, nfds_t, pollfd, sigset_t, size_t, timespec};

use super::real::real;
use super::waitset::{self, Waited};
use super::{enosys, errno, fds, in_hooked_fiber, set_errno};
use crate::driver::io::{run, Interest, Wait};
use crate::task::context::without_unwinding;

real!(
    REAL_POLL,
    real_poll,
    c"poll",
    fn(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int,
    enosys()
);
real!(
    REAL_PPOLL,
    real_ppoll,
    c"ppoll",
    fn(fds: *mut pollfd, n: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int,
    enosys()
);
real!(
    REAL_POLL_CHK,
    real_poll_chk,
    c"__poll_chk",
    fn(fds: *mut pollfd, n: nfds_t, timeout: c_int, fdslen: size_t) -> c_int,
    enosys()
);
real!(
    REAL_PPOLL_CHK,
    real_ppoll_chk,
    c"__ppoll_chk",
    fn(
        fds: *mut pollfd,
        n: nfds_t,
        timeout: *const timespec,
        mask: *const sigset_t,
        fdslen: size_t,
    ) -> c_int,
    enosys()
);

/// `poll(2)`.
///
/// # Safety
/// As libc's: `fds` points to `n` writable `pollfd`s.
#[no_mangle]
pub(crate) unsafe extern "C" fn poll(pfds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("poll") }, -1);
    if timeout == 0 || !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_poll(pfds, n, timeout) };
    }
    let deadline = u64::try_from(timeout)
        .ok()
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    // SAFETY: the caller's contract.
    unsafe { poll_until(pfds, n, deadline) }
}

/// `ppoll(2)`: with a null signal mask, `poll` with a `timespec` (null: no limit); with a mask,
/// libc's (see the module docs).
///
/// # Safety
/// As libc's: `fds` points to `n` writable `pollfd`s, `timeout` is null or readable.
#[no_mangle]
pub(crate) unsafe extern "C" fn ppoll(
    pfds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("ppoll") }, -1);
    // SAFETY: `timeout` is null or readable (the caller's contract).
    let limit = unsafe { read_limit(timeout) };
    match limit {
        Some(Limit::For(d)) if !d.is_zero() && mask.is_null() && in_hooked_fiber() => {
            let deadline = Instant::now().checked_add(d);
            // SAFETY: the caller's contract.
            unsafe { poll_until(pfds, n, deadline) }
        }
        Some(Limit::Forever) if mask.is_null() && in_hooked_fiber() => {
            // SAFETY: the caller's contract.
            unsafe { poll_until(pfds, n, None) }
        }
        // Zero, invalid (libc says EINVAL), a mask, a plain thread: libc's.
        // SAFETY: forwarded under the caller's contract.
        _ => unsafe { real_ppoll(pfds, n, timeout, mask) },
    }
}

/// `__poll_chk` (`poll` under `_FORTIFY_SOURCE`): an array smaller than `n` pollfds goes to
/// glibc's check, which reports the overflow.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn __poll_chk(
    pfds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if overflows(n, fdslen) {
        // SAFETY: glibc reports the overflow (and aborts, as it documents).
        return unsafe { real_poll_chk(pfds, n, timeout, fdslen) };
    }
    // SAFETY: the array holds `n` pollfds; otherwise as `poll`.
    unsafe { poll(pfds, n, timeout) }
}

/// `__ppoll_chk` (`ppoll` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn __ppoll_chk(
    pfds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if overflows(n, fdslen) {
        // SAFETY: as in `__poll_chk`.
        return unsafe { real_ppoll_chk(pfds, n, timeout, mask, fdslen) };
    }
    // SAFETY: the array holds `n` pollfds; otherwise as `ppoll`.
    unsafe { ppoll(pfds, n, timeout, mask) }
}

/// glibc's test: does an array of `fdslen` bytes hold fewer than `n` pollfds?
fn overflows(n: nfds_t, fdslen: size_t) -> bool {
    (fdslen / std::mem::size_of::<pollfd>()) < n as usize
}

/// A `timespec` timeout as the kernel reads it.
pub(super) enum Limit {
    Forever,
    For(Duration),
}

/// `None`: invalid (negative, or nanoseconds outside 0..1e9), which libc reports as `EINVAL`.
///
/// # Safety
/// `ts` is null or points to a readable `timespec`.
pub(super) unsafe fn read_limit(ts: *const timespec) -> Option<Limit> {
    // SAFETY: null or readable (the caller's contract).
    let Some(ts) = (unsafe { ts.as_ref() }) else {
        return Some(Limit::Forever);
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(Limit::For(Duration::new(
        ts.tv_sec as u64,
        ts.tv_nsec as u32,
    )))
}

/// The milliseconds a blocking call waits to end no earlier than `deadline` (-1: no limit).
pub(super) fn timeout_ms(deadline: Option<Instant>) -> c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let ns = d.saturating_duration_since(Instant::now()).as_nanos();
            c_int::try_from(ns.div_ceil(1_000_000)).unwrap_or(c_int::MAX)
        }
    }
}

/// `poll` in a hooked fiber, until `deadline` (`None`: no limit).
///
/// # Safety
/// `pfds` points to `n` writable `pollfd`s.
unsafe fn poll_until(pfds: *mut pollfd, n: nfds_t, deadline: Option<Instant>) -> c_int {
    // Classifying an fd that is not a socket leaves `ENOTSOCK` behind.
    let saved = errno();
    if n == 1 {
        // SAFETY: the caller's contract.
        if let Some(r) = unsafe { poll_one_socket(pfds, deadline) } {
            return r;
        }
    }
    // SAFETY: the caller's contract; a zero timeout only reports.
    let r = unsafe { real_poll(pfds, n, 0) };
    if r >= 0 {
        set_errno(saved);
    }
    if r != 0 || deadline.is_some_and(|d| d <= Instant::now()) {
        return r;
    }
    let asked: &[pollfd] = if n == 0 {
        &[] // `poll(NULL, 0, ms)`, a sleep: the pointer may be null
    } else {
        // The zero-timeout call succeeded, so `pfds` holds `n` readable pollfds.
        // SAFETY: as just said; nothing writes them while this borrow lives.
        unsafe { std::slice::from_raw_parts(pfds, n as usize) }
    };
    let mut watch: Vec<(c_int, u32)> = asked
        .iter()
        .map(|p| (p.fd, u32::from(p.events as u16)))
        .collect();
    let waited = waitset::park_until(&mut watch, deadline, || {
        // SAFETY: as above; a zero timeout only reports.
        match unsafe { real_poll(pfds, n, 0) } {
            0 => Ok(None),
            r if r > 0 => Ok(Some(r)),
            _ => Err(errno()),
        }
    });
    match waited {
        Waited::Ready(r) => r,
        // The last zero-timeout call left every `revents` 0.
        Waited::TimedOut => 0,
        Waited::Failed(e) => {
            set_errno(e);
            -1
        }
        Waited::Cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        // SAFETY: the caller's contract.
        Waited::CannotPark => unsafe { real_poll(pfds, n, timeout_ms(deadline)) },
    }
}

/// `poll` on one socket the hooks manage, through its own registration; `None` if `pfds` is not
/// such a socket (or its registration would not wake the caller).
///
/// # Safety
/// `pfds` points to one writable `pollfd`.
unsafe fn poll_one_socket(pfds: *mut pollfd, deadline: Option<Instant>) -> Option<c_int> {
    // SAFETY: the caller's contract; null is left to libc (EFAULT).
    let pfd = *unsafe { pfds.as_ref() }?;
    let sock = fds::socket(pfd.fd)?;
    if !sock.reg.serves_caller() {
        return None;
    }
    let read = pfd.events & (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) != 0;
    let write = pfd.events & libc::POLLOUT != 0;
    let interest = match (read, write) {
        (true, true) => Interest::READ.or(Interest::WRITE),
        (false, true) => Interest::WRITE,
        // Errors and hang-ups are reported whatever was asked; they raise read readiness.
        _ => Interest::READ,
    };
    let wait = Wait::Timeout(deadline.map(|d| d.saturating_duration_since(Instant::now())));
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
    Some(match result {
        Ok(r) => {
            set_errno(saved);
            r
        }
        Err(_) if cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        // The timeout passed with nothing ready (the wait may have skipped the last poll).
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // SAFETY: the caller's contract: one writable pollfd.
            unsafe { (*pfds).revents = 0 };
            set_errno(saved);
            0
        }
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    })
}
