//! The fd-keyed table: for each fd a fiber has used, whether it is a socket, and for a socket its
//! reactor registration and its user-visible mode (blocking or not, timeouts); for an epoll fd a
//! fiber waited on in `epoll_wait`, the registration of its own readiness.
//!
//! A socket is classified the first time a fiber makes a hooked call on it (`SO_TYPE`,
//! `F_GETFL`, the two timeouts: a few syscalls once per fd), and switched to kernel non-blocking
//! mode then, its user-visible mode kept here: `fcntl(F_GETFL/F_SETFL)` and `ioctl(FIONBIO)` on
//! it read and write the table, never the kernel flag. Fds nobody classified are left alone, so
//! their kernel flags are the user's, and classification reads them from there.
//!
//! `close`, `dup2`, `dup3` and `close_range` forget the fds they end before the real call (a
//! registration, a socket's or an epoll fd's, is dropped then, while the number still names the
//! file), so a reused fd number is classified afresh. A dup of an epoll fd starts unknown and
//! gets a registration of its own when a fiber waits on it. An fd closed behind the hooks' back (glibc's internal
//! close in `fclose`, a raw syscall) leaves its entry until the number is closed through them.
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libc::c_int;
use parking_lot::Mutex;

use crate::driver::io::{Options, Registration};

/// A socket the hooks manage: kernel non-blocking, waited for through the reactor.
pub(super) struct Socket {
    pub(super) reg: Registration,
    /// Shared by dups of the fd, as the kernel shares the file description's flags.
    pub(super) opts: Arc<Options>,
    /// `SOCK_STREAM`: a short read shows the receive queue empty (see `driver::io::run`).
    pub(super) stream: bool,
    /// Set once a fiber's `accept` has looked at the socket's backlog (see `socket::accept`).
    pub(super) backlog_checked: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
enum Entry {
    /// Not classified yet (or forgotten by a close).
    #[default]
    Unknown,
    /// Not a socket: hooked calls pass straight through.
    Other,
    Socket(Arc<Socket>),
    /// An epoll instance a fiber waited on in `epoll_wait`: its own readiness is registered with
    /// the reactor (an epoll fd is readable while it has events).
    Epoll(Arc<Registration>),
}

impl Entry {
    fn kind(&self) -> u8 {
        match self {
            Entry::Unknown => UNKNOWN,
            Entry::Other => OTHER,
            Entry::Socket(_) => SOCKET,
            Entry::Epoll(_) => EPOLL,
        }
    }
}

/// What a slot holds, readable without its lock, so that calls on fds that hold no managed
/// socket (non-sockets in fibers, a plain thread's `EAGAIN` check) take no lock. Written under
/// the lock; `CLASSIFYING` while a classification runs, before it switches the kernel mode.
const UNKNOWN: u8 = 0;
const OTHER: u8 = 1;
const SOCKET: u8 = 2;
const CLASSIFYING: u8 = 3;
const EPOLL: u8 = 4;

/// One fd's entry, and its kind for the lock-free checks.
struct Slot {
    kind: AtomicU8,
    entry: Mutex<Entry>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            kind: AtomicU8::new(UNKNOWN),
            entry: Mutex::new(Entry::Unknown),
        }
    }

    /// Stores `new` through the held lock `entry`; returns the old entry.
    fn replace(&self, entry: &mut Entry, new: Entry) -> Entry {
        self.kind.store(new.kind(), Ordering::Release);
        std::mem::replace(entry, new)
    }

    /// Forgets the entry; returns it (to be dropped, which deregisters a socket).
    fn take(&self) -> Entry {
        if self.kind.load(Ordering::Acquire) == UNKNOWN {
            return Entry::Unknown;
        }
        let mut entry = self.entry.lock();
        self.replace(&mut entry, Entry::Unknown)
    }
}

const PAGE: usize = 1024;
const PAGES: usize = 1024;

/// Fds up to `PAGE * PAGES` (about a million); larger ones pass through.
static TABLE: [OnceLock<Box<[Slot]>>; PAGES] = [const { OnceLock::new() }; PAGES];

fn slot(fd: c_int) -> Option<&'static Slot> {
    let fd = usize::try_from(fd).ok()?;
    let page = TABLE.get(fd / PAGE)?;
    let page = page.get_or_init(|| (0..PAGE).map(|_| Slot::new()).collect());
    Some(&page[fd % PAGE])
}

/// The socket behind `fd`, classifying `fd` on first use; `None` if it is not a socket (or not
/// an open fd), for which hooked calls go to libc unchanged.
pub(super) fn socket(fd: c_int) -> Option<Arc<Socket>> {
    let slot = slot(fd)?;
    if slot.kind.load(Ordering::Acquire) == OTHER {
        return None;
    }
    let mut entry = slot.entry.lock();
    match &*entry {
        Entry::Socket(s) => Some(s.clone()),
        Entry::Other | Entry::Epoll(_) => None,
        Entry::Unknown => {
            // Before classify switches the kernel mode: a plain thread that gets EAGAIN from
            // that switch must find this slot busy (and wait for the lock), not empty.
            slot.kind.store(CLASSIFYING, Ordering::SeqCst);
            let (classified, socket) = classify(fd);
            let _ = slot.replace(&mut entry, classified.unwrap_or_default());
            socket
        }
    }
}

