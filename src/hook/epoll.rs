//! `epoll_wait`, and `epoll_pwait`, `epoll_pwait2` with a null signal mask: a C library's own event loop in a fiber
//! parks the fiber, not its carrier.
//!
//! An epoll fd is itself pollable: readable while it has events to report, and every new event of
//! a member wakes its pollers. So the user's epoll fd gets a reactor registration of its own
//! (kept in the fd table, `fds::Entry::Epoll`, dropped by the hooked `close`, `dup2`, `dup3`,
//! `close_range` as a socket's is), and a call goes through the crate's one I/O loop
//! (`driver::io::run`): a real `epoll_wait` with a zero timeout; if it returns no events, park
//! until the reactor reports the epoll fd readable (or the timeout passes), then try again. The
//! events returned, and every error, are the kernel's.
//!
//! Each call makes one real zero-timeout call before it looks at the table: an fd that is not an
//! epoll fd gets libc's error and no table entry. `maxevents <= 0`, a zero timeout, a
//! plain thread, `FIBER_HOOK=0` and `epoll_pwait` with a signal mask go straight to libc (the
//! mask cannot be given to one fiber, see `poll.rs`). If the epoll fd cannot be registered (epoll
//! nesting too deep, a loop) the call is libc's blocking one with the time left. An epoll fd
//! registered by another runtime's fiber (whose reactor would not wake this one), or numbered
//! beyond the table, is waited for in a temporary set (`waitset`), as `poll` does.
use std::io;
use std::time::{Duration, Instant};

use libc::{c_int, epoll_event, sigset_t, timespec};

use super::poll::{read_limit, timeout_ms, Limit};
use super::real::real;
use super::waitset::{self, reactor_serves_caller, Waited};
use super::{enosys, errno, fds, in_hooked_fiber, set_errno};
use crate::driver::io::{run, Interest, Wait};
use crate::task::context::without_unwinding;

real!(
    REAL_EPOLL_WAIT,
    real_epoll_wait,
    c"epoll_wait",
    fn(fd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int) -> c_int,
    enosys()
);
real!(
    REAL_EPOLL_PWAIT,
    real_epoll_pwait,
    c"epoll_pwait",
    fn(
        fd: c_int,
        events: *mut epoll_event,
        max: c_int,
        timeout: c_int,
        mask: *const sigset_t,
    ) -> c_int,
    enosys()
);

real!(
    REAL_EPOLL_PWAIT2,
    real_epoll_pwait2,
    c"epoll_pwait2",
    fn(
        fd: c_int,
        events: *mut epoll_event,
        max: c_int,
        timeout: *const timespec,
        mask: *const sigset_t,
    ) -> c_int,
    enosys()
);

/// `epoll_wait(2)`.
///
/// # Safety
/// As libc's: `events` points to `max` writable `epoll_event`s.
#[no_mangle]
pub(crate) unsafe extern "C" fn epoll_wait(
    fd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let _wait = crate::task::reason::enter_hook(
        const { crate::task::reason::hook_index("epoll_wait") },
        fd,
    );
    if timeout == 0 || max <= 0 || !in_hooked_fiber() || !reactor_serves_caller() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_epoll_wait(fd, events, max, timeout) };
    }
    let deadline = u64::try_from(timeout)
        .ok()
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    // SAFETY: the caller's contract.
    unsafe { wait_until(fd, events, max, deadline) }
}

/// `epoll_pwait(2)`: with a null signal mask, `epoll_wait`; with a mask, libc's.
///
/// # Safety
/// As libc's: `events` points to `max` writable `epoll_event`s, `mask` is null or readable.
#[no_mangle]
pub(crate) unsafe extern "C" fn epoll_pwait(
    fd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    let _wait = crate::task::reason::enter_hook(
        const { crate::task::reason::hook_index("epoll_pwait") },
        fd,
    );
    if mask.is_null() {
        // SAFETY: the caller's contract.
        return unsafe { epoll_wait(fd, events, max, timeout) };
    }
    // SAFETY: forwarded under the caller's contract.
    unsafe { real_epoll_pwait(fd, events, max, timeout, mask) }
}

