//! Fiber stacks: how they are laid out, pooled, and how an overflow is reported.
//!
//! # Two layouts, chosen by the kernel's map budget
//!
//! A *guarded* stack is its own `mmap` with a `PROT_NONE` guard page below it: an overflow faults on
//! the guard page and the SIGSEGV handler below names the fiber and aborts. Each guarded stack costs
//! two kernel memory maps, and Linux allows `vm.max_map_count` (65,530 by default) maps per process,
//! so guarded stacks alone stop at ~32k live fibers.
//!
//! Beyond a budget of guarded stacks (a quarter of `vm.max_map_count`, leaving the rest to the
//! program), stacks are carved from *slabs*: one `mmap` holding [`SLAB_STACKS`] stacks back to back,
//! one map for all of them. A slab stack has no guard page; instead its lowest [`RED_ZONE`] bytes are
//! a software canary that must stay zero (fresh anonymous memory is zero, and reading it maps the
//! shared zero page, so the check costs no resident memory). The worker checks the canary each time
//! the fiber switches out and aborts with the same message if it was written. This detects the
//! common overflow (a deep recursion walks through the red zone) but, unlike a guard page, only after
//! the fact, and a single frame larger than the red zone could skip it: docs/caveats.md says so.
//!
//! All stacks are `MAP_NORESERVE`: only touched pages are resident, so a parked fiber that used one
//! page of stack costs one page.
//!
//! # Pooling
//!
//! A fresh `mmap` costs microseconds; a reused stack nanoseconds. Each worker keeps a small cache
//! (no lock); overflow and refill move batches to and from the pool shared by the runtime. Stacks
//! beyond [`HOT_STACKS`] in the shared pool give their memory back (`munmap` for guarded stacks,
//! `madvise(MADV_DONTNEED)` for slab stacks, which stay mapped for reuse).
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

/// Bytes at the bottom of an unguarded stack that must stay zero.
pub(crate) const RED_ZONE: usize = 256;
/// Stacks per slab.
const SLAB_STACKS: usize = 64;
/// Stacks the shared pool keeps resident; the rest release their pages.
const HOT_STACKS: usize = 1024;
/// Stacks a worker keeps in its own cache before moving a batch to the shared pool.
pub(crate) const WORKER_CACHE: usize = 64;
/// The smallest stack a fiber may ask for.
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;
/// The largest stack a fiber may ask for (virtual reservation; only touched pages are resident).
pub(crate) const MAX_STACK_SIZE: usize = 1 << 30;

pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize })
}

/// Rounds a requested size up to whole pages.
pub(crate) fn round_to_pages(size: usize) -> usize {
    let page = page_size();
    size.div_ceil(page) * page
}

/// How many guarded stacks may be live at once in this process.
fn guard_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65530);
        // Two maps per guarded stack; keep half of all maps for the rest of the program.
        max_maps / 4
    })
}

/// Guarded stacks currently mapped, process-wide.
static GUARDED_LIVE: AtomicUsize = AtomicUsize::new(0);

