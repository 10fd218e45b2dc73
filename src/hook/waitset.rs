//! A temporary epoll instance over the caller's fds: how `poll` and `select` park a fiber on
//! several fds, or on fds that are not sockets (pipes, eventfds, timerfds, a user's epoll fd).
//!
//! The set holds each fd with the events asked (level-triggered), and the set's own fd is
//! registered with the worker's reactor for read readiness: an epoll fd is readable while any
//! member is ready, and every new readiness of a member wakes the set's pollers, so the reactor
//! gets an edge for it. The fiber parks until then (or the deadline), and the caller's own
//! zero-timeout call (`poll`, `select`) then says what is ready, with libc's exact semantics.
//!
//! No readiness is lost between the caller's first zero-timeout call and the park: adding a
//! member that is ready already queues it in the set, and registering the set with the reactor
//! reports a set that is readable already. The registration is dropped, then the set closed,
//! however the wait ends.
use std::cell::Cell;
use std::io;
use std::time::Instant;

use libc::c_int;

use super::{errno, set_errno};
use crate::driver::io::{run, Interest, Registration, Wait};
use crate::task::context::without_unwinding;

/// How a wait on a set ended.
pub(super) enum Waited {
    /// The check reported this (positive) count.
    Ready(c_int),
    /// The deadline passed with nothing ready.
    TimedOut,
    /// The check failed with this errno.
    Failed(c_int),
    /// The fiber was cancelled (runtime shutdown).
    Cancelled,
    /// The set could not be made (no fds left, a member epoll refused for a reason other than
    /// "always ready", nesting too deep) or no reactor serves the caller: the caller makes the
    /// real blocking call instead. errno is as it was.
    CannotPark,
}

/// Events a waited-on fd can ask: the readiness bits poll and epoll share (no `EPOLLET` and such).
const EVENT_BITS: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLMSG
    | libc::EPOLLRDHUP) as u32;

/// Is the caller a fiber whose worker has a reactor (so a set registered with it wakes it)?
pub(super) fn reactor_serves_caller() -> bool {
    crate::driver::context::with_current(|_| ()).is_some()
}

/// Parks the calling fiber until `check` (a zero-timeout call: `Ok(None)` nothing ready,
/// `Ok(Some(n))` n ready, `Err(errno)`) reports something, or `deadline` passes. `watch` lists
/// `(fd, epoll events)`; negative fds are skipped, duplicates merged. The caller has just made
/// the check and found nothing ready, so the first check here comes after the first wake-up.
pub(super) fn park_until(
    watch: &mut Vec<(c_int, u32)>,
    deadline: Option<Instant>,
    mut check: impl FnMut() -> Result<Option<c_int>, c_int>,
) -> Waited {
    if !reactor_serves_caller() {
        return Waited::CannotPark;
    }
    let saved = errno();
    let Some(set) = Set::new(watch) else {
        set_errno(saved);
        return Waited::CannotPark;
    };
    let wait = Wait::Timeout(deadline.map(|d| d.saturating_duration_since(Instant::now())));
    let failed = Cell::new(None);
    let mut checked_already = true;
    let (result, cancelled) = without_unwinding(|| {
        run(
            set.fd,
            &set.reg,
            Interest::READ,
            wait,
            |_| false,
            || {
                if std::mem::take(&mut checked_already) {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                match check() {
                    Ok(Some(n)) => Ok(n),
                    Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => {
                        failed.set(Some(e));
                        Err(io::Error::from_raw_os_error(e))
                    }
                }
            },
        )
    });
    drop(set);
    set_errno(saved);
    match result {
        Ok(n) => Waited::Ready(n),
        Err(_) if cancelled => Waited::Cancelled,
        Err(_) if failed.get().is_some() => Waited::Failed(failed.get().unwrap_or(libc::EIO)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Waited::TimedOut,
        // Registering the set with the reactor failed.
        Err(_) => Waited::CannotPark,
    }
}

/// The epoll fd and its reactor registration; dropping deregisters, then closes.
struct Set {
    fd: c_int,
    reg: Registration,
}

impl Set {
    /// A set watching `watch`; `None` if it cannot be made.
    fn new(watch: &mut Vec<(c_int, u32)>) -> Option<Set> {
        watch.retain(|&(fd, _)| fd >= 0);
        watch.sort_unstable_by_key(|&(fd, _)| fd);
        watch.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 |= later.1;
            }
            same
        });
        // SAFETY: no pointer arguments.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let set = Set {
            fd,
            reg: Registration::new(),
        };
        for &(member, events) in watch.iter() {
            let mut ev = libc::epoll_event {
                events: events & EVENT_BITS,
                u64: 0,
            };
            // SAFETY: `ev` is a valid epoll_event; `set.fd` is our epoll fd.
            let r = unsafe { libc::epoll_ctl(set.fd, libc::EPOLL_CTL_ADD, member, &mut ev) };
            // EPERM: epoll refuses regular files and directories, which poll and select report
            // always ready for reading and writing (the caller's check saw that) and never for
            // anything else: nothing to wait for.
            if r < 0 && errno() != libc::EPERM {
                return None;
            }
        }
        Some(set)
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        // Deregister from the reactor while the fd is still open, then close it.
        drop(std::mem::take(&mut self.reg));
        // SAFETY: `fd` is the epoll fd this set owns; nothing uses it after this.
        unsafe { libc::close(self.fd) };
    }
}
