//! Socket calls: data transfer (`read`, `write`, `readv`, `writev`, `recv*`, `send*` and the
//! fortified `__read_chk`, `__recv_chk`, `__recvfrom_chk`), `connect`, `accept`, `accept4`, and
//! the fd bookkeeping that keeps the table right (`close`, `dup*`, `close_range`, `fcntl`,
//! `ioctl(FIONBIO)`, `setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)`).
//!
//! A data call on a socket in a fiber goes through the crate's one I/O loop
//! (`driver::io::run`, the same as `fiber::net`'s): try, and on `EAGAIN` wait for readiness on the
//! worker's reactor under the socket's user-visible mode, then retry. On a plain thread the call
//! is libc's; only if it says `EAGAIN` on a socket the hooks switched to non-blocking while its
//! user wants it blocking does the thread wait (`poll`) and retry, as the blocking call would.
//!
//! `fcntl` and `ioctl` are C-variadic. Defining a variadic function needs a nightly feature, so
//! they are defined with one fixed argument after the command: on x86_64 and aarch64 Linux a
//! variadic integer or pointer argument travels exactly where a fixed one does.
use std::io;

use libc::{c_int, c_uint, c_ulong, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use super::fds::{self, Socket};
use super::real::{real, Real};
use super::{errno, in_hooked_fiber, set_errno};
use crate::driver::io::{run, Interest, Wait};
use crate::task::context::without_unwinding;

real!(
    REAL_READ,
    real_read,
    c"read",
    fn(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t,
    enosys()
);
real!(
    REAL_WRITE,
    real_write,
    c"write",
    fn(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t,
    enosys()
);
real!(
    REAL_READV,
    real_readv,
    c"readv",
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_WRITEV,
    real_writev,
    c"writev",
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_RECV,
    real_recv,
    c"recv",
    fn(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_RECVFROM,
    real_recvfrom,
    c"recvfrom",
    fn(
        fd: c_int,
        buf: *mut c_void,
        n: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> ssize_t,
    enosys()
);
real!(
    REAL_RECVMSG,
    real_recvmsg,
    c"recvmsg",
    fn(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_SEND,
    real_send,
    c"send",
    fn(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_SENDTO,
    real_sendto,
    c"sendto",
    fn(
        fd: c_int,
        buf: *const c_void,
        n: size_t,
        flags: c_int,
        addr: *const sockaddr,
        len: socklen_t,
    ) -> ssize_t,
    enosys()
);
real!(
    REAL_SENDMSG,
    real_sendmsg,
    c"sendmsg",
    fn(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_CONNECT,
    real_connect,
    c"connect",
    fn(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int,
    enosys() as c_int
);
real!(
    REAL_ACCEPT,
    real_accept,
    c"accept",
    fn(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int,
    enosys() as c_int
);
real!(
    REAL_ACCEPT4,
    real_accept4,
    c"accept4",
    fn(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_CLOSE,
    real_close,
    c"close",
    fn(fd: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_DUP,
    real_dup,
    c"dup",
    fn(fd: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_DUP2,
    real_dup2,
    c"dup2",
    fn(old: c_int, new: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_DUP3,
    real_dup3,
    c"dup3",
    fn(old: c_int, new: c_int, flags: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_CLOSE_RANGE,
    real_close_range,
    c"close_range",
    fn(first: c_uint, last: c_uint, flags: c_int) -> c_int,
    enosys() as c_int
);
real!(
    REAL_SETSOCKOPT,
    real_setsockopt,
    c"setsockopt",
    fn(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int,
    enosys() as c_int
);
real!(
    REAL_READ_CHK,
    real_read_chk,
    c"__read_chk",
    fn(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t) -> ssize_t,
    enosys()
);
real!(
    REAL_RECV_CHK,
    real_recv_chk,
    c"__recv_chk",
    fn(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t, flags: c_int) -> ssize_t,
    enosys()
);
real!(
    REAL_RECVFROM_CHK,
    real_recvfrom_chk,
    c"__recvfrom_chk",
    fn(
        fd: c_int,
        buf: *mut c_void,
        n: size_t,
        buflen: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> ssize_t,
    enosys()
);

static REAL_FCNTL: Real = Real::new(c"fcntl");
static REAL_IOCTL: Real = Real::new(c"ioctl");

fn enosys() -> ssize_t {
    set_errno(libc::ENOSYS);
    -1
}

/// Runs the data call `f` (a libc call: `-1` and errno on failure) on `fd`: through the one I/O
/// loop for a socket in a fiber, straight to libc otherwise (see the module docs).
///
/// `read_len`: `Some(n)` for a read of at most `n` bytes into one buffer (`read`, `recv`,
/// `recvfrom` without `MSG_PEEK`). On a stream socket a short read shows the receive queue empty,
/// so the next read waits for the next edge instead of making a syscall that can only say
/// `EAGAIN`: the same rule, and so the same syscalls, as `fiber::net`'s reads.
///
/// The plain-thread path is kept small (inlined into each hook: one thread-local test, libc's
/// call, a sign test); everything else is out of line, so a plain thread pays a few
/// instructions, not the fiber path's stack frame (`examples/hook_cost.rs`).
#[inline(always)]
fn transfer(
    fd: c_int,
    interest: Interest,
    read_len: Option<size_t>,
    mut f: impl FnMut() -> ssize_t,
) -> ssize_t {
    match crate::task::context::fiber_in_native_io() {
        // `fiber::net`'s own call: the driver waits for this fd itself.
        Some(true) => return f(),
        Some(false) => return in_fiber(fd, interest, read_len, f),
        None => {}
    }
    let r = f();
    if r < 0 {
        return plain_failed(fd, interest, read_len, f);
    }
    r
}

/// A call on a plain thread (or in a fiber with the hooks off) failed: if it said `EAGAIN` on a
/// socket the hooks made non-blocking while its user wants it blocking, wait here and retry, as
/// the blocking call would have. errno is libc's otherwise.
#[cold]
#[inline(never)]
fn plain_failed(
    fd: c_int,
    interest: Interest,
    read_len: Option<size_t>,
    f: impl FnMut() -> ssize_t,
) -> ssize_t {
    if errno() == libc::EAGAIN {
        if let Some(sock) = fds::known(fd) {
            if !sock.opts.nonblocking() {
                return looped(fd, &sock, interest, read_len, f).0;
            }
        }
    }
    -1
}

/// [`transfer`] in a fiber.
#[inline(never)]
fn in_fiber(
    fd: c_int,
    interest: Interest,
    read_len: Option<size_t>,
    mut f: impl FnMut() -> ssize_t,
) -> ssize_t {
    if !in_hooked_fiber() {
        let r = f();
        if r < 0 {
            return plain_failed(fd, interest, read_len, f);
        }
        return r;
    }
    match fds::socket(fd) {
        Some(sock) => {
            let saved = errno();
            let (r, cancelled) = without_unwinding(|| looped(fd, &sock, interest, read_len, f));
            if r.0 >= 0 {
                set_errno(saved); // a successful call leaves errno as it was, as libc's
            } else if cancelled {
                set_errno(libc::ECANCELED);
            }
            r.0
        }
        None => f(),
    }
}

/// As [`transfer`] for a call with `MSG_*` flags: with `MSG_DONTWAIT` the caller asked not to
/// wait, so the call goes straight to libc; a `MSG_PEEK` read leaves the queue as it was, so its
/// length says nothing about it.
fn transfer_flags(
    fd: c_int,
    interest: Interest,
    read_len: Option<size_t>,
    flags: c_int,
    mut f: impl FnMut() -> ssize_t,
) -> ssize_t {
    if flags & libc::MSG_DONTWAIT != 0 {
        return f();
    }
    let read_len = read_len.filter(|_| flags & libc::MSG_PEEK == 0);
    transfer(fd, interest, read_len, f)
}

/// The one loop over a libc call; sets errno on failure. (A 1-tuple keeps the result apart from
/// the `bool` `without_unwinding` adds.)
fn looped(
    fd: c_int,
    sock: &Socket,
    interest: Interest,
    read_len: Option<size_t>,
    mut f: impl FnMut() -> ssize_t,
) -> (ssize_t,) {
    let wait = sock.opts.policy(interest);
    let read_len = read_len.filter(|_| sock.stream);
    let drained = |&r: &ssize_t| matches!(read_len, Some(len) if r > 0 && (r as size_t) < len);
    let result = run(fd, &sock.reg, interest, wait, drained, || {
        let r = f();
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    });
    match result {
        Ok(n) => (n,),
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            (-1,)
        }
    }
}

/// `read(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("read") }, fd);
    // SAFETY: forwarded under the caller's contract (here and in every hook below).
    transfer(fd, Interest::READ, Some(n), || unsafe {
        real_read(fd, buf, n)
    })
}

/// `write(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("write") }, fd);
    // SAFETY: as in `read`.
    transfer(fd, Interest::WRITE, None, || unsafe {
        real_write(fd, buf, n)
    })
}

/// `readv(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("readv") }, fd);
    // SAFETY: as in `read`.
    transfer(fd, Interest::READ, None, || unsafe {
        real_readv(fd, iov, n)
    })
}

/// `writev(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("writev") }, fd);
    // SAFETY: as in `read`.
    transfer(fd, Interest::WRITE, None, || unsafe {
        real_writev(fd, iov, n)
    })
}

/// `recv(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn recv(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("recv") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::READ, Some(n), flags, || unsafe {
        real_recv(fd, buf, n, flags)
    })
}

/// `recvfrom(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("recvfrom") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::READ, Some(n), flags, || unsafe {
        real_recvfrom(fd, buf, n, flags, addr, len)
    })
}

/// `recvmsg(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("recvmsg") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::READ, None, flags, || unsafe {
        real_recvmsg(fd, msg, flags)
    })
}

/// `send(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn send(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("send") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::WRITE, None, flags, || unsafe {
        real_send(fd, buf, n, flags)
    })
}

