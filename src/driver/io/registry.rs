//! Registrations and the slot table: which fd is registered with which reactors, under which
//! token, and [`dispatch`], which turns a reactor's event into readiness on the token's slot.
//!
//! Slots live in pages that are allocated on demand and never freed, so `dispatch` can look a
//! token up without locks and without `unsafe`. A freed slot's generation is bumped: events still
//! in flight for the old registration are ignored. If such an event races with the generation
//! bump it can at worst set readiness on the slot's next owner, which is a *spurious* readiness:
//! the next operation gets `WouldBlock` and clears it. Spurious wake-ups are part of the contract.
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use mio::unix::SourceFd;
use parking_lot::Mutex;

use super::slot::{Slot, READABLE, READ_CLOSED, WRITABLE};
use crate::driver::Handle;

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
        slot.reset();
        Ok((index, slot))
    }

    fn free(&self, index: usize, slot: &Slot) {
        let generation = slot.generation.load(Ordering::Relaxed);
        slot.generation.store(
            generation.wrapping_add(1) & GENERATION_MASK,
            Ordering::Release,
        );
        // A socket is dropped only when nobody borrows it, so nobody waits on it.
        slot.reset();
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

/// Records the readiness of one reactor event (never the waker's) on its slot, waking the
/// fibers that wait for it.
pub(crate) fn dispatch(event: &mio::event::Event) {
    let token = event.token();
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

/// The registration of one fd with the reactors of one runtime; made lazily, removed on drop.
///
/// Each worker has its own reactor. The fd is registered with the reactor of the first worker
/// whose fiber waits on it, and later also with that of any other worker whose fiber waits on it,
/// all under the same token: so a waiter is always woken by its own worker's poll, never only by
/// another worker that may be busy. Every reactor dispatches into the same slot; a duplicate event
/// only sets bits that are already set.
///
/// It knows the fd only while registered and is not tied to an owner: a socket type keeps one
/// beside its fd, and an fd-keyed table can keep one per fd just as well.
pub(crate) struct Registration {
    state: OnceLock<Registered>,
    /// Serialises the first registration (two fibers may wait on `&socket` at once).
    init: Mutex<()>,
}

/// A registration that has been made.
pub(super) struct Registered {
    /// The first reactor registered with (in the common case, the only one).
    first: Arc<Handle>,
    /// Reactors of other workers of the same runtime registered with since.
    others: Mutex<Vec<Arc<Handle>>>,
    fd: RawFd,
    token: mio::Token,
    index: usize,
    pub(super) slot: &'static Slot,
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

impl Default for Registration {
    fn default() -> Self {
        Registration::new()
    }
}

impl Registration {
    /// Not registered yet.
    pub(crate) const fn new() -> Registration {
        Registration {
            state: OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    /// The registration, if it has been made.
    #[inline]
    pub(super) fn get(&self) -> Option<&Registered> {
        self.state.get()
    }

    /// Would a fiber calling this now be woken by its own worker's reactor when it waits here?
    /// True if a reactor serves the caller and the registration is not yet made or was made with
    /// the caller's runtime; false on a plain thread or for another runtime's registration (whose
    /// waits fall back to `poll(2)`).
    #[cfg(fiber_hook)]
    pub(crate) fn serves_caller(&self) -> bool {
        crate::driver::context::with_current(|h| match self.state.get() {
            None => true,
            Some(reg) => reg.first.same_runtime(h),
        })
        .unwrap_or(false)
    }

    /// The registration through which a fiber of `handle`'s worker waits for `fd`: made on first
    /// use, extended to `handle`'s reactor if another worker of the same runtime made it.
    /// `None` if `fd` is registered with another runtime, whose reactors would not wake us.
    pub(super) fn for_reactor(
        &self,
        handle: &Arc<Handle>,
        fd: RawFd,
    ) -> io::Result<Option<&Registered>> {
        let reg = match self.state.get() {
            Some(reg) => reg,
            None => self.register(handle, fd)?,
        };
        if !reg.first.same_runtime(handle) {
            return Ok(None);
        }
        reg.include(handle)?;
        Ok(Some(reg))
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
    /// Will a dispatch of the caller's runtime wake the caller (a fiber of that runtime)?
    #[inline]
    pub(super) fn wakes_caller(&self) -> bool {
        crate::driver::context::with_current(|h| h.same_runtime(&self.first)).unwrap_or(false)
    }

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

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn locate_pages() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
    }
}