/// `epoll_pwait2(2)`: `epoll_pwait` with a `timespec` (null: no limit).
///
/// # Safety
/// As libc's: `events` points to `max` writable `epoll_event`s, `timeout` and `mask` are null or
/// readable.
#[no_mangle]
pub(crate) unsafe extern "C" fn epoll_pwait2(
    fd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let _wait = crate::task::reason::enter_hook(
        const { crate::task::reason::hook_index("epoll_pwait2") },
        fd,
    );
    let hooked = max > 0 && mask.is_null() && in_hooked_fiber() && reactor_serves_caller();
    // SAFETY: `timeout` is null or readable (the caller's contract).
    let limit = unsafe { read_limit(timeout) };
    let deadline = match limit {
        Some(Limit::For(d)) if !d.is_zero() && hooked => Instant::now().checked_add(d),
        Some(Limit::Forever) if hooked => None,
        // Zero, invalid (libc says EINVAL), a mask, a plain thread: libc's.
        // SAFETY: forwarded under the caller's contract.
        _ => return unsafe { real_epoll_pwait2(fd, events, max, timeout, mask) },
    };
    // SAFETY: the caller's contract.
    unsafe { wait_until(fd, events, max, deadline) }
}

/// `epoll_wait` in a hooked fiber, until `deadline` (`None`: no limit).
///
/// # Safety
/// `events` points to `max` writable `epoll_event`s.
unsafe fn wait_until(
    fd: c_int,
    events: *mut epoll_event,
    max: c_int,
    deadline: Option<Instant>,
) -> c_int {
    // First a real call: events, or libc's error for an fd that is not an epoll fd (nothing is
    // recorded for it), or for a number whose entry went stale behind the hooks' back.
    // SAFETY: the caller's contract; a zero timeout only reports.
    let found = unsafe { real_epoll_wait(fd, events, max, 0) };
    if found != 0 {
        return found;
    }
    let Some(reg) = fds::known_epoll(fd).or_else(|| fds::adopt_epoll(fd)) else {
        // SAFETY: the caller's contract.
        return unsafe { wait_in_set(fd, events, max, deadline) };
    };
    if !reg.serves_caller() {
        // Registered by another runtime's fiber, whose reactor would not wake this one.
        // SAFETY: the caller's contract.
        return unsafe { wait_in_set(fd, events, max, deadline) };
    }
    let wait = Wait::Timeout(deadline.map(|d| d.saturating_duration_since(Instant::now())));
    let saved = errno();
    let failed = std::cell::Cell::new(false);
    let (result, cancelled) = without_unwinding(|| {
        run(
            fd,
            &reg,
            Interest::READ,
            wait,
            |_| false,
            || {
                // SAFETY: the caller's contract; a zero timeout only reports.
                match unsafe { real_epoll_wait(fd, events, max, 0) } {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    found if found > 0 => Ok(found),
                    _ => {
                        failed.set(true);
                        Err(io::Error::last_os_error())
                    }
                }
            },
        )
    });
    match result {
        Ok(found) => {
            set_errno(saved);
            found
        }
        Err(_) if cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        Err(e) if failed.get() => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
        // The timeout passed with no events.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            set_errno(saved);
            0
        }
        // The reactor refused the epoll fd (nesting too deep, a loop): libc's wait.
        Err(_) => {
            set_errno(saved);
            // SAFETY: the caller's contract.
            unsafe { real_epoll_wait(fd, events, max, timeout_ms(deadline)) }
        }
    }
}

/// `epoll_wait` on an epoll fd without a registration that serves the caller (one made by
/// another runtime's fiber, or an fd beyond the table): parks on a temporary set holding it
/// (`waitset`), or, if that cannot be made, is libc's blocking call.
///
/// # Safety
/// `events` points to `max` writable `epoll_event`s.
unsafe fn wait_in_set(
    fd: c_int,
    events: *mut epoll_event,
    max: c_int,
    deadline: Option<Instant>,
) -> c_int {
    let check = || {
        // SAFETY: the caller's contract; a zero timeout only reports.
        match unsafe { real_epoll_wait(fd, events, max, 0) } {
            0 => Ok(None),
            found if found > 0 => Ok(Some(found)),
            _ => Err(errno()),
        }
    };
    match check() {
        Ok(Some(found)) => return found,
        Ok(None) => {}
        Err(_) => return -1,
    }
    let mut watch = vec![(fd, libc::EPOLLIN as u32)];
    match waitset::park_until(&mut watch, deadline, check) {
        Waited::Ready(found) => found,
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
        Waited::CannotPark => unsafe { real_epoll_wait(fd, events, max, timeout_ms(deadline)) },
    }
}