/// `sendto(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("sendto") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::WRITE, None, flags, || unsafe {
        real_sendto(fd, buf, n, flags, addr, len)
    })
}

/// `sendmsg(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("sendmsg") }, fd);
    // SAFETY: as in `read`.
    transfer_flags(fd, Interest::WRITE, None, flags, || unsafe {
        real_sendmsg(fd, msg, flags)
    })
}

/// `__read_chk` (`read` under `_FORTIFY_SOURCE`): an overflowing size goes to glibc's check.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if n > buflen {
        // SAFETY: glibc reports the overflow (and aborts, as it documents).
        return unsafe { real_read_chk(fd, buf, n, buflen) };
    }
    // SAFETY: `n` fits the buffer; otherwise as `read`.
    unsafe { read(fd, buf, n) }
}

/// `__recv_chk` (`recv` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if n > buflen {
        // SAFETY: as in `__read_chk`.
        return unsafe { real_recv_chk(fd, buf, n, buflen, flags) };
    }
    // SAFETY: `n` fits the buffer; otherwise as `recv`.
    unsafe { recv(fd, buf, n, flags) }
}

/// `__recvfrom_chk` (`recvfrom` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if n > buflen {
        // SAFETY: as in `__read_chk`.
        return unsafe { real_recvfrom_chk(fd, buf, n, buflen, flags, addr, len) };
    }
    // SAFETY: `n` fits the buffer; otherwise as `recvfrom`.
    unsafe { recvfrom(fd, buf, n, flags, addr, len) }
}