/// The socket behind `fd` if a fiber has classified it already (no syscall).
pub(super) fn known(fd: c_int) -> Option<Arc<Socket>> {
    let slot = existing_slot(fd)?;
    if matches!(slot.kind.load(Ordering::SeqCst), UNKNOWN | OTHER) {
        return None;
    }
    match &*slot.entry.lock() {
        Entry::Socket(s) => Some(s.clone()),
        _ => None,
    }
}

/// The registration of the epoll fd `fd`, if `epoll_wait` in a fiber made one (no syscall).
pub(super) fn known_epoll(fd: c_int) -> Option<Arc<Registration>> {
    let slot = existing_slot(fd)?;
    if slot.kind.load(Ordering::Acquire) != EPOLL {
        return None;
    }
    match &*slot.entry.lock() {
        Entry::Epoll(reg) => Some(reg.clone()),
        _ => None,
    }
}

/// Records `fd` as an epoll fd with a fresh registration and returns it. The caller has just
/// seen a real `epoll_wait` on `fd` succeed, so whatever the entry said before (a number reused
/// behind the hooks' back) is stale. `None` for fds beyond the table.
pub(super) fn adopt_epoll(fd: c_int) -> Option<Arc<Registration>> {
    let reg = Arc::new(Registration::new());
    let slot = slot(fd)?;
    let old = slot.replace(&mut slot.entry.lock(), Entry::Epoll(reg.clone()));
    drop(old);
    Some(reg)
}

/// Forgets `fd` (it is being closed or replaced): its registration is dropped (deregistered)
/// now, while the number still names the same file.
pub(super) fn forget(fd: c_int) {
    if let Some(slot) = existing_slot(fd) {
        drop(slot.take());
    }
}

/// Forgets every fd in `first..=last` that has an entry.
pub(super) fn forget_range(first: u32, last: u32) {
    let end = (u64::from(last) + 1).min((PAGE * PAGES) as u64) as usize;
    let mut fd = first as usize;
    while fd < end {
        let Some(page) = TABLE[fd / PAGE].get() else {
            fd = (fd / PAGE + 1) * PAGE;
            continue;
        };
        let stop = end.min((fd / PAGE + 1) * PAGE);
        for slot in &page[fd % PAGE..(stop - 1) % PAGE + 1] {
            drop(slot.take());
        }
        fd = stop;
    }
}

/// Makes `new` a dup of the socket `old` (same user-visible mode, a registration of its own).
pub(super) fn dup(old: &Socket, new: c_int) {
    if let Some(slot) = slot(new) {
        let socket = Entry::Socket(Arc::new(Socket {
            reg: Registration::new(),
            opts: old.opts.clone(),
            stream: old.stream,
            backlog_checked: std::sync::atomic::AtomicBool::new(false),
        }));
        let old_entry = slot.replace(&mut slot.entry.lock(), socket);
        drop(old_entry);
    }
}

fn existing_slot(fd: c_int) -> Option<&'static Slot> {
    let fd = usize::try_from(fd).ok()?;
    Some(&TABLE.get(fd / PAGE)?.get()?[fd % PAGE])
}

/// Classifies `fd`: the entry to cache (`None`: nothing cacheable, e.g. a bad fd) and the socket.
fn classify(fd: c_int) -> (Option<Entry>, Option<Arc<Socket>>) {
    let mut ty: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `ty` and `len` are valid and writable, `len` is the size of `ty`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &mut len,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error().raw_os_error();
        return match e {
            Some(libc::ENOTSOCK) => (Some(Entry::Other), None),
            _ => (None, None),
        };
    }
    // libc's own fcntl: ours would take this entry's lock again.
    let Some(fcntl) = super::socket::real_fcntl() else {
        return (None, None);
    };
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return (None, None);
    }
    let user_nonblocking = flags & libc::O_NONBLOCK != 0;
    if !user_nonblocking {
        // SAFETY: F_SETFL with an int argument only changes the file status flags.
        if unsafe { fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return (None, None);
        }
    }
    let opts = Options::new(user_nonblocking);
    // The kernel accepted these, so they are not zero.
    let _ = opts.set_read_timeout(timeout(fd, libc::SO_RCVTIMEO));
    let _ = opts.set_write_timeout(timeout(fd, libc::SO_SNDTIMEO));
    let socket = Arc::new(Socket {
        reg: Registration::new(),
        opts: Arc::new(opts),
        stream: ty == libc::SOCK_STREAM,
        backlog_checked: std::sync::atomic::AtomicBool::new(false),
    });
    (Some(Entry::Socket(socket.clone())), Some(socket))
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO` of `fd` (`None`: no timeout).
fn timeout(fd: c_int, name: c_int) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are valid and writable, `len` is the size of `tv`.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut tv).cast(), &mut len) };
    if r != 0 {
        return None;
    }
    timeval_duration(&tv)
}

/// A socket timeout as the kernel reads it: zero is "none".
pub(super) fn timeval_duration(tv: &libc::timeval) -> Option<Duration> {
    let d = Duration::from_secs(tv.tv_sec.max(0) as u64)
        + Duration::from_micros(tv.tv_usec.clamp(0, 999_999) as u64);
    (!d.is_zero()).then_some(d)
}
