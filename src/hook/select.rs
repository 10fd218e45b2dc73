//! `select` and `pselect`: as `poll` on several fds (`poll.rs`), with the kernel's own
//! `select` as the check. In a fiber a real `select` with a zero timeout on copies of the sets
//! comes first; if it reports something or fails, that is the answer. Otherwise the fiber parks on
//! a temporary epoll set (`waitset`) of the fds in the sets (read: `EPOLLIN`, write: `EPOLLOUT`,
//! except: `EPOLLPRI`) and makes the zero-timeout `select` again at each wake-up. So the sets
//! written back, `EBADF` and every other result are the kernel's.
//!
//! - `nfds` negative or above `FD_SETSIZE` goes to libc: `EINVAL` for a negative one; sets larger
//!   than an `fd_set` are the caller's memory of a size only the caller knows (libc's call blocks
//!   the carrier then).
//! - `select`'s timeout: negative seconds or microseconds are `EINVAL` (libc's), microseconds of
//!   a million or more count as seconds, as glibc normalises them. Linux writes the time left
//!   into the `timeval`, and so does the hook, however the call ends.
//! - `pselect` with a signal mask goes to libc, as `ppoll` does (`poll.rs`); with a null mask it
//!   is `select` with a `timespec`, which it does not write back (glibc's does not either).
use std::time::{Duration, Instant};

use libc::{c_int, c_ulong, fd_set, sigset_t, timespec, timeval, FD_SETSIZE};

use super::poll::{read_limit, Limit};
use super::real::real;
use super::waitset::{self, Waited};
use super::{enosys, errno, in_hooked_fiber, set_errno};

real!(
    REAL_SELECT,
    real_select,
    c"select",
    fn(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, tv: *mut timeval) -> c_int,
    enosys()
);
real!(
    REAL_PSELECT,
    real_pselect,
    c"pselect",
    fn(
        n: c_int,
        r: *mut fd_set,
        w: *mut fd_set,
        e: *mut fd_set,
        ts: *const timespec,
        mask: *const sigset_t,
    ) -> c_int,
    enosys()
);

const WORD_BITS: usize = c_ulong::BITS as usize;
/// An `fd_set` as the kernel reads it: `FD_SETSIZE` bits in native words.
type Words = [c_ulong; FD_SETSIZE / WORD_BITS];
const _: () = assert!(std::mem::size_of::<Words>() == std::mem::size_of::<fd_set>());

/// `select(2)`.
///
/// # Safety
/// As libc's: each set is null or points to a writable `fd_set`, `tv` is null or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn select(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("select") }, -1);
    let fits = usize::try_from(n).is_ok_and(|n| n <= FD_SETSIZE);
    // SAFETY: `tv` is null or readable (the caller's contract).
    let limit = unsafe { read_timeval(tv) };
    let deadline = match limit {
        Some(Limit::For(d)) if !d.is_zero() && fits && in_hooked_fiber() => {
            Instant::now().checked_add(d)
        }
        Some(Limit::Forever) if fits && in_hooked_fiber() => None,
        // SAFETY: forwarded under the caller's contract.
        _ => return unsafe { real_select(n, r, w, e, tv) },
    };
    // SAFETY: the caller's contract.
    let result = unsafe { select_until(n, [r, w, e], deadline) };
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        // SAFETY: a deadline came from a non-null `tv`, writable (the caller's contract).
        unsafe {
            *tv = timeval {
                tv_sec: left.as_secs() as libc::time_t,
                tv_usec: left.subsec_micros().into(),
            }
        };
    }
    result
}

/// `pselect(2)`: with a null signal mask, `select` with a `timespec`; with a mask, libc's.
///
/// # Safety
/// As libc's: each set is null or points to a writable `fd_set`, `ts` is null or readable.
#[no_mangle]
pub(crate) unsafe extern "C" fn pselect(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let _wait =
        crate::task::reason::enter_hook(const { crate::task::reason::hook_index("pselect") }, -1);
    let hooked =
        usize::try_from(n).is_ok_and(|n| n <= FD_SETSIZE) && mask.is_null() && in_hooked_fiber();
    // SAFETY: `ts` is null or readable (the caller's contract).
    let limit = unsafe { read_limit(ts) };
    let deadline = match limit {
        Some(Limit::For(d)) if !d.is_zero() && hooked => Instant::now().checked_add(d),
        Some(Limit::Forever) if hooked => None,
        // SAFETY: forwarded under the caller's contract.
        _ => return unsafe { real_pselect(n, r, w, e, ts, mask) },
    };
    // SAFETY: the caller's contract.
    unsafe { select_until(n, [r, w, e], deadline) }
}

