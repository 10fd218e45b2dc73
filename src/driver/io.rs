//! Readiness slots, registrations, and the one "try → WouldBlock → wait → retry" loop.
//!
//! # Design
//!
//! Every socket is non-blocking in the kernel. An operation first simply *tries* the syscall; only
//! when the kernel says `WouldBlock` does it wait, and how it waits depends on where it runs:
//!
//! - **Inside a fiber** (`current_handle()` is `Some`), the fd is registered (lazily, on its first
//!   wait) with the runtime's `mio::Registry`, edge-triggered, for read *and* write readiness. The
//!   registration owns one [`Slot`] of a global slot table: the mio token names the slot (index +
//!   generation). The reactor calls [`dispatch`] for each event; dispatch ORs the readiness bits into
//!   the slot, bumps the slot's *tick*, and unparks the waiters whose interest became ready.
//! - **On a plain OS thread**, the call waits in `poll(2)` on the fd with the remaining timeout, so
//!   the same type behaves like `std`'s blocking sockets.
//!
//! # Why no edge is lost (the tick protocol)
//!
//! Edge-triggered epoll reports a readiness change once. The slot therefore *remembers* readiness
//! (bits in an atomic word) until an operation proves it stale by getting `WouldBlock`. The word
//! also carries a tick, incremented by every dispatch. An operation loads the word (the
//! *snapshot*) **before** its syscall; on `WouldBlock` it clears its interest bits **only if the
//! tick still equals the snapshot's** (compare-and-swap). So an event delivered between the syscall
//! and the clear bumps the tick, the clear fails, the bits stay set, and the wait returns at once.
//! The wait itself pushes the fiber on the slot's waiter list and re-checks the bits *under the
//! waiter lock*; dispatch sets the bits and removes the waiters they satisfy *in one critical
//! section of that lock*. Either the waiter sees the bits, or dispatch sees the waiter and unparks
//! it (park/unpark keep a token, so an unpark that arrives before the park is not lost either).
//! A waiter that wakes and finds no readiness (spurious wake-up, or another reader consumed it)
//! puts itself back on the list before parking again.
//!
//! # Lifetime of slots
//!
//! Slots live in pages that are allocated on demand and never freed, so [`dispatch`] can look a
//! token up without locks and without `unsafe`. A freed slot's generation is bumped: events still
//! in flight for the old registration are ignored. If such an event races with the generation
//! bump it can at worst set readiness on the slot's next owner, which is a *spurious* readiness:
//! the next operation gets `WouldBlock` and clears it. Spurious wake-ups are part of the contract.
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use parking_lot::Mutex;

use super::{current_handle, Handle, WAKER_TOKEN};
use crate::Fiber;

/// Readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(usize);

impl Interest {
    /// Readable (also: read side closed, error).
    pub(crate) const READ: Interest = Interest(READABLE | READ_CLOSED);
    /// Writable (also: write side closed, error).
    pub(crate) const WRITE: Interest = Interest(WRITABLE);
}

const READABLE: usize = 0b001;
const WRITABLE: usize = 0b010;
/// The read side is closed (or the socket failed). Kept apart from `READABLE` because a short read
/// clears only `READABLE`: an end of stream queued behind the last bytes gets no edge of its own,
/// so it must stay visible to the next read.
const READ_CLOSED: usize = 0b100;
const READY_MASK: usize = READABLE | WRITABLE | READ_CLOSED;
/// One tick in the readiness word; the tick occupies the bits above the readiness bits and wraps.
const TICK: usize = 0b1000;

// ---------------------------------------------------------------------------------------------
// Slots and the global slot table
// ---------------------------------------------------------------------------------------------

/// Readiness state of one registered fd.
struct Slot {
    /// Generation of the current owner (31 bits). Bumped when the slot is freed.
    generation: AtomicU32,
    /// Readiness bits (`READY_MASK`) plus a wrapping tick (the bits above).
    readiness: AtomicUsize,
    /// Fibers parked until this fd becomes ready.
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    list: Vec<Waiter>,
    next_key: u64,
}

