//! Name resolution: `getaddrinfo`, `getnameinfo`, and the older `gethostbyname`,
//! `gethostbyname2`, `gethostbyaddr` with their `_r` forms. In a fiber the real call
//! runs on the blocking pool, at most [`DNS_CONCURRENCY`] at once (the rest queue, FIFO, holding
//! no thread), while the fiber parks; the result is exactly the real call's, errno included.
//!
//! The caller's pointers (names, hints, result slots, buffers) usually point into the fiber's
//! stack, so the hook does not return before the pool thread is done with them, not even when
//! the fiber is cancelled: the call completes, then returns, and the fiber unwinds at its next
//! runtime park. A lookup still queued when the fiber is cancelled is withdrawn instead and fails
//! with `ECANCELED` (`EAI_SYSTEM` for the `getaddrinfo` pair), as one made with a cancellation
//! already pending.
use libc::{addrinfo, c_char, c_int, c_void, hostent, size_t, sockaddr, socklen_t};

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

real!(
    REAL_GETHOSTBYNAME2_R,
    real_gethostbyname2_r,
    c"gethostbyname2_r",
    fn(
        name: *const c_char,
        af: c_int,
        ret: *mut hostent,
        buf: *mut c_char,
        buflen: size_t,
        result: *mut *mut hostent,
        h_errnop: *mut c_int,
    ) -> c_int,
    libc::ENOSYS
);
real!(
    REAL_GETHOSTBYADDR_R,
    real_gethostbyaddr_r,
    c"gethostbyaddr_r",
    fn(
        addr: *const c_void,
        len: socklen_t,
        kind: c_int,
        ret: *mut hostent,
        buf: *mut c_char,
        buflen: size_t,
        result: *mut *mut hostent,
        h_errnop: *mut c_int,
    ) -> c_int,
    libc::ENOSYS
);
real!(
    REAL_GETHOSTBYNAME,
    real_gethostbyname,
    c"gethostbyname",
    fn(name: *const c_char) -> *mut hostent,
    std::ptr::null_mut()
);
real!(
    REAL_GETHOSTBYNAME2,
    real_gethostbyname2,
    c"gethostbyname2",
    fn(name: *const c_char, af: c_int) -> *mut hostent,
    std::ptr::null_mut()
);
real!(
    REAL_GETHOSTBYADDR,
    real_gethostbyaddr,
    c"gethostbyaddr",
    fn(addr: *const c_void, len: socklen_t, kind: c_int) -> *mut hostent,
    std::ptr::null_mut()
);

// SAFETY: glibc's declaration (netdb.h, `h_errno`'s thread-local slot); the libc crate does not
// bind it.
unsafe extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

/// The calling thread's `h_errno` slot.
fn h_errno_slot() -> *mut c_int {
    // SAFETY: no preconditions; it returns this thread's slot, valid for the thread's life.
    unsafe { __h_errno_location() }
}

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
    // SAFETY: `result` and `h_errnop` are null or writable (the caller's contract).
    on_pool(call).unwrap_or_else(|| unsafe { cancelled_r(result, h_errnop) })
}

/// The failure of a `gethostby*_r` call cancelled before it started, as glibc fails: no entry,
/// `h_errno` "see errno", errno `ECANCELED`.
///
/// # Safety
/// `result` and `h_errnop` are null or writable.
unsafe fn cancelled_r(result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int {
    // SAFETY: the caller's contract.
    if let Some(result) = unsafe { result.as_mut() } {
        *result = std::ptr::null_mut();
    }
    // SAFETY: the caller's contract.
    if let Some(h_errno) = unsafe { h_errnop.as_mut() } {
        *h_errno = NETDB_INTERNAL;
    }
    set_errno(libc::ECANCELED);
    libc::ECANCELED
}

/// `gethostbyname2_r(3)` (GNU): `gethostbyname_r` for one address family.
///
/// # Safety
/// As `gethostbyname_r`'s.
#[no_mangle]
pub(crate) unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop) };
    }
    let args = Args((name, ret, buf, result, h_errnop));
    let call = move || {
        let (name, ret, buf, result, h_errnop) = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop) }
    };
    // SAFETY: `result` and `h_errnop` are null or writable (the caller's contract).
    on_pool(call).unwrap_or_else(|| unsafe { cancelled_r(result, h_errnop) })
}

/// `gethostbyaddr_r(3)` (GNU).
///
/// # Safety
/// As libc's: `addr` readable for `len` bytes; the rest as `gethostbyname_r`'s.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // libc's signature
pub(crate) unsafe extern "C" fn gethostbyaddr_r(
    addr: *const c_void,
    len: socklen_t,
    kind: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe {
            real_gethostbyaddr_r(addr, len, kind, ret, buf, buflen, result, h_errnop)
        };
    }
    let args = Args((addr, ret, buf, result, h_errnop));
    let call = move || {
        let (addr, ret, buf, result, h_errnop) = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyaddr_r(addr, len, kind, ret, buf, buflen, result, h_errnop) }
    };
    // SAFETY: `result` and `h_errnop` are null or writable (the caller's contract).
    on_pool(call).unwrap_or_else(|| unsafe { cancelled_r(result, h_errnop) })
}

/// Makes a non-reentrant `gethostby*` call on the DNS lane and returns its result; on failure
/// the pool thread's `h_errno` is copied to the caller's. The entry is glibc's one process-wide static, as
/// when the caller makes the call itself (not thread-safe in either case, as POSIX says).
/// Cancelled before it started: null, `h_errno` `NETDB_INTERNAL`, errno `ECANCELED`.
fn static_entry_on_pool(call: impl FnOnce() -> *mut hostent + Send + 'static) -> *mut hostent {
    let job = move || {
        let entry = call() as usize;
        // SAFETY: this pool thread's own slot (`h_errno_slot`).
        let h_errno = unsafe { *h_errno_slot() };
        (entry, h_errno)
    };
    let (entry, h_errno) = match run_on_pool_uncancellable(&DNS, job) {
        Ok(done) => done,
        Err(_) => {
            set_errno(libc::ECANCELED);
            (0, NETDB_INTERNAL)
        }
    };
    if entry == 0 {
        // SAFETY: this thread's own slot.
        unsafe { *h_errno_slot() = h_errno };
    }
    entry as *mut hostent
}

/// `gethostbyname(3)`.
///
/// # Safety
/// As libc's: `name` NUL-terminated.
#[no_mangle]
pub(crate) unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_gethostbyname(name) };
    }
    let args = Args(name);
    static_entry_on_pool(move || {
        let name = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyname(name) }
    })
}

/// `gethostbyname2(3)` (GNU).
///
/// # Safety
/// As libc's: `name` NUL-terminated.
#[no_mangle]
pub(crate) unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_gethostbyname2(name, af) };
    }
    let args = Args(name);
    static_entry_on_pool(move || {
        let name = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyname2(name, af) }
    })
}

/// `gethostbyaddr(3)`.
///
/// # Safety
/// As libc's: `addr` readable for `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn gethostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    kind: c_int,
) -> *mut hostent {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_gethostbyaddr(addr, len, kind) };
    }
    let args = Args(addr);
    static_entry_on_pool(move || {
        let addr = args.into_inner();
        // SAFETY: as in `getaddrinfo`.
        unsafe { real_gethostbyaddr(addr, len, kind) }
    })
}
