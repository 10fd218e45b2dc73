//! Name resolution: `getaddrinfo`, `getnameinfo`, `gethostbyname_r`. In a fiber the real call
//! runs on the blocking pool, at most [`DNS_CONCURRENCY`] at once (the rest queue, FIFO, holding
//! no thread), while the fiber parks; the result is exactly the real call's, errno included.
//!
//! The caller's pointers (names, hints, result slots, buffers) usually point into the fiber's
//! stack, so the hook does not return before the pool thread is done with them, not even when
//! the fiber is cancelled: the call completes, then returns, and the fiber unwinds at its next
//! runtime park. A lookup still queued when the fiber is cancelled is withdrawn instead and fails
//! with `ECANCELED` (`EAI_SYSTEM` for the `getaddrinfo` pair), as one made with a cancellation
//! already pending.
use libc::{addrinfo, c_char, c_int, hostent, size_t, sockaddr, socklen_t};

use super::real::real;
use super::{in_hooked_fiber, set_errno};
use crate::blocking::{run_on_pool_uncancellable, Lane};

/// How many lookups run on the blocking pool at once (docs/hook.md). Without a bound, 1,000
/// concurrent lookups grew the pool to hundreds of threads; resolvers gain little from more
/// parallelism than this, and the rest wait in the lane's queue.
pub(crate) const DNS_CONCURRENCY: usize = 16;

static DNS: Lane = Lane::new(DNS_CONCURRENCY);

/// `h_errno` for "see errno" (netdb.h; not in the libc crate).
const NETDB_INTERNAL: c_int = -1;

real!(
    REAL_GETADDRINFO,
    real_getaddrinfo,
    c"getaddrinfo",
    fn(
        node: *const c_char,
        service: *const c_char,
        hints: *const addrinfo,
        res: *mut *mut addrinfo,
    ) -> c_int,
    {
        set_errno(libc::ENOSYS);
        libc::EAI_SYSTEM
    }
);
real!(
    REAL_GETNAMEINFO,
    real_getnameinfo,
    c"getnameinfo",
    fn(
        addr: *const sockaddr,
        addrlen: socklen_t,
        host: *mut c_char,
        hostlen: socklen_t,
        serv: *mut c_char,
        servlen: socklen_t,
        flags: c_int,
    ) -> c_int,
    {
        set_errno(libc::ENOSYS);
        libc::EAI_SYSTEM
    }
);
real!(
    REAL_GETHOSTBYNAME_R,
    real_gethostbyname_r,
    c"gethostbyname_r",
    fn(
        name: *const c_char,
        ret: *mut hostent,
        buf: *mut c_char,
        buflen: size_t,
        result: *mut *mut hostent,
        h_errnop: *mut c_int,
    ) -> c_int,
    libc::ENOSYS
);

/// A hooked call's raw pointer arguments, moved to the pool thread that makes the real call.
struct Args<T>(T);

// SAFETY: the pointers are the caller's arguments, which libc lets any thread use; only the pool
// job dereferences them (in the real call), and the hook's frame, which owns what they point to
// for the length of the call, waits until that job is done (`run_on_pool_uncancellable` returns
// only after the job has finished, or if it never started).
unsafe impl<T> Send for Args<T> {}

impl<T> Args<T> {
    /// Taken by value, so a closure captures the whole `Args` (which is `Send`), not its field.
    fn into_inner(self) -> T {
        self.0
    }
}

/// Makes `call` on the DNS lane of the blocking pool and waits for it; the pool thread's errno is
/// copied to this thread when the call failed (non-zero result). `None`: cancelled before the
/// call started (it never runs).
fn on_pool(call: impl FnOnce() -> c_int + Send + 'static) -> Option<c_int> {
    let job = move || {
        let ret = call();
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        (ret, errno)
    };
    let (ret, errno) = run_on_pool_uncancellable(&DNS, job).ok()?;
    if ret != 0 {
        set_errno(errno);
    }
    Some(ret)
}

/// `getaddrinfo(3)`.
///
/// # Safety
/// As libc's: `node` and `service` are null or NUL-terminated, `hints` null or readable, `res`
/// writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_getaddrinfo(node, service, hints, res) };
    }
    let args = Args((node, service, hints, res));
    let call = move || {
        let (node, service, hints, res) = args.into_inner();
        // SAFETY: the caller's contract; this frame waits while the pool thread makes the call.
        unsafe { real_getaddrinfo(node, service, hints, res) }
    };
    on_pool(call).unwrap_or_else(|| {
        set_errno(libc::ECANCELED);
        libc::EAI_SYSTEM
    })
}

/// `getnameinfo(3)`.
///
/// # Safety
/// As libc's: `addr` readable for `addrlen` bytes, `host` and `serv` null or writable for their
/// lengths.
#[no_mangle]
pub(crate) unsafe extern "C" fn getnameinfo(
    addr: *const sockaddr,
    addrlen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_getnameinfo(addr, addrlen, host, hostlen, serv, servlen, flags) };
    }
    let args = Args((addr, host, serv));
    let call = move || {
        let (addr, host, serv) = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_getnameinfo(addr, addrlen, host, hostlen, serv, servlen, flags) }
    };
    on_pool(call).unwrap_or_else(|| {
        set_errno(libc::ECANCELED);
        libc::EAI_SYSTEM
    })
}

/// `gethostbyname_r(3)` (GNU). Returns an error number; `*result` is null on failure.
///
/// # Safety
/// As libc's: `name` NUL-terminated, `ret` writable, `buf` writable for `buflen` bytes, `result`
/// and `h_errnop` writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_gethostbyname_r(name, ret, buf, buflen, result, h_errnop) };
    }
    let args = Args((name, ret, buf, result, h_errnop));
    let call = move || {
        let (name, ret, buf, result, h_errnop) = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyname_r(name, ret, buf, buflen, result, h_errnop) }
    };
    on_pool(call).unwrap_or_else(|| {
        // Failed as glibc fails: no entry, "see errno".
        // SAFETY: `result` is null or writable (the caller's contract).
        if let Some(result) = unsafe { result.as_mut() } {
            *result = std::ptr::null_mut();
        }
        // SAFETY: `h_errnop` is null or writable (the caller's contract).
        if let Some(h_errno) = unsafe { h_errnop.as_mut() } {
            *h_errno = NETDB_INTERNAL;
        }
        set_errno(libc::ECANCELED);
        libc::ECANCELED
    })
}
