//! `fiber::hook`: libc's blocking calls, interposed, so that unchanged blocking code parks only
//! the fiber that makes them (docs/hook.md).
//!
//! With the cargo feature `hook` on Linux/glibc, this crate defines `#[no_mangle]` functions named
//! as libc's (`nanosleep`, ...). The linker resolves the binary's own calls (std's included) to
//! them, and exports them to the shared libraries it links, so C libraries' calls land here too.
//! Each one first asks whether the calling thread is running a fiber (one thread-local read). On
//! any other thread, and in a fiber when the hooks are switched off (`FIBER_HOOK=0`), it calls
//! the real function (found with `dlsym(RTLD_NEXT)`), so plain threads see libc exactly.
//!
//! | module   | interposes                                                                  |
//! |----------|-----------------------------------------------------------------------------|
//! | `sleep`  | `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`                            |
//! | `socket` | socket data calls, `connect`, `accept*`, and the fd bookkeeping of `fds`     |
//! | `poll`   | `poll`, `ppoll` (null mask), `__poll_chk`, `__ppoll_chk`, on any fds          |
//! | `select` | `select`, `pselect` (null mask)                                             |
//! | `epoll`  | `epoll_wait`, `epoll_pwait{,2}` (null mask), on the epoll fd's own readiness |
//! | `dns`    | `getaddrinfo`, `getnameinfo`, `gethostby{name,name2,addr}[_r]`, on a bounded lane |
//! | `fds`    | (no symbols) the fd-keyed table: sockets, their user-visible mode, epoll fds |
//! | `waitset`| (no symbols) a temporary epoll set of the caller's fds, parked on via the reactor |
//! | `real`   | (no symbols) libc's definitions, through `dlsym(RTLD_NEXT)`                 |
//!
//! On by default (the crate's `default` features). Left to libc, and so blocking the carrier:
//! regular files, the readiness calls given a signal mask (`ppoll`, `pselect`, `epoll_pwait{,2}`:
//! a mask belongs to the OS thread), `getaddrinfo_a`/`res_*`, and by design `futex` and the locks
//! built on it (docs/hook.md "Not hooked").
//!
//! A fiber cannot be unwound through an `extern "C"` frame. A fiber cancelled (runtime shutdown)
//! inside a hooked call gets `ECANCELED` from it, and unwinds at its next runtime park or yield;
//! until then every hooked wait fails at once with `ECANCELED`.
#[cfg(fiber_hook)]
mod dns;
#[cfg(fiber_hook)]
mod epoll;
#[cfg(fiber_hook)]
mod fds;
#[cfg(fiber_hook)]
mod poll;
#[cfg(fiber_hook)]
mod real;
#[cfg(fiber_hook)]
mod select;
#[cfg(fiber_hook)]
mod sleep;
#[cfg(fiber_hook)]
mod socket;
#[cfg(fiber_hook)]
mod waitset;

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// What a readiness hook answers when libc has no definition to forward to (see `real!`).
#[cfg(fiber_hook)]
fn enosys() -> libc::c_int {
    set_errno(libc::ENOSYS);
    -1
}

/// Whether the interposed functions park fibers: true on Linux/glibc (dynamically linked) unless
/// the environment variable `FIBER_HOOK` is `0`, read once, on the first call that needs it.
/// Where the hooks are compiled out (other targets, a static build) it is false.
pub fn is_active() -> bool {
    if !cfg!(fiber_hook) {
        return false;
    }
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = std::env::var_os("FIBER_HOOK").is_none_or(|v| v != "0");
            STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
            on
        }
    }
}

/// Should a hooked call made now park the fiber (instead of calling libc)? Not on a plain
/// thread, and not inside the driver's own syscalls (`fiber::net`, `task::context::native_io`),
/// which wait for their fds themselves. The fiber test comes first: on a plain thread this is one
/// thread-local read, and the environment is never read.
#[inline]
#[cfg(fiber_hook)]
fn in_hooked_fiber() -> bool {
    crate::task::context::fiber_in_native_io() == Some(false) && is_active()
}

/// The calling thread's `errno`.
#[cfg(fiber_hook)]
fn errno() -> libc::c_int {
    // SAFETY: no preconditions; it returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: the slot is valid and only this thread's, for the thread's life.
    unsafe { *slot }
}

/// Sets the calling thread's `errno`.
#[cfg(fiber_hook)]
fn set_errno(e: libc::c_int) {
    // SAFETY: no preconditions; it returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: the slot is valid and only this thread's, for the thread's life.
    unsafe { *slot = e };
}