/// One fiber stack: the usable range `[bottom, top)`.
#[derive(Debug)]
pub(crate) struct FiberStack {
    top: usize,
    bottom: usize,
    kind: StackKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StackKind {
    /// Owns the mapping `[bottom - page, top)`, whose lowest page is the guard.
    Guarded,
    /// A piece of a slab; the slab is never unmapped.
    Slab,
    /// Owns the unguarded mapping `[bottom, top)` (a size the pool does not keep).
    Owned,
}

// SAFETY: the memory is an anonymous mapping owned by this value (or, for slab stacks, a disjoint
// piece of a slab that is never unmapped); nothing about it is tied to a thread.
unsafe impl Send for FiberStack {}

impl FiberStack {
    fn new_guarded(size: usize) -> io::Result<FiberStack> {
        let page = page_size();
        let len = size + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing; no existing
        // memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(map_error(size));
        }
        // SAFETY: `base` is the start of the mapping we just made, at least one page long.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            let err = io::Error::last_os_error();
            // SAFETY: unmapping exactly the mapping made above, which nothing else references.
            unsafe { libc::munmap(base, len) };
            return Err(err);
        }
        GUARDED_LIVE.fetch_add(1, Ordering::Relaxed);
        let bottom = base as usize + page;
        Ok(FiberStack {
            top: bottom + size,
            bottom,
            kind: StackKind::Guarded,
        })
    }

    /// Whether an overflow is caught by a guard page (otherwise by the red-zone canary).
    pub(crate) fn is_guarded(&self) -> bool {
        self.kind == StackKind::Guarded
    }

    /// The guard page range `[lo, hi)`, or an empty range for unguarded stacks.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        if self.is_guarded() {
            (self.bottom - page_size(), self.bottom)
        } else {
            (self.bottom, self.bottom + RED_ZONE)
        }
    }

    /// Gives the stack's pages back to the kernel; the range stays mapped (zero-filled on next use).
    fn release_pages(&self) {
        // SAFETY: the range is this stack's own private anonymous memory, not in use by any fiber
        // (it is in the pool); MADV_DONTNEED only drops its contents.
        unsafe {
            libc::madvise(
                self.bottom as *mut libc::c_void,
                self.top - self.bottom,
                libc::MADV_DONTNEED,
            );
        }
    }
}

impl Drop for FiberStack {
    fn drop(&mut self) {
        match self.kind {
            StackKind::Guarded => {
                let page = page_size();
                // SAFETY: a guarded stack owns exactly this mapping (guard page included); no
                // coroutine uses it any more since the stack is being dropped.
                unsafe {
                    libc::munmap(
                        (self.bottom - page) as *mut libc::c_void,
                        self.top - self.bottom + page,
                    )
                };
                GUARDED_LIVE.fetch_sub(1, Ordering::Relaxed);
            }
            StackKind::Owned => {
                // SAFETY: this stack owns exactly this mapping and no coroutine uses it any more.
                unsafe { libc::munmap(self.bottom as *mut libc::c_void, self.top - self.bottom) };
            }
            // Slab memory is never unmapped (other stacks live in the same slab); drop the pages.
            StackKind::Slab => self.release_pages(),
        }
    }
}

// SAFETY: `base` and `limit` delimit memory that stays mapped and owned by this value for as long as
// it lives. Guarded stacks have a guard page; unguarded ones have the red-zone canary the worker
// checks at every switch (the trait's guard-page requirement is met in software, see module docs).
// Both are page aligned, hence aligned to STACK_ALIGNMENT, and larger than corosensei's minimum.
unsafe impl Stack for FiberStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top).expect("stack top is never zero")
    }
    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.bottom).expect("stack bottom is never zero")
    }
}

/// True if the red zone at the bottom of an unguarded stack was written (the fiber overflowed).
///
/// # Safety
/// `bottom` must be the bottom of a mapped unguarded fiber stack.
#[inline]
pub(crate) unsafe fn red_zone_touched(bottom: usize) -> bool {
    let words = bottom as *const u64;
    let mut acc = 0u64;
    for i in 0..RED_ZONE / 8 {
        // SAFETY: `[bottom, bottom + RED_ZONE)` lies inside the stack's mapping (caller's contract)
        // and is page aligned; volatile because the coroutine wrote it behind the compiler's back.
        acc |= unsafe { words.add(i).read_volatile() };
    }
    acc != 0
}

fn map_error(size: usize) -> io::Error {
    let os = io::Error::last_os_error();
    io::Error::new(
        os.kind(),
        format!("could not map a fiber stack of {size} bytes ({os}); lower the stack size with Builder::stack_size"),
    )
}

/// Slab carving state: the current slab's next free stack.
pub(crate) struct Slabs {
    next: usize,
    end: usize,
}

