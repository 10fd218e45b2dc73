//! What a fiber waits for, recorded as cheaply as a word store (docs/observability.md, "Dumps").
//!
//! A fiber that is about to wait describes the wait in two words of its task: `wait` (a kind in
//! the top byte, a payload below: an fd, an object's address, a deadline, a fiber id) and
//! `park_site` (where in the program it waits: a compressed `&'static Location`). It writes them
//! on entering the wait and restores the previous values on leaving it ([`Scope`]), so they stay
//! put across the spurious wake-ups of the park loop and nest (a hooked libc call around an fd
//! wait). Only the fiber itself writes them; a dump reads them from any thread.
//!
//! The one rule the dumper relies on: while `wait` holds a kind, the fiber is inside the scope
//! that set it, and the object named by the payload is borrowed by that scope. So a dumper that
//! holds the fiber's run token (the fiber is suspended and cannot be resumed) may read the
//! object's [`Owner`] word: the object cannot go away before the fiber runs again. The dumper
//! never dereferences a payload otherwise.
//!
//! Also here: the lock owner word ([`Owner`]) that `Mutex` and `RwLock` keep, and the coarse
//! millisecond clock of "since" stamps.
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use std::ptr::NonNull;

use super::{context, Task};

/// Bits of the payload (below the kind byte).
pub(crate) const PAYLOAD_BITS: u32 = 56;
/// The payload mask.
pub(crate) const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;

/// The kinds of wait (the top byte of `Task::wait`). Each names what its payload holds.
pub(crate) mod kind {
    /// Not waiting (running, runnable, or waiting in a way nobody described).
    pub(crate) const NONE: u8 = 0;
    /// `fiber::park()`; no payload.
    pub(crate) const PARK: u8 = 1;
    /// `fiber::park_timeout()`; payload: the deadline ([`super::deadline_ms`]).
    pub(crate) const PARK_TIMEOUT: u8 = 2;
    /// `sleep`, `sleep_until`; payload: the deadline.
    pub(crate) const SLEEP: u8 = 3;
    /// `JoinHandle::join` (scoped too); payload: the joined fiber's id.
    pub(crate) const JOIN: u8 = 4;
    /// `Mutex::lock`; payload: the address of the mutex's [`super::Owner`].
    pub(crate) const MUTEX: u8 = 5;
    /// `RwLock::read`; payload: the address of the lock's writer [`super::Owner`].
    pub(crate) const RWLOCK_READ: u8 = 6;
    /// `RwLock::write`; payload: as `RWLOCK_READ`.
    pub(crate) const RWLOCK_WRITE: u8 = 7;
    /// `Condvar::wait*`; payload: the condvar's address.
    pub(crate) const CONDVAR: u8 = 8;
    /// A channel send; payload: the channel's address.
    pub(crate) const CHAN_SEND: u8 = 9;
    /// A channel receive; payload: the channel's address.
    pub(crate) const CHAN_RECV: u8 = 10;
    /// `select!` over several channel operations; no payload.
    pub(crate) const SELECT: u8 = 11;
    /// `Semaphore::acquire*`; payload: the semaphore's address.
    pub(crate) const SEMAPHORE: u8 = 12;
    /// `Barrier::wait`; payload: the barrier's address.
    pub(crate) const BARRIER: u8 = 13;
    /// `WaitGroup::wait*`; payload: the wait group's address.
    pub(crate) const WAITGROUP: u8 = 14;
    /// Readiness of an fd for reading; payload: the fd.
    pub(crate) const FD_READ: u8 = 15;
    /// Readiness of an fd for writing; payload: the fd.
    pub(crate) const FD_WRITE: u8 = 16;
    /// The result of `spawn_blocking`; no payload.
    pub(crate) const BLOCKING: u8 = 17;
    /// A hooked libc call; payload: the function's index in `hook_names` (bits 32..40) and the
    /// fd it waits on (bits 0..32, `u32::MAX` if none).
    pub(crate) const HOOK: u8 = 18;
    /// A scope's owner waiting for its scoped fibers; no payload.
    pub(crate) const SCOPE: u8 = 19;
    /// A fiber group's owner waiting for its members; no payload.
    pub(crate) const GROUP: u8 = 20;
}