struct Waiter {
    key: u64,
    interest: usize,
    fiber: Fiber,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            generation: AtomicU32::new(0),
            readiness: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Records `ready`, bumps the tick, and unparks the waiters it satisfies.
    ///
    /// The bits are set *under the waiter lock*: so every waiter this call removes registered
    /// before these bits were set (it checked them under the same lock). Setting them before
    /// taking the lock would let a waiter that already consumed this readiness, and registered
    /// again, be removed by this call and never woken by the next one.
    fn set_ready(&self, ready: usize) {
        let mut w = self.waiters.lock();
        // Cannot fail: the closure always returns `Some`.
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.wrapping_add(TICK) | ready)
            });
        w.list.retain(|waiter| {
            if waiter.interest & ready != 0 {
                waiter.fiber.unpark();
                false
            } else {
                true
            }
        });
    }

    /// Clears `interest` unless a dispatch happened since `snapshot` was loaded.
    fn clear(&self, snapshot: usize, interest: usize) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        while cur & !READY_MASK == snapshot & !READY_MASK && cur & interest != 0 {
            match self.readiness.compare_exchange_weak(
                cur,
                cur & !interest,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// After a short read from a stream (fewer bytes than asked: the receive queue was empty),
    /// clears `READABLE` unless a dispatch happened since `snapshot` or the read side is closed.
    /// Bytes that arrive after the read's copy raise a new edge, so the next read may wait for
    /// that instead of making a `recv` that can only say `WouldBlock`.
    fn clear_after_short_read(&self, snapshot: usize) {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & !READY_MASK == snapshot & !READY_MASK && cur & READ_CLOSED == 0 {
            // A failed exchange means the word changed (a dispatch, or another reader's clear):
            // keep the bits, at worst one `recv` says `WouldBlock`.
            let _ = self.readiness.compare_exchange(
                cur,
                cur & !READABLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn is_ready(&self, interest: usize) -> bool {
        self.readiness.load(Ordering::Acquire) & interest != 0
    }

    /// Parks the calling fiber until `interest` is ready (`true`) or `deadline` passes (`false`).
    fn wait(&self, interest: usize, deadline: Option<Instant>) -> bool {
        if self.is_ready(interest) {
            return true;
        }
        let key = {
            let mut w = self.waiters.lock();
            // Re-check under the lock: dispatch sets the bits while holding it.
            if self.is_ready(interest) {
                return true;
            }
            let key = w.next_key;
            w.next_key = w.next_key.wrapping_add(1);
            w.list.push(Waiter {
                key,
                interest,
                fiber: crate::current(),
            });
            key
        };
        let _cancel = RemoveOnUnwind { slot: self, key };
        loop {
            match deadline {
                None => crate::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.waiters.lock().list.retain(|w| w.key != key);
                        return self.is_ready(interest);
                    }
                    crate::park_timeout(deadline - now);
                }
            }
            // Bits set after we registered were set by a dispatch that removed our entry.
            if self.is_ready(interest) {
                return true;
            }
            // Woken without readiness: a spurious wake-up, or a dispatch took our entry but
            // another waiter (a second reader of the same socket) consumed that readiness first.
            // Either way, make sure we are still on the list before parking again.
            let mut w = self.waiters.lock();
            if self.is_ready(interest) {
                w.list.retain(|w| w.key != key);
                return true;
            }
            if !w.list.iter().any(|w| w.key == key) {
                w.list.push(Waiter {
                    key,
                    interest,
                    fiber: crate::current(),
                });
            }
        }
    }
}

/// Takes a waiter off its slot's list if the waiting fiber unwinds while parked (a runtime that
/// shuts down cancels its parked fibers), so that no dispatch unparks it through a stale entry.
struct RemoveOnUnwind<'a> {
    slot: &'a Slot,
    key: u64,
}

impl Drop for RemoveOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let key = self.key;
            self.slot.waiters.lock().list.retain(|w| w.key != key);
        }
    }
}

/// Number of slots in page 0; page `k` holds `FIRST_PAGE << k` slots.
const FIRST_PAGE: usize = 64;
const PAGES: usize = 26;
const GENERATION_MASK: u32 = (1 << 31) - 1;
const _: () = assert!(
    usize::BITS == 64,
    "tokens pack index and generation into 64 bits"
);

struct Table {
    pages: [OnceLock<Box<[Slot]>>; PAGES],
    free: Mutex<FreeList>,
}

struct FreeList {
    next_unused: usize,
    free: Vec<usize>,
}

static TABLE: Table = Table {
    pages: [const { OnceLock::new() }; PAGES],
    free: Mutex::new(FreeList {
        next_unused: 0,
        free: Vec::new(),
    }),
};