/// `accept(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn accept(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("accept") }, fd);
    widen_backlog_once(fd);
    // SAFETY: as in `read`.
    transfer(
        fd,
        Interest::READ,
        None,
        || unsafe { real_accept(fd, addr, len) } as ssize_t,
    ) as c_int
}

/// `accept4(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("accept4") }, fd);
    widen_backlog_once(fd);
    // SAFETY: as in `read`.
    transfer(
        fd,
        Interest::READ,
        None,
        || unsafe { real_accept4(fd, addr, len, flags) } as ssize_t,
    ) as c_int
}

/// The first time a fiber accepts on a listening stream socket, its backlog is raised to the
/// system's maximum (`net.core.somaxconn`), as Go listens and as `fiber::net` does. std listens
/// with 128; a fiber accept loop runs when its worker polls the reactor (every 61 ticks when
/// busy), so a burst of connects from fibers overflowed 128 and the dropped SYNs waited 1 s to be
/// retried. One `getsockopt(SO_ACCEPTCONN)` and one `listen` per listener; a socket that is not
/// listening is left alone (its `accept` fails as libc's). Errors leave the backlog as it was.
fn widen_backlog_once(fd: c_int) {
    if !in_hooked_fiber() {
        return;
    }
    let Some(sock) = fds::socket(fd) else { return };
    if !sock.stream
        || sock
            .backlog_checked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let saved = errno();
    let mut listening: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: `listening` and `len` are valid and writable, `len` is the size of `listening`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut listening).cast(),
            &mut len,
        )
    };
    if r == 0 && listening != 0 {
        // SAFETY: `listen` on a socket that is listening already only updates its backlog.
        let _ = unsafe { libc::listen(fd, c_int::MAX) };
    }
    set_errno(saved);
}