/// How many wait kinds there are ([`kind::NONE`] to [`kind::GROUP`]): the size of a table indexed
/// by kind (parks by reason, `scheduler::stats`).
pub(crate) const KINDS: usize = kind::GROUP as usize + 1;

/// The name of a wait `kind`, as dumps (`WaitReason::kind`) and `tracing` park events give it;
/// `None` for [`kind::NONE`] or an unknown kind.
pub(crate) fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        kind::PARK => "park",
        kind::PARK_TIMEOUT => "park_timeout",
        kind::SLEEP => "sleep",
        kind::JOIN => "join",
        kind::MUTEX => "mutex",
        kind::RWLOCK_READ => "rwlock_read",
        kind::RWLOCK_WRITE => "rwlock_write",
        kind::CONDVAR => "condvar",
        kind::CHAN_SEND => "channel_send",
        kind::CHAN_RECV => "channel_recv",
        kind::SELECT => "select",
        kind::SEMAPHORE => "semaphore",
        kind::BARRIER => "barrier",
        kind::WAITGROUP => "waitgroup",
        kind::FD_READ => "fd_read",
        kind::FD_WRITE => "fd_write",
        kind::BLOCKING => "spawn_blocking",
        kind::HOOK => "hook",
        kind::SCOPE => "scope",
        kind::GROUP => "group",
        _ => return None,
    })
}

/// The word of a wait of `kind` with `payload` (truncated to [`PAYLOAD_BITS`]).
#[inline(always)]
pub(crate) const fn word(kind: u8, payload: u64) -> u64 {
    ((kind as u64) << PAYLOAD_BITS) | (payload & PAYLOAD_MASK)
}

/// The kind of a wait word.
#[inline(always)]
pub(crate) const fn kind_of(word: u64) -> u8 {
    (word >> PAYLOAD_BITS) as u8
}

/// The payload of a wait word.
#[inline(always)]
pub(crate) const fn payload_of(word: u64) -> u64 {
    word & PAYLOAD_MASK
}

/// The word for an object at `addr` (its address is all the payload says). The address is
/// exposed: a dump may read an [`Owner`] at it (see the module docs for when).
#[inline(always)]
pub(crate) fn at<T: ?Sized>(kind: u8, addr: *const T) -> u64 {
    word(kind, addr.cast::<()>().expose_provenance() as u64)
}

// ---- park sites --------------------------------------------------------------------------------

/// A reference point in this binary's static data: park sites are stored as 32-bit offsets from
/// it (the header is budgeted, see `the_task_header_stays_small`). `Location`s live in the static
/// data of the binary that calls the blocking API; in the rare layout where one lies more than
/// 2 GiB away (a huge binary, a location in another shared object), the site is recorded as
/// unknown (0).
static ANCHOR: u8 = 0;