/// (page, offset) of slot `index`.
fn locate(index: usize) -> (usize, usize) {
    let biased = index + FIRST_PAGE;
    let page =
        (usize::BITS - 1 - biased.leading_zeros()) as usize - FIRST_PAGE.trailing_zeros() as usize;
    (page, biased - (FIRST_PAGE << page))
}

impl Table {
    fn get(&self, index: usize) -> Option<&Slot> {
        let (page, offset) = locate(index);
        self.pages.get(page)?.get()?.get(offset)
    }

    fn alloc(&'static self) -> io::Result<(usize, &'static Slot)> {
        let index = {
            let mut free = self.free.lock();
            match free.free.pop() {
                Some(index) => index,
                None => {
                    let index = free.next_unused;
                    if locate(index).0 >= PAGES {
                        return Err(io::Error::other("fiber: reactor slot table is full"));
                    }
                    free.next_unused += 1;
                    index
                }
            }
        };
        let (page, offset) = locate(index);
        let slots =
            self.pages[page].get_or_init(|| (0..FIRST_PAGE << page).map(|_| Slot::new()).collect());
        let slot = &slots[offset];
        slot.readiness.store(0, Ordering::Release);
        Ok((index, slot))
    }

    fn free(&self, index: usize, slot: &Slot) {
        let generation = slot.generation.load(Ordering::Relaxed);
        slot.generation.store(
            generation.wrapping_add(1) & GENERATION_MASK,
            Ordering::Release,
        );
        slot.readiness.store(0, Ordering::Release);
        // A socket can only be dropped when nobody borrows it, so nobody waits on it; drop any
        // leftovers (an entry whose owner returned on a timeout race) rather than leak them.
        slot.waiters.lock().list.clear();
        self.free.lock().free.push(index);
    }
}

/// Slots currently owned by a registration (for leak tests).
#[cfg(test)]
pub(crate) fn slots_in_use() -> usize {
    let free = TABLE.free.lock();
    free.next_unused - free.free.len()
}

fn token(index: usize, generation: u32) -> mio::Token {
    mio::Token(((generation as usize) << 32) | index)
}