/// `connect(2)`: in a fiber, on a blocking socket, the handshake waits on the reactor
/// (writability, then `SO_ERROR`); a timeout (`SO_SNDTIMEO`) ends it with `EINPROGRESS`, as
/// Linux's blocking connect does.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("connect") }, fd);
    let sock = if in_hooked_fiber() {
        fds::socket(fd)
    } else {
        None
    };
    // SAFETY: as in `read`.
    let r = unsafe { real_connect(fd, addr, len) };
    let Some(sock) = sock else { return r };
    if r == 0 || errno() != libc::EINPROGRESS || sock.opts.nonblocking() {
        return r;
    }
    let saved = errno();
    let wait = sock.opts.policy(Interest::WRITE);
    let (result, cancelled) = without_unwinding(|| {
        run(
            fd,
            &sock.reg,
            Interest::WRITE,
            wait,
            |_| false,
            || connect_status(fd),
        )
    });
    match result {
        Ok(()) => {
            set_errno(saved);
            0
        }
        Err(_) if cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        Err(e)
            if matches!(wait, Wait::Timeout(Some(_))) && e.raw_os_error() == Some(libc::EAGAIN) =>
        {
            set_errno(libc::EINPROGRESS);
            -1
        }
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}

/// Has the non-blocking connect on `fd` finished? `WouldBlock` while it is in progress.
fn connect_status(fd: c_int) -> io::Result<()> {
    let mut err: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: `err` and `len` are valid and writable, `len` is the size of `err`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value to be overwritten.
    let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut plen = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: `peer` is large enough for any address, `plen` says so.
    let r = unsafe { libc::getpeername(fd, (&raw mut peer).cast(), &mut plen) };
    if r == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        e => Err(e),
    }
}

/// `close(2)`: the fd's entry (and registration) goes first, while the number is still ours.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn close(fd: c_int) -> c_int {
    fds::forget(fd);
    // SAFETY: as in `read`.
    unsafe { real_close(fd) }
}

/// `dup(2)`: a dup of a managed socket shares its user-visible mode.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: as in `read`.
    let new = unsafe { real_dup(fd) };
    if new >= 0 {
        if let Some(sock) = fds::known(fd) {
            fds::dup(&sock, new);
        }
    }
    new
}

/// `dup2(2)`: `new` is forgotten first (it may be closed), then becomes a dup of `old`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old != new {
        fds::forget(new);
    }
    // SAFETY: as in `read`.
    let r = unsafe { real_dup2(old, new) };
    if r >= 0 && old != new {
        if let Some(sock) = fds::known(old) {
            fds::dup(&sock, new);
        }
    }
    r
}

/// `dup3(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old != new {
        fds::forget(new);
    }
    // SAFETY: as in `read`.
    let r = unsafe { real_dup3(old, new, flags) };
    if r >= 0 {
        if let Some(sock) = fds::known(old) {
            fds::dup(&sock, new);
        }
    }
    r
}

/// `close_range(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        fds::forget_range(first, last);
    }
    // SAFETY: as in `read`.
    unsafe { real_close_range(first, last, flags) }
}

/// `fcntl(2)`: on a managed socket `F_GETFL` reports, and `F_SETFL` sets, the user-visible
/// `O_NONBLOCK` (the kernel's stays set); `F_DUPFD*` dups share the mode. Everything else is libc's.
///
/// # Safety
/// As libc's (see the module docs for the variadic argument).
#[no_mangle]
pub(crate) unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let Some(real) = real_fcntl() else {
        return enosys() as c_int;
    };
    let sock = match cmd {
        libc::F_GETFL | libc::F_SETFL | libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => fds::known(fd),
        _ => None,
    };
    let Some(sock) = sock else {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real(fd, cmd, arg) };
    };
    match cmd {
        libc::F_GETFL => {
            // SAFETY: F_GETFL takes no argument.
            let flags = unsafe { real(fd, cmd) };
            if flags < 0 {
                return flags;
            }
            let user = if sock.opts.nonblocking() {
                libc::O_NONBLOCK
            } else {
                0
            };
            (flags & !libc::O_NONBLOCK) | user
        }
        libc::F_SETFL => {
            let wanted = arg as c_int;
            // SAFETY: F_SETFL takes an int; the kernel flag stays non-blocking.
            let r = unsafe { real(fd, cmd, wanted | libc::O_NONBLOCK) };
            if r == 0 {
                sock.opts.set_nonblocking(wanted & libc::O_NONBLOCK != 0);
            }
            r
        }
        _ => {
            // SAFETY: F_DUPFD* take an int.
            let new = unsafe { real(fd, cmd, arg as c_int) };
            if new >= 0 {
                fds::dup(&sock, new);
            }
            new
        }
    }
}