/// The compressed form of a park site; 0 for "unknown".
#[inline(always)]
pub(crate) fn encode_site(site: &'static Location<'static>) -> u32 {
    // Exposed, so that `decode_site` may rebuild a pointer to it from the address alone.
    let addr = (site as *const Location<'static>).expose_provenance() as isize;
    let anchor = std::ptr::addr_of!(ANCHOR).addr() as isize;
    match i32::try_from(addr.wrapping_sub(anchor)) {
        Ok(0) | Err(_) => 0,
        Ok(offset) => offset as u32,
    }
}

/// The park site `encode_site` compressed, if known.
pub(crate) fn decode_site(site: u32) -> Option<&'static Location<'static>> {
    if site == 0 {
        return None;
    }
    let anchor = std::ptr::addr_of!(ANCHOR).addr() as isize;
    let addr = anchor.wrapping_add(site as i32 as isize) as usize;
    let ptr = std::ptr::with_exposed_provenance::<Location<'static>>(addr);
    // SAFETY: every non-zero value of a `park_site` word was produced by `encode_site` from a
    // `&'static Location` whose provenance it exposed; static data is never freed or written.
    Some(unsafe { &*ptr })
}

// ---- the scope of a wait -----------------------------------------------------------------------

/// The wait the running fiber describes, for as long as this lives; restores the outer one when
/// dropped (on every path: a cancellation unwinds through waits). On a plain OS thread, nothing.
#[must_use]
pub(crate) struct Scope {
    /// The running task and its outer wait word and site (`None` on a plain thread, or where
    /// the scope describes nothing). The task outlives the scope: a scope lives on its fiber's
    /// stack, inside the fiber's run.
    outer: Option<(NonNull<Task>, u64, u32)>,
}

impl Scope {
    /// Describes `word` at `site` on `task` (the running fiber's).
    #[inline(always)]
    fn on(task: &Task, word: u64, site: u32) -> Scope {
        let (outer_word, outer_site) = task.enter_wait(word, site);
        Scope {
            outer: Some((NonNull::from(task), outer_word, outer_site)),
        }
    }
}

/// Enters a wait described by `word` at `site` (see the module docs).
#[inline]
pub(crate) fn enter(word: u64, site: &'static Location<'static>) -> Scope {
    enter_site(word, encode_site(site))
}

/// As [`enter`] with a compressed site (0: unknown; the net and fd APIs do not pass their
/// callers' locations down).
#[inline]
pub(crate) fn enter_site(word: u64, site: u32) -> Scope {
    context::with_task(|task| Scope::on(task, word, site)).unwrap_or(Scope { outer: None })
}

/// As [`enter`], for a caller that has the running fiber's task at hand.
#[inline]
pub(crate) fn enter_on(task: &Task, word: u64, site: &'static Location<'static>) -> Scope {
    Scope::on(task, word, encode_site(site))
}

/// As [`enter`], unless the fiber already describes a wait (a `Barrier` around its condvar).
#[inline]
pub(crate) fn enter_unless_described(word: u64, site: &'static Location<'static>) -> Scope {
    enter_site_unless_described(word, encode_site(site))
}

/// As [`enter_site`], unless the fiber already describes a wait (a hooked libc call around the
/// fd wait it causes keeps the function's name).
#[inline]
pub(crate) fn enter_site_unless_described(word: u64, site: u32) -> Scope {
    context::with_task(|task| {
        if kind_of(task.wait.load(Ordering::Relaxed)) == kind::NONE {
            Scope::on(task, word, site)
        } else {
            Scope { outer: None }
        }
    })
    .unwrap_or(Scope { outer: None })
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        if let Some((task, word, site)) = self.outer {
            // SAFETY: the scope was made on the running fiber's task (`Scope::on`) and is
            // dropped on that fiber's stack, during its run: the worker holds the task alive.
            unsafe { task.as_ref() }.leave_wait(word, site);
        }
    }
}

// ---- hooked libc calls -------------------------------------------------------------------------

/// The names of the hooked functions a `kind::HOOK` word may carry (by index; 0 is unknown).
pub(crate) const HOOK_NAMES: &[&str] = &[
    "?",
    "read",
    "write",
    "readv",
    "writev",
    "recv",
    "recvfrom",
    "recvmsg",
    "send",
    "sendto",
    "sendmsg",
    "accept",
    "accept4",
    "connect",
    "poll",
    "ppoll",
    "select",
    "pselect",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
];