/// Called by the reactor for every event whose token is not `WAKER_TOKEN`.
pub(crate) fn dispatch(event: &mio::event::Event) {
    let token = event.token();
    if token == WAKER_TOKEN {
        return;
    }
    let index = token.0 & 0xffff_ffff;
    let generation = (token.0 >> 32) as u32;
    let Some(slot) = TABLE.get(index) else { return };
    if slot.generation.load(Ordering::Acquire) != generation {
        return; // a stale event for a registration that is gone
    }
    let mut ready = 0;
    if event.is_readable() || event.is_priority() {
        ready |= READABLE;
    }
    if event.is_read_closed() || event.is_error() {
        ready |= READABLE | READ_CLOSED;
    }
    if event.is_writable() || event.is_write_closed() || event.is_error() {
        ready |= WRITABLE;
    }
    if ready != 0 {
        slot.set_ready(ready);
    }
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// The registration of one fd with the reactors of one runtime; made lazily, removed on drop.
///
/// Each worker has its own reactor. The fd is registered with the reactor of the first worker
/// whose fiber waits on it, and later also with that of any other worker whose fiber waits on it,
/// all under the same token: so a waiter is always woken by its own worker's poll, never only by
/// another worker that may be busy. Every reactor dispatches into the same slot; a duplicate event
/// only sets bits that are already set.
pub(crate) struct Registration {
    state: OnceLock<Registered>,
    /// Serialises the first registration (two fibers may wait on `&socket` at once).
    init: Mutex<()>,
}

struct Registered {
    /// The first reactor registered with (in the common case, the only one).
    first: Arc<Handle>,
    /// Reactors of other workers of the same runtime registered with since.
    others: Mutex<Vec<Arc<Handle>>>,
    fd: RawFd,
    token: mio::Token,
    index: usize,
    slot: &'static Slot,
}

/// Adds `fd` to the reactor of `handle` under `token`.
fn register_with(handle: &Handle, fd: RawFd, token: mio::Token) -> io::Result<()> {
    let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
    handle
        .registry
        .register(&mut SourceFd(&fd), token, interest)?;
    // Tells the worker that its non-blocking polls are worth making.
    handle.sources.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn deregister_from(handle: &Handle, fd: RawFd) {
    let _ = handle.registry.deregister(&mut SourceFd(&fd));
    handle.sources.fetch_sub(1, Ordering::Relaxed);
}

impl Registration {
    fn new() -> Registration {
        Registration {
            state: OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    fn register(&self, handle: &Arc<Handle>, fd: RawFd) -> io::Result<&Registered> {
        let _guard = self.init.lock();
        if let Some(reg) = self.state.get() {
            return Ok(reg);
        }
        let (index, slot) = TABLE.alloc()?;
        let token = token(index, slot.generation.load(Ordering::Acquire));
        if let Err(e) = register_with(handle, fd, token) {
            TABLE.free(index, slot);
            return Err(e);
        }
        let _ = self.state.set(Registered {
            first: handle.clone(),
            others: Mutex::new(Vec::new()),
            fd,
            token,
            index,
            slot,
        });
        Ok(self.state.get().expect("just set"))
    }
}

impl Registered {
    /// Makes sure the reactor of `handle` (a worker of the same runtime) reports this fd too.
    fn include(&self, handle: &Arc<Handle>) -> io::Result<()> {
        if Arc::ptr_eq(&self.first, handle) {
            return Ok(());
        }
        let mut others = self.others.lock();
        if others.iter().any(|h| Arc::ptr_eq(h, handle)) {
            return Ok(());
        }
        register_with(handle, self.fd, self.token)?;
        others.push(handle.clone());
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(reg) = self.state.take() {
            // Deregister before the fd is closed: a dup of this fd (try_clone) keeps the open file
            // description alive, and epoll would keep reporting events for it otherwise.
            deregister_from(&reg.first, reg.fd);
            for handle in reg.others.into_inner() {
                deregister_from(&handle, reg.fd);
            }
            TABLE.free(reg.index, reg.slot);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// User-visible blocking mode and timeouts
// ---------------------------------------------------------------------------------------------

/// The user-visible blocking mode and timeouts of a socket, shared by its clones (as socket
/// options are shared by `std`'s `try_clone`d sockets). Timeouts are nanoseconds, 0 = none.
#[derive(Debug, Default)]
pub(crate) struct Options {
    nonblocking: AtomicBool,
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

fn to_nanos(dur: Option<Duration>) -> u64 {
    match dur {
        None => 0,
        Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
    }
}

fn check_timeout(dur: Option<Duration>) -> io::Result<Option<Duration>> {
    if dur == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(dur)
}

fn from_nanos(n: u64) -> Option<Duration> {
    (n != 0).then(|| Duration::from_nanos(n))
}

/// How an operation that got `WouldBlock` goes on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Return the `WouldBlock` to the caller (user-visible non-blocking mode).
    NonBlocking,
    /// Wait at most this long in total, then fail with `WouldBlock` (`EAGAIN`, as std on Unix).
    Timeout(Option<Duration>),
}

// ---------------------------------------------------------------------------------------------
// IoSource: a non-blocking fd + its registration + its options
// ---------------------------------------------------------------------------------------------

/// A kernel-non-blocking I/O object `S` with its reactor registration and user-visible options.
///
/// Field order matters: `reg` drops (deregisters) before `io` closes the fd.
pub(crate) struct IoSource<S: AsRawFd> {
    reg: Registration,
    opts: Arc<Options>,
    io: S,
}

impl<S: AsRawFd> IoSource<S> {
    /// Adopts a socket made elsewhere (`From<std::net::TcpStream>`, `FromRawFd`): switches it to
    /// kernel non-blocking mode and keeps the mode and timeouts its owner had set as the
    /// user-visible ones.
    pub(crate) fn adopt(io: S) -> IoSource<S>
    where
        S: std::os::fd::AsFd,
    {
        // Only a closed/invalid fd makes these fail, which the caller's contract excludes; then
        // the socket simply stays as it was.
        let was_nonblocking = make_nonblocking(io.as_raw_fd()).unwrap_or(false);
        let sock = socket2::SockRef::from(&io);
        let read = sock.read_timeout().ok().flatten();
        let write = sock.write_timeout().ok().flatten();
        let src = IoSource::new(io, was_nonblocking);
        src.opts
            .read_timeout
            .store(to_nanos(read), Ordering::Relaxed);
        src.opts
            .write_timeout
            .store(to_nanos(write), Ordering::Relaxed);
        src
    }

    /// Wraps `io`, which the caller has already put into kernel non-blocking mode.
    pub(crate) fn new(io: S, user_nonblocking: bool) -> IoSource<S> {
        let opts = Options {
            nonblocking: AtomicBool::new(user_nonblocking),
            ..Options::default()
        };
        IoSource::with_options(io, Arc::new(opts))
    }

    fn with_options(io: S, opts: Arc<Options>) -> IoSource<S> {
        IoSource {
            reg: Registration::new(),
            opts,
            io,
        }
    }

    /// A clone (a dup of the fd, made by the caller) that shares this source's options.
    pub(crate) fn clone_with(&self, io: S) -> IoSource<S> {
        IoSource::with_options(io, self.opts.clone())
    }

    /// The wrapped object.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// Deregisters and returns the wrapped object (still non-blocking in the kernel).
    pub(crate) fn into_inner(self) -> S {
        let IoSource { reg, io, .. } = self;
        drop(reg);
        io
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.opts.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.opts
            .read_timeout
            .store(to_nanos(check_timeout(dur)?), Ordering::Relaxed);
        Ok(())
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.opts
            .write_timeout
            .store(to_nanos(check_timeout(dur)?), Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        from_nanos(self.opts.read_timeout.load(Ordering::Relaxed))
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        from_nanos(self.opts.write_timeout.load(Ordering::Relaxed))
    }

    /// The wait policy of an operation with `interest` under the current options.
    fn wait_policy(&self, interest: Interest) -> Wait {
        if self.opts.nonblocking.load(Ordering::Relaxed) {
            Wait::NonBlocking
        } else if interest == Interest::READ {
            Wait::Timeout(self.read_timeout())
        } else {
            Wait::Timeout(self.write_timeout())
        }
    }

    /// A read-side operation (read, recv, accept, peek) under the source's options.
    pub(crate) fn read_op<T>(&self, mut f: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        self.io_op(
            Interest::READ,
            || self.wait_policy(Interest::READ),
            || f(&self.io),
        )
    }

    /// A read of at most `len` bytes from a byte stream. A short read (more than 0, fewer than
    /// `len` bytes) shows the receive queue empty, so it clears read readiness; a read that finds
    /// readiness clear waits for the reactor's next edge instead of trying a `recv` that would only
    /// return `WouldBlock` (tokio does the same). Not for datagrams: a short datagram says nothing
    /// about the queue.
    pub(crate) fn stream_read_op(
        &self,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.op(
            Interest::READ,
            || self.wait_policy(Interest::READ),
            || f(&self.io),
            Some(|n: &usize| *n != 0 && *n < len),
        )
    }

    /// A write-side operation (write, send) under the source's options.
    pub(crate) fn write_op<T>(&self, mut f: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        self.io_op(
            Interest::WRITE,
            || self.wait_policy(Interest::WRITE),
            || f(&self.io),
        )
    }

    /// The one loop: try `f`; on `WouldBlock` wait for `interest` as `policy` says, then retry.
    ///
    /// `policy` is evaluated only once the first `WouldBlock` happened, so the fast path (the
    /// syscall succeeds) costs nothing but the syscall. The timeout is a deadline for the whole
    /// call, as `SO_RCVTIMEO` bounds one blocking `recv`.
    pub(crate) fn io_op<T>(
        &self,
        interest: Interest,
        policy: impl FnOnce() -> Wait,
        f: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.op(interest, policy, f, None::<fn(&T) -> bool>)
    }

    /// [`io_op`](Self::io_op), for reads that can tell from their result that they drained the
    /// receive queue (`drained`, see [`stream_read_op`](Self::stream_read_op)).
    fn op<T>(
        &self,
        interest: Interest,
        policy: impl FnOnce() -> Wait,
        mut f: impl FnMut() -> io::Result<T>,
        drained: Option<impl Fn(&T) -> bool>,
    ) -> io::Result<T> {
        crate::scheduler::coop::spend();
        let mut reg = self.reg.state.get();
        let mut snapshot = reg.map(|r| r.slot.readiness.load(Ordering::Acquire));
        let skip = match (reg, snapshot) {
            // Readiness known clear: wait for the next edge without the syscall. Only where a
            // reactor of the caller's runtime will set the bit again (on a plain thread, or in
            // another runtime, nothing would), and only for an operation that will wait: in the
            // user's non-blocking mode a read must see whatever the kernel holds, as std's does,
            // even before the reactor has reported it.
            (Some(r), Some(s)) => {
                drained.is_some()
                    && s & interest.0 == 0
                    && !self.opts.nonblocking.load(Ordering::Relaxed)
                    && is_current(&r.first)
            }
            _ => false,
        };
        let first_err = if skip {
            io::Error::from_raw_os_error(libc::EAGAIN)
        } else {
            match attempt(&mut f, &drained, reg, snapshot) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => e,
                r => return r,
            }
        };
        self.io_op_slow(
            interest,
            policy,
            f,
            drained,
            first_err,
            &mut reg,
            &mut snapshot,
        )
    }

    /// The waiting part of [`op`](Self::op).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn io_op_slow<'a, T>(
        &'a self,
        interest: Interest,
        policy: impl FnOnce() -> Wait,
        mut f: impl FnMut() -> io::Result<T>,
        drained: Option<impl Fn(&T) -> bool>,
        first_err: io::Error,
        reg: &mut Option<&'a Registered>,
        snapshot: &mut Option<usize>,
    ) -> io::Result<T> {
        let deadline = match policy() {
            Wait::NonBlocking => return Err(first_err),
            Wait::Timeout(None) => None,
            Wait::Timeout(Some(d)) => {
                Some(Instant::now().checked_add(d).unwrap_or_else(far_future))
            }
        };
        let handle = wait_handle();
        let fd = self.io.as_raw_fd();
        loop {
            let registered = match (&handle, *reg) {
                (Some(h), Some(r)) if h.same_runtime(&r.first) => {
                    r.include(h)?;
                    Some(r)
                }
                (Some(h), None) => {
                    let r = self.reg.register(h, fd)?;
                    *reg = Some(r);
                    Some(r)
                }
                // Plain OS thread, or a fiber of another runtime than the one the fd is
                // registered with (documented gap: that fiber blocks its worker in poll(2)).
                _ => None,
            };
            let ready = match registered {
                Some(r) => {
                    if let Some(s) = *snapshot {
                        r.slot.clear(s, interest.0);
                    }
                    r.slot.wait(interest.0, deadline)
                }
                None => poll_fd(fd, interest, deadline)?,
            };
            if !ready {
                return Err(io::Error::from_raw_os_error(libc::EAGAIN));
            }
            *snapshot = registered.map(|r| r.slot.readiness.load(Ordering::Acquire));
            match attempt(&mut f, &drained, registered, *snapshot) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
        }
    }
}

/// One try of an operation. A result that `drained` calls a drained queue clears read readiness,
/// unless a dispatch came in since `snapshot` (the slot's word loaded before the try).
fn attempt<T>(
    f: &mut impl FnMut() -> io::Result<T>,
    drained: &Option<impl Fn(&T) -> bool>,
    reg: Option<&Registered>,
    snapshot: Option<usize>,
) -> io::Result<T> {
    let result = f();
    if let (Ok(v), Some(drained), Some(r), Some(s)) = (&result, drained, reg, snapshot) {
        if drained(v) {
            r.slot.clear_after_short_read(s);
        }
    }
    result
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

#[cfg(test)]
thread_local! {
    /// Unit tests drive the fiber path with a reactor thread of their own.
    static TEST_HANDLE: std::cell::RefCell<Option<Arc<Handle>>> = const { std::cell::RefCell::new(None) };
}

/// The reactor to wait with: the caller's runtime's, or `None` on a plain OS thread.
fn wait_handle() -> Option<Arc<Handle>> {
    #[cfg(test)]
    if let Some(h) = TEST_HANDLE.with(|h| h.borrow().clone()) {
        return Some(h);
    }
    current_handle()
}

/// Is `handle` a reactor of the caller's runtime (so a dispatch will wake the caller)?
fn is_current(handle: &Handle) -> bool {
    #[cfg(test)]
    if let Some(same) = TEST_HANDLE.with(|h| h.borrow().as_ref().map(|t| t.same_runtime(handle))) {
        return same;
    }
    super::context::with_current(|h| h.same_runtime(handle)).unwrap_or(false)
}

/// Is the caller a fiber on a runtime (so waits park the fiber rather than the thread)?
pub(crate) fn in_fiber() -> bool {
    wait_handle().is_some()
}

/// Plain-thread wait: `poll(2)` on `fd` until `interest` (or an error/hang-up) or `deadline`.
fn poll_fd(fd: RawFd, interest: Interest, deadline: Option<Instant>) -> io::Result<bool> {
    let events = if interest == Interest::READ {
        libc::POLLIN
    } else {
        libc::POLLOUT
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(false);
                }
                // Round up, so we never wake before the deadline and spin.
                let ms = (deadline - now).as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid, exclusively borrowed pollfd and we pass nfds = 1.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fd helpers
// ---------------------------------------------------------------------------------------------

/// Puts `fd` into kernel non-blocking mode; returns whether it already was (the mode the user
/// asked for when adopting a socket made elsewhere).
pub(crate) fn make_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no argument and only reads the flags of `fd`; a bad fd yields EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::O_NONBLOCK != 0;
    if !was {
        // SAFETY: F_SETFL with an int flag argument only changes the status flags of `fd`.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(was)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A reactor thread for unit tests: a `mio::Poll` loop calling `dispatch`.
    use super::*;
    use std::sync::atomic::AtomicBool;

    pub(crate) struct TestReactor {
        pub(crate) handle: Arc<Handle>,
        stop: Arc<AtomicBool>,
        waker: Arc<mio::Waker>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestReactor {
        pub(crate) fn start() -> TestReactor {
            let mut poll = mio::Poll::new().unwrap();
            let registry = poll.registry().try_clone().unwrap();
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER_TOKEN).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut events = mio::Events::with_capacity(256);
                while !stop2.load(Ordering::Acquire) {
                    if let Err(e) = poll.poll(&mut events, None) {
                        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
                    }
                    for ev in events.iter() {
                        dispatch(ev);
                    }
                }
            });
            TestReactor {
                handle: Arc::new(Handle {
                    registry,
                    sources: AtomicUsize::new(0),
                    runtime: crate::driver::new_runtime_id(),
                }),
                stop,
                waker,
                thread: Some(thread),
            }
        }

        /// Makes the calling thread behave as a fiber of this reactor's runtime.
        pub(crate) fn enter(&self) {
            enter_handle(self.handle.clone());
        }
    }

    /// Unit tests that open fds take this lock, so the fd-leak check can count exactly.
    pub(crate) static FD_TESTS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    /// Makes the calling thread behave as a fiber of the runtime of `h`.
    pub(crate) fn enter_handle(h: Arc<Handle>) {
        TEST_HANDLE.with(|t| *t.borrow_mut() = Some(h));
    }

    /// The handle the calling thread entered.
    pub(crate) fn current_test_handle() -> Arc<Handle> {
        TEST_HANDLE.with(|t| t.borrow().clone()).expect("entered")
    }

    impl Drop for TestReactor {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            self.waker.wake().unwrap();
            self.thread.take().unwrap().join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_pages() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
    }

    #[test]
    fn clear_respects_tick() {
        let slot = Slot::new();
        slot.set_ready(READABLE);
        let snap = slot.readiness.load(Ordering::Acquire);
        slot.set_ready(READABLE); // an event between the syscall and the clear
        slot.clear(snap, READABLE);
        assert!(
            slot.is_ready(READABLE),
            "an event newer than the snapshot must survive"
        );
        let snap = slot.readiness.load(Ordering::Acquire);
        slot.clear(snap, READABLE);
        assert!(!slot.is_ready(READABLE));
    }

    #[test]
    fn wait_times_out_and_removes_waiter() {
        let slot = Slot::new();
        let t0 = Instant::now();
        assert!(!slot.wait(READABLE, Some(Instant::now() + Duration::from_millis(20))));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert!(slot.waiters.lock().list.is_empty());
    }

    #[test]
    fn set_ready_wakes_waiter() {
        let slot: &'static Slot = Box::leak(Box::new(Slot::new()));
        let t = std::thread::spawn(move || slot.wait(WRITABLE, None));
        while slot.waiters.lock().list.is_empty() {
            std::thread::yield_now();
        }
        slot.set_ready(READABLE);
        assert_eq!(
            slot.waiters.lock().list.len(),
            1,
            "READABLE must not wake a writer"
        );
        slot.set_ready(WRITABLE);
        assert!(t.join().unwrap());
    }
}