/// libc's `fcntl` (the hooks' own calls must not come back through the hook, which would take
/// the fd's table entry a second time).
pub(super) fn real_fcntl() -> Option<unsafe extern "C" fn(c_int, c_int, ...) -> c_int> {
    let addr = REAL_FCNTL.addr()?;
    // SAFETY: `addr` is libc's `fcntl`, a C-variadic function of this signature.
    Some(unsafe {
        std::mem::transmute::<usize, unsafe extern "C" fn(c_int, c_int, ...) -> c_int>(addr)
    })
}

/// `ioctl(2)`: `FIONBIO` on a managed socket sets the user-visible mode only; everything else
/// is libc's.
///
/// # Safety
/// As libc's (see the module docs for the variadic argument).
#[no_mangle]
pub(crate) unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if request == libc::FIONBIO {
        if let Some(sock) = fds::known(fd) {
            // SAFETY: FIONBIO's argument points to an int (the caller's contract); null is EFAULT.
            let Some(on) = (unsafe { arg.cast::<c_int>().as_ref() }) else {
                set_errno(libc::EFAULT);
                return -1;
            };
            sock.opts.set_nonblocking(*on != 0);
            return 0;
        }
    }
    let Some(addr) = REAL_IOCTL.addr() else {
        return enosys() as c_int;
    };
    // SAFETY: `addr` is libc's `ioctl`, a C-variadic function of this signature.
    let real: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int =
        unsafe { std::mem::transmute(addr) };
    // SAFETY: forwarded under the caller's contract.
    unsafe { real(fd, request, arg) }
}

/// `setsockopt(2)`: the kernel gets every option; `SO_RCVTIMEO`/`SO_SNDTIMEO` on a managed socket
/// also become its user-visible timeouts (the kernel's do not apply to a non-blocking socket).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub(crate) unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: as in `read`.
    let r = unsafe { real_setsockopt(fd, level, name, val, len) };
    let is_timeout = name == libc::SO_RCVTIMEO || name == libc::SO_SNDTIMEO;
    if r != 0 || level != libc::SOL_SOCKET || !is_timeout {
        return r;
    }
    if let Some(sock) = fds::known(fd) {
        // SAFETY: the kernel accepted it, so `val` points to a readable timeval.
        let tv = unsafe { &*val.cast::<libc::timeval>() };
        let dur = fds::timeval_duration(tv);
        let _ = if name == libc::SO_RCVTIMEO {
            sock.opts.set_read_timeout(dur)
        } else {
            sock.opts.set_write_timeout(dur)
        };
    }
    r
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::fds;

    /// `fiber::net` waits for its own fds: its reads and writes in a fiber go straight to libc
    /// (`context::native_io`), so the hooks never look its sockets up (a lookup classifies the fd
    /// and would leave it in the table).
    #[test]
    fn fiber_net_io_does_not_go_through_the_fd_table() {
        // Serialized with the unit tests that count fds and readiness slots.
        crate::driver::io::test_support::fd_test(60, fiber_net_io_stays_out_of_the_table);
    }

    fn fiber_net_io_stays_out_of_the_table() {
        let rt = crate::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("runtime");
        rt.block_on(|| {
            let listener = crate::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = crate::spawn(move || {
                let mut s = crate::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"ping").unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"pong");
                s
            });
            let (mut server, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            server.write_all(b"pong").unwrap();
            let client = client.join().unwrap();
            // Checked while all are open (a closed fd's number may be reused).
            if super::super::is_active() {
                for (what, fd) in [
                    ("listener", listener.as_raw_fd()),
                    ("client", client.as_raw_fd()),
                    ("server", server.as_raw_fd()),
                ] {
                    assert!(
                        fds::known(fd).is_none(),
                        "the hooks classified fiber::net's {what} socket: its calls went \
                         through the fd table"
                    );
                }
            }
        });
    }
}