/// The index of `name` in [`HOOK_NAMES`] (0 if absent), for `const` use at each hook.
#[cfg(fiber_hook)]
pub(crate) const fn hook_index(name: &str) -> u8 {
    let name = name.as_bytes();
    let mut i = 1;
    while i < HOOK_NAMES.len() {
        let candidate = HOOK_NAMES[i].as_bytes();
        if candidate.len() == name.len() {
            let mut j = 0;
            while j < name.len() && candidate[j] == name[j] {
                j += 1;
            }
            if j == name.len() {
                return i as u8;
            }
        }
        i += 1;
    }
    0
}

/// Describes a hooked libc call of the running fiber (function `index`, waiting on `fd`, or
/// -1 if on none) for as long as the scope lives; an fd wait inside keeps this description.
#[cfg(fiber_hook)]
#[inline]
pub(crate) fn enter_hook(index: u8, fd: i32) -> Scope {
    enter_site(
        word(kind::HOOK, (u64::from(index) << 32) | u64::from(fd as u32)),
        0,
    )
}

// ---- lock owners -------------------------------------------------------------------------------

/// Who holds a lock: the id of its fiber (or of the OS thread, see `park::current`), 0 if nobody
/// (or nobody known). Written by the holder, one plain store on lock and one on unlock; read by
/// dumps (see the module docs for when that is sound).
pub(crate) struct Owner(AtomicU64);

impl Owner {
    pub(crate) const fn new() -> Owner {
        Owner(AtomicU64::new(0))
    }

    /// The caller now holds the lock.
    #[inline(always)]
    pub(crate) fn acquired(&self) {
        self.0.store(current_id(), Ordering::Relaxed);
    }

    /// The lock is released (or handed on; the next holder records itself).
    #[inline(always)]
    pub(crate) fn released(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// The holder's id, 0 if none is recorded.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The id of the calling fiber, or of the calling OS thread.
#[inline(always)]
pub(crate) fn current_id() -> u64 {
    match context::with_task(|task| task.id.as_u64()) {
        Some(id) => id,
        None => super::park::thread_id().as_u64(),
    }
}

// ---- the coarse clock --------------------------------------------------------------------------

/// The instant "since" stamps and wait deadlines count from (the first use in the process).
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds from [`base`] to `at` (0 if before), saturated to the payload width.
#[inline]
pub(crate) fn deadline_ms(at: Instant) -> u64 {
    (at.saturating_duration_since(base()).as_millis() as u64).min(PAYLOAD_MASK)
}

/// The "on a worker right now" bit of `Task::since`; the other 31 bits are milliseconds since
/// [`base`], modulo 2^31 (24.8 days).
pub(crate) const ON_CPU: u32 = 1 << 31;

/// `Task::since` of a finished fiber (never a stamp: stamps stay below `ON_CPU - 1`).
pub(crate) const FINISHED: u32 = u32::MAX;

/// Milliseconds since [`base`] modulo 2^31 - 1: the form of a "since" stamp. Reads the clock.
pub(crate) fn now_stamp() -> u32 {
    (base().elapsed().as_millis() % (ON_CPU as u128 - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = word(kind::FD_READ, 17);
        assert_eq!(kind_of(w), kind::FD_READ);
        assert_eq!(payload_of(w), 17);
        let w = word(kind::JOIN, u64::MAX);
        assert_eq!(kind_of(w), kind::JOIN);
        assert_eq!(payload_of(w), PAYLOAD_MASK);
    }

    #[test]
    #[track_caller]
    fn sites_round_trip() {
        let here = Location::caller();
        let code = encode_site(here);
        assert_ne!(
            code, 0,
            "a location of this binary is within 2 GiB of the anchor"
        );
        let back = decode_site(code).expect("known");
        assert_eq!((back.file(), back.line()), (here.file(), here.line()));
    }

    #[test]
    fn every_kind_but_none_has_a_distinct_name() {
        assert_eq!(kind_name(kind::NONE), None);
        let names: Vec<_> = (1..KINDS as u8)
            .map(|k| kind_name(k).unwrap_or_else(|| panic!("kind {k} has no name")))
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(kind_name(KINDS as u8), None);
    }
}