/// A `timeval` timeout as glibc's `select` reads it; `None`: invalid (`EINVAL`).
///
/// # Safety
/// `tv` is null or points to a readable `timeval`.
unsafe fn read_timeval(tv: *const timeval) -> Option<Limit> {
    // SAFETY: null or readable (the caller's contract).
    let Some(tv) = (unsafe { tv.as_ref() }) else {
        return Some(Limit::Forever);
    };
    if tv.tv_sec < 0 || tv.tv_usec < 0 {
        return None;
    }
    let d =
        Duration::from_secs(tv.tv_sec as u64).checked_add(Duration::from_micros(tv.tv_usec as u64));
    Some(d.map_or(Limit::Forever, Limit::For))
}

/// `select` in a hooked fiber with `0 <= n <= FD_SETSIZE`, until `deadline` (`None`: no limit).
///
/// # Safety
/// Each of `sets` is null or points to a writable `fd_set`.
unsafe fn select_until(n: c_int, sets: [*mut fd_set; 3], deadline: Option<Instant>) -> c_int {
    // The sets asked: each check writes its results over the caller's.
    // SAFETY: each is null or readable (the caller's contract).
    let asked = sets.map(|s| unsafe { s.as_ref() }.copied());
    let check = || -> c_int {
        let mut copies = asked;
        let [r, w, e] = copies.each_mut().map(|c| {
            c.as_mut()
                .map_or(std::ptr::null_mut(), |c| c as *mut fd_set)
        });
        let mut zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: the copies are valid fd_sets, `n` fits them; a zero timeout only reports.
        let found = unsafe { real_select(n, r, w, e, &mut zero) };
        if found >= 0 {
            for (user, result) in sets.iter().zip(copies) {
                if let Some(result) = result {
                    // SAFETY: non-null where the copy is, writable (the caller's contract).
                    unsafe { **user = result };
                }
            }
        }
        found
    };
    let found = check();
    if found != 0 || deadline.is_some_and(|d| d <= Instant::now()) {
        return found;
    }
    let mut watch = interest(n as usize, &asked);
    let waited = waitset::park_until(&mut watch, deadline, || match check() {
        0 => Ok(None),
        found if found > 0 => Ok(Some(found)),
        _ => Err(errno()),
    });
    match waited {
        Waited::Ready(found) => found,
        // The last check wrote empty sets, as a select that times out does.
        Waited::TimedOut => 0,
        Waited::Failed(e) => {
            set_errno(e);
            -1
        }
        Waited::Cancelled => {
            set_errno(libc::ECANCELED);
            -1
        }
        Waited::CannotPark => {
            for (user, asked) in sets.iter().zip(asked) {
                if let Some(asked) = asked {
                    // SAFETY: as in `check`.
                    unsafe { **user = asked };
                }
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let mut tv = left.map(|d| timeval {
                tv_sec: d.as_secs() as libc::time_t,
                tv_usec: d.subsec_micros().into(),
            });
            let tv = tv
                .as_mut()
                .map_or(std::ptr::null_mut(), |tv| tv as *mut timeval);
            let [r, w, e] = sets;
            // SAFETY: the caller's contract.
            unsafe { real_select(n, r, w, e, tv) }
        }
    }
}

/// The `(fd, epoll events)` the sets ask for, fds below `n`.
fn interest(n: usize, sets: &[Option<fd_set>; 3]) -> Vec<(c_int, u32)> {
    let events = [libc::EPOLLIN, libc::EPOLLOUT, libc::EPOLLPRI].map(|e| e as u32);
    let words = sets.map(|s| s.map(words));
    let mut watch = Vec::new();
    for fd in 0..n {
        let mut asked = 0;
        for (set, event) in words.iter().zip(events) {
            if let Some(set) = set {
                if set[fd / WORD_BITS] >> (fd % WORD_BITS) & 1 != 0 {
                    asked |= event;
                }
            }
        }
        if asked != 0 {
            watch.push((fd as c_int, asked));
        }
    }
    watch
}

fn words(set: fd_set) -> Words {
    // SAFETY: an fd_set is exactly `FD_SETSIZE` bits in native words (asserted in size above;
    // glibc's `__fd_mask fds_bits[FD_SETSIZE / NFDBITS]`), and every bit pattern is valid.
    unsafe { std::mem::transmute::<fd_set, Words>(set) }
}