/// The runtime's pool of stacks of its default size.
pub(crate) struct StackPool {
    size: usize,
    hot: Mutex<Vec<FiberStack>>,
    /// Slab stacks whose pages were released; reused before carving new slabs.
    cold: Mutex<Vec<FiberStack>>,
    slabs: Mutex<Slabs>,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size,
            hot: Mutex::new(Vec::new()),
            cold: Mutex::new(Vec::new()),
            slabs: Mutex::new(Slabs { next: 0, end: 0 }),
        }
    }

    pub(crate) fn stack_size(&self) -> usize {
        self.size
    }

    /// Refills a worker cache with up to `want` stacks; allocates if the pool is empty.
    #[cold]
    pub(crate) fn refill(&self, cache: &mut Vec<FiberStack>, want: usize) -> io::Result<()> {
        {
            let mut hot = self.hot.lock();
            let n = hot.len().min(want);
            let from = hot.len() - n;
            cache.extend(hot.drain(from..));
        }
        if cache.is_empty() {
            let mut cold = self.cold.lock();
            let n = cold.len().min(want);
            let from = cold.len() - n;
            cache.extend(cold.drain(from..));
        }
        if cache.is_empty() {
            cache.push(self.allocate()?);
        }
        Ok(())
    }

    /// Takes back a batch of stacks from a worker cache that grew past its bound.
    #[cold]
    pub(crate) fn give_back(&self, cache: &mut Vec<FiberStack>, keep: usize) {
        let surplus: Vec<FiberStack> = cache.drain(keep..).collect();
        let mut hot = self.hot.lock();
        let room = HOT_STACKS.saturating_sub(hot.len());
        let mut surplus = surplus.into_iter();
        hot.extend(surplus.by_ref().take(room));
        drop(hot);
        for stack in surplus {
            self.release(stack);
        }
    }

    /// Returns one stack to the pool without a worker cache (e.g. at shutdown).
    pub(crate) fn put(&self, stack: FiberStack) {
        let mut hot = self.hot.lock();
        if hot.len() < HOT_STACKS {
            hot.push(stack);
        } else {
            drop(hot);
            self.release(stack);
        }
    }

    fn release(&self, stack: FiberStack) {
        if stack.kind != StackKind::Slab {
            drop(stack); // munmap: also gives the map budget back
        } else {
            stack.release_pages();
            self.cold.lock().push(stack);
        }
    }

    fn allocate(&self) -> io::Result<FiberStack> {
        allocate_stack(self.size, Some(&self.slabs))
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // Slab stacks must not be unmapped one by one; their slabs are leaked deliberately (virtual
        // address space only: their pages were or are now released).
        for stack in self
            .hot
            .get_mut()
            .drain(..)
            .chain(self.cold.get_mut().drain(..))
        {
            if stack.kind == StackKind::Slab {
                stack.release_pages();
                std::mem::forget(stack);
            }
        }
    }
}

/// Allocates a stack of `size` bytes (a whole number of pages): guarded while the map budget
/// allows, otherwise from a slab (or, for odd sizes without a slab, its own unguarded mapping).
pub(crate) fn allocate_stack(size: usize, slabs: Option<&Mutex<Slabs>>) -> io::Result<FiberStack> {
    if GUARDED_LIVE.load(Ordering::Relaxed) < guard_budget() {
        return FiberStack::new_guarded(size);
    }
    if let Some(slabs) = slabs {
        let mut s = slabs.lock();
        if s.next < s.end {
            let bottom = s.next;
            s.next += size;
            return Ok(FiberStack {
                top: bottom + size,
                bottom,
                kind: StackKind::Slab,
            });
        }
        let base = map_slab(size, SLAB_STACKS)?;
        s.next = base + size;
        s.end = base + size * SLAB_STACKS;
        return Ok(FiberStack {
            top: base + size,
            bottom: base,
            kind: StackKind::Slab,
        });
    }
    let base = map_slab(size, 1)?;
    Ok(FiberStack {
        top: base + size,
        bottom: base,
        kind: StackKind::Owned,
    })
}

fn map_slab(size: usize, count: usize) -> io::Result<usize> {
    let len = size.checked_mul(count).ok_or_else(|| map_error(size))?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(map_error(size));
    }
    Ok(base as usize)
}
