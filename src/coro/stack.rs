//! Fiber stacks: how they are laid out, pooled, and how an overflow is reported.
//!
//! # Layout: a guard page for every stack, one kernel map per slab
//!
//! Stacks are carved from *slabs*: one `mmap` holding [`SLAB_STACKS`] stacks back to back. Each
//! stack's lowest page carries a *guard marker* (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13+): it
//! faults like a `PROT_NONE` page, but without splitting the mapping, and it survives
//! `MADV_DONTNEED`. An overflow faults on it and the SIGSEGV handler (`overflow.rs`) names the fiber
//! and aborts. So every fiber has a hardware guard page while a million fibers still cost only
//! ~4k kernel maps; `vm.max_map_count` (65,530 by default) is never the limit.
//!
//! # Fallback for kernels without guard markers
//!
//! A classic guard page is a `PROT_NONE` split of the mapping: two kernel maps per stack, so such
//! stacks alone stop at ~32k live fibers. On older kernels each stack gets its own guarded mapping
//! while fewer than a quarter of `vm.max_map_count` are live (half the maps stay with the program);
//! beyond that budget, slab stacks have no guard page and their lowest [`RED_ZONE`] bytes are a
//! software canary that must stay zero (fresh anonymous memory is zero, and reading it maps the
//! shared zero page, so the check costs no resident memory). The worker checks the canary each time
//! the fiber switches out and aborts with the same message if it was written. This detects the
//! common overflow (a deep recursion walks through the red zone) but only after the fact, and a
//! single frame larger than the red zone could skip it: docs/caveats.md says so.
//!
//! All stacks are `MAP_NORESERVE`: only touched pages are resident, so a parked fiber that used one
//! page of stack costs one page.
//!
//! # Pooling
//!
//! A fresh `mmap` costs microseconds; a reused stack nanoseconds. Each worker keeps a small cache
//! (no lock); overflow and refill move batches to and from the pool shared by the runtime. Returned
//! stacks stay resident, so a burst of fibers that ends while another starts reuses them without
//! page faults. When a worker has been out of work for a while (100 ms) it trims the pool to
//! [`HOT_STACKS`], giving the rest
//! of the memory back (`munmap` for guarded stacks, coalesced `madvise(MADV_DONTNEED)` for slab
//! stacks, which stay mapped for reuse). Releasing on the hot path instead costs a syscall and a
//! TLB shootdown per finished fiber, which stalled the million-fiber demo.
//!
//! # Freeing
//!
//! Slabs are reference-counted by their stacks ([`Slab`]) and unmapped with the last one; the
//! workers free the pool when they shut down ([`StackPool::free_unused`]), so a dropped runtime
//! leaves no stack memory, page tables or guard markers behind. The one exception is the stack of
//! a fiber that could not be unwound, leaked on purpose: it keeps its slab mapped. See
//! [`StackPool`] for who owns a stack when.
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

/// Bytes at the bottom of an unguarded stack that must stay zero.
pub(crate) const RED_ZONE: usize = 256;
/// Stacks per slab.
const SLAB_STACKS: usize = 256;
/// Stacks the shared pool keeps resident when idle; the rest release their pages.
const HOT_STACKS: usize = 1024;
/// Stacks released per trim, so that an idle worker is not kept from new work for long.
const TRIM_BATCH: usize = 4096;
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

/// How many separately mapped guarded stacks may be live at once in this process (used only where
/// the kernel lacks guard markers).
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

/// `madvise` advice that installs guard markers (Linux 6.13+): pages that fault like `PROT_NONE`
/// without splitting the mapping, and that survive `MADV_DONTNEED`.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Whether this kernel supports guard markers; probed once. `FIBER_NO_GUARD_MARKERS` set in the
/// environment forces the fallback layout (tests use it to exercise that path on new kernels).
fn guard_markers() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        if std::env::var_os("FIBER_NO_GUARD_MARKERS").is_some() {
            return false;
        }
        let page = page_size();
        let Ok(base) = map_region(2 * page) else {
            return false;
        };
        // SAFETY: advising the first page of the private mapping made just above.
        let ok = unsafe { libc::madvise(base as *mut libc::c_void, page, MADV_GUARD_INSTALL) } == 0;
        // SAFETY: unmapping exactly that mapping, which nothing else references.
        unsafe { libc::munmap(base as *mut libc::c_void, 2 * page) };
        ok
    })
}

/// Makes `[lo, lo + page)` a guard page with a guard marker.
fn install_guard(lo: usize) -> io::Result<()> {
    // SAFETY: `lo` is the first page of a stack region we own and no coroutine uses yet; a guard
    // marker only changes what touching that page does.
    if unsafe { libc::madvise(lo as *mut libc::c_void, page_size(), MADV_GUARD_INSTALL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Guarded stacks with their own mapping currently live, process-wide.
static GUARDED_LIVE: AtomicUsize = AtomicUsize::new(0);

/// One fiber stack: the usable range `[bottom, bottom + size)`, with a guard page just below
/// `bottom` when `guarded`.
///
/// The value owns its memory: a stack with a mapping of its own unmaps it on drop; a slab stack
/// holds a reference to its [`Slab`], and the slab is unmapped when its last stack (and the
/// carving state, while it carves from it) is dropped. A coroutine owns the `FiberStack` it runs
/// on until it has returned (then the worker takes it back); a coroutine that cannot be finished
/// is leaked with its stack, which therefore keeps its slab mapped for good.
#[derive(Debug)]
pub(crate) struct FiberStack {
    bottom: usize,
    /// Usable bytes (at most `MAX_STACK_SIZE`, 1 GiB): 32 bits keep the value three words, as
    /// it sits in every task header.
    size: u32,
    guarded: bool,
    /// Owns a mapping of its own whose guard page is a `PROT_NONE` split (counted in the
    /// separately-guarded budget).
    split_guard: bool,
    /// The slab this stack was carved from; `None` if it owns the mapping `[bottom - page, top)`.
    slab: Option<Arc<Slab>>,
}

/// One `mmap` that stacks are carved from. Unmapped when the last reference goes: every stack
/// carved from it holds one, and so does the carving state while the slab is the current one.
#[derive(Debug)]
pub(crate) struct Slab {
    base: usize,
    len: usize,
}

impl Drop for Slab {
    fn drop(&mut self) {
        // SAFETY: `[base, base + len)` is the mapping this slab made. Every `FiberStack` carved
        // from it holds an `Arc` of it, so this runs only once no stack of the slab exists any
        // more: none is pooled, cached by a worker, or owned by a coroutine (a coroutine keeps its
        // stack until it has returned, and one that cannot finish is leaked together with its
        // stack, whose reference then keeps the slab mapped forever). No coroutine can be
        // running on, or hold a borrow into, memory of a stack that no longer exists.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

// SAFETY: the memory is an anonymous mapping owned by this value (or, for slab stacks, a disjoint
// piece of a slab that stays mapped while this value holds its reference); nothing about it is
// tied to a thread.
unsafe impl Send for FiberStack {}

impl FiberStack {
    /// A stack with a mapping of its own (sizes the pool does not keep, and the fallback guarded
    /// stacks on kernels without guard markers).
    fn new_mapped(size: usize) -> io::Result<FiberStack> {
        let size32 = stack_size_u32(size)?;
        let page = page_size();
        let base = map_region(size + page)?;
        let bottom = base + page;
        let (guarded, split_guard) = if guard_markers() {
            (install_guard(base).is_ok(), false)
        } else if GUARDED_LIVE.load(Ordering::Relaxed) < guard_budget() {
            // SAFETY: `base` is the first page of the mapping made above.
            let ok =
                unsafe { libc::mprotect(base as *mut libc::c_void, page, libc::PROT_NONE) } == 0;
            if ok {
                GUARDED_LIVE.fetch_add(1, Ordering::Relaxed);
            }
            (ok, ok)
        } else {
            (false, false)
        };
        Ok(FiberStack {
            bottom,
            size: size32,
            guarded,
            split_guard,
            slab: None,
        })
    }

    fn top(&self) -> usize {
        self.bottom + self.size as usize
    }

    /// Whether an overflow is caught by a guard page (otherwise by the red-zone canary).
    pub(crate) fn is_guarded(&self) -> bool {
        self.guarded
    }

    /// The guard page range `[lo, hi)`; for an unguarded stack, its red zone.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        if self.guarded {
            (self.bottom - page_size(), self.bottom)
        } else {
            (self.bottom, self.bottom + RED_ZONE)
        }
    }

    /// The stack's whole region: a slab stack's guard page (a marker, which `MADV_DONTNEED`
    /// keeps) is included so that neighbouring stacks of a slab form one contiguous range.
    fn region(&self) -> (usize, usize) {
        if self.guarded {
            (self.bottom - page_size(), self.top())
        } else {
            (self.bottom, self.top())
        }
    }
}

impl Drop for FiberStack {
    fn drop(&mut self) {
        if self.slab.is_some() {
            // The slab's reference goes with this value: the last stack of a slab unmaps it
            // (`Slab::drop`). The pool releases pages before dropping stacks whose slab stays.
            return;
        }
        let page = page_size();
        // SAFETY: this stack owns exactly the mapping `[bottom - page, top)`; no coroutine uses it
        // any more since the stack is being dropped (a coroutine owns its stack until it returns).
        unsafe {
            libc::munmap(
                (self.bottom - page) as *mut libc::c_void,
                self.size as usize + page,
            )
        };
        if self.split_guard {
            GUARDED_LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: `base` and `limit` delimit memory that stays mapped and owned by this value for as long as
// it lives. Guarded stacks have a guard page below `limit`; unguarded ones have the red-zone canary
// the worker checks at every switch (the trait's guard-page requirement is met in software, see the
// module docs). Both are page aligned, hence aligned to STACK_ALIGNMENT, and larger than
// corosensei's minimum.
unsafe impl Stack for FiberStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top()).expect("stack top is never zero")
    }
    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.bottom).expect("stack bottom is never zero")
    }
}

/// Drops the pages of `[lo, hi)`, memory of pooled stacks that no fiber uses.
fn release_range((lo, hi): (usize, usize)) {
    // SAFETY: callers pass ranges of private anonymous stack memory that no coroutine uses (the
    // stacks are in the pool or being dropped); MADV_DONTNEED only discards their contents, which
    // read back as zero, as the red-zone check expects.
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
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
        // and is page aligned, so this word is readable; volatile because the coroutine wrote it
        // behind the compiler's back.
        acc |= unsafe { words.wrapping_add(i).read_volatile() };
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

/// Slab carving state: the current slab's next free stack region (guard page included).
pub(crate) struct Slabs {
    next: usize,
    end: usize,
    /// The slab being carved; its reference keeps it mapped while stacks may still be cut from it.
    current: Option<Arc<Slab>>,
    /// The current slab's guards are installed (by `prepare_slab`).
    prepared: bool,
}

/// The runtime's pool of stacks of its default size.
///
/// # Who owns stack memory, and when it is freed
///
/// A stack is owned by exactly one of: the shared pool (`hot` or `cold`), a worker's cache, or the
/// coroutine running on it. Stacks with a mapping of their own unmap it when dropped. Slab stacks
/// share their slab through an `Arc`: the slab is unmapped when its last stack is dropped. Slab
/// stacks are dropped only when the runtime shuts down (a trim keeps them mapped, in `cold`;
/// stacks of a fiber's own size are dropped when it finishes, and trimmed stacks with their own
/// mapping when trimmed): each worker, once its fibers are unwound, hands its cache back and calls [`StackPool::free_unused`], which drops every pooled stack and the carving
/// state's reference (the last worker to finish frees what the others handed back); dropping the
/// pool does the same. So after `Runtime::drop` returns, the runtime's stack memory is unmapped,
/// page tables and guard markers included, whoever still holds the runtime's shared state (a join
/// handle, a leaked task).
///
/// The one exception: a fiber that cannot be unwound (it swallows every cancellation, or it is
/// a scope's owner or a `block_on` caller whose wait never ends, while other fibers may borrow
/// from its stack) is leaked with its coroutine and stack (`Worker::shut_down`). Its stack's
/// reference keeps its slab mapped for the life of the process; the slab's other stacks are
/// dropped (their pages released) but their address space stays with it.
pub(crate) struct StackPool {
    size: usize,
    hot: Mutex<Vec<FiberStack>>,
    /// `hot.len()`, readable without the lock.
    hot_len: AtomicUsize,
    /// Slab stacks whose pages were released; reused before carving new slabs.
    cold: Mutex<Vec<FiberStack>>,
    slabs: Mutex<Slabs>,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size,
            hot: Mutex::new(Vec::new()),
            hot_len: AtomicUsize::new(0),
            cold: Mutex::new(Vec::new()),
            slabs: Mutex::new(Slabs {
                next: 0,
                end: 0,
                current: None,
                prepared: false,
            }),
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
            self.hot_len.store(hot.len(), Ordering::Relaxed);
        }
        if cache.is_empty() {
            let mut cold = self.cold.lock();
            let n = cold.len().min(want);
            let from = cold.len() - n;
            cache.extend(cold.drain(from..));
        }
        if cache.is_empty() {
            // Allocate a batch: fewer trips through the pool's locks and, for slab stacks, the
            // kernel's memory-map lock, which page faults on other workers contend for.
            cache.push(self.allocate()?);
            while cache.len() < want {
                match self.allocate() {
                    Ok(stack) => cache.push(stack),
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    /// Takes back a batch of stacks from a worker cache that grew past its bound. They stay
    /// resident: a burst that ends while another begins reuses them without page faults; `trim`
    /// gives the surplus back when a worker has nothing else to do.
    #[cold]
    pub(crate) fn give_back(&self, cache: &mut Vec<FiberStack>, keep: usize) {
        let mut hot = self.hot.lock();
        hot.extend(cache.drain(keep..));
        self.hot_len.store(hot.len(), Ordering::Relaxed);
    }

    /// Takes back a worker's whole cache (at its shutdown).
    pub(crate) fn give_back_all(&self, mut cache: Vec<FiberStack>) {
        self.give_back(&mut cache, 0);
    }

    /// True if the pool holds more resident stacks than it keeps.
    pub(crate) fn needs_trim(&self) -> bool {
        self.hot_len.load(Ordering::Relaxed) > HOT_STACKS
    }

    /// Releases the memory of up to [`TRIM_BATCH`] surplus stacks (called by idle workers).
    #[cold]
    pub(crate) fn trim(&self) {
        let surplus: Vec<FiberStack> = {
            let mut hot = self.hot.lock();
            let excess = hot.len().saturating_sub(HOT_STACKS).min(TRIM_BATCH);
            let from = hot.len() - excess;
            let surplus = hot.drain(from..).collect();
            self.hot_len.store(hot.len(), Ordering::Relaxed);
            surplus
        };
        self.release_all(surplus);
    }

    /// Gives the memory of surplus stacks back: guarded ones are unmapped (returning their map
    /// budget); slab stacks drop their pages, coalesced into one `madvise` per contiguous run
    /// (stacks carved from one slab are usually adjacent), and wait in the cold list.
    fn release_all(&self, mut stacks: Vec<FiberStack>) {
        stacks.retain(|s| s.slab.is_some()); // the others unmap themselves on drop
        release_pages(&mut stacks);
        self.cold.lock().extend(stacks);
    }

    /// Frees every stack the pool holds and lets go of the slab being carved: each slab none of
    /// whose stacks is in use any more is unmapped. Called by each worker at the end of its
    /// shutdown (when all its fibers are unwound), so the runtime's stack memory is freed as soon
    /// as the last worker is done, even if its shared state lives on. A worker that takes stacks
    /// later (one still finishing its own shutdown) carves a new slab, freed by its own call.
    pub(crate) fn free_unused(&self) {
        let mut stacks = std::mem::take(&mut *self.hot.lock());
        self.hot_len.store(0, Ordering::Relaxed);
        stacks.append(&mut self.cold.lock());
        let carving = {
            let mut s = self.slabs.lock();
            s.next = 0;
            s.end = 0;
            s.prepared = false;
            s.current.take()
        };
        drop(carving);
        free_stacks(stacks);
    }

    fn allocate(&self) -> io::Result<FiberStack> {
        carve(self.size, &self.slabs)
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // Normally empty already: the workers freed it at shutdown (`free_unused`).
        self.free_unused();
    }
}

/// Drops the pages of slab stacks, coalesced into one `madvise` per contiguous run (stacks carved
/// from one slab are usually adjacent). Sorts `stacks` by address.
fn release_pages(stacks: &mut [FiberStack]) {
    stacks.sort_unstable_by_key(|s| s.region().0);
    let mut run: Option<(usize, usize)> = None;
    for stack in stacks.iter() {
        let (lo, hi) = stack.region();
        run = match run {
            Some((run_lo, run_hi)) if run_hi == lo => Some((run_lo, hi)),
            Some(range) => {
                release_range(range);
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
    }
    if let Some(range) = run {
        release_range(range);
    }
}

/// Drops stacks nobody uses. Stacks with their own mapping unmap it; slab stacks drop their
/// slab's reference, so a slab whose stacks are all here is unmapped whole. The pages of stacks
/// whose slab stays mapped (another of its stacks is still in use, e.g. by a leaked fiber) are
/// released first, so that only address space stays behind.
fn free_stacks(mut stacks: Vec<FiberStack>) {
    let slab_key = |s: &FiberStack| s.slab.as_ref().map_or(0, |slab| Arc::as_ptr(slab) as usize);
    stacks.sort_unstable_by_key(slab_key);
    for group in stacks.chunk_by_mut(|a, b| slab_key(a) == slab_key(b)) {
        let Some(slab) = group[0].slab.as_ref() else {
            continue; // own mappings: unmapped on drop
        };
        // Racy only in the harmless direction: the count cannot rise, since new references are
        // made only by cloning the carving state's or ours, and if it is exactly ours, nobody else
        // holds the slab and it is unmapped below. If others hold it, our stacks keep it mapped
        // while their pages are released.
        if Arc::strong_count(slab) > group.len() {
            release_pages(group);
        }
    }
    drop(stacks);
}

/// Carves a stack of `size` usable bytes from the pool's slabs. With guard markers, each slab
/// stack is `page + size` with a marker on its first page: a hardware guard for every stack, still
/// one kernel map per slab. Without them, stacks get their own guarded mapping while the map budget
/// allows, then come from slabs unguarded (canary-checked).
fn carve(size: usize, slabs: &Mutex<Slabs>) -> io::Result<FiberStack> {
    let page = page_size();
    let markers = guard_markers();
    if !markers && GUARDED_LIVE.load(Ordering::Relaxed) < guard_budget() {
        return FiberStack::new_mapped(size);
    }
    let size32 = stack_size_u32(size)?;
    let stride = if markers { size + page } else { size };
    let (region, prepared, slab) = {
        let mut s = slabs.lock();
        let current = match &s.current {
            Some(slab) if s.next < s.end => slab.clone(),
            _ => {
                let len = stride
                    .checked_mul(SLAB_STACKS)
                    .ok_or_else(|| map_error(size))?;
                let base = map_region(len)?;
                let slab = Arc::new(Slab { base, len });
                s.next = base;
                s.end = base + len;
                s.prepared = markers && prepare_slab(base, stride, SLAB_STACKS);
                s.current = Some(slab.clone());
                slab
            }
        };
        let region = s.next;
        s.next += stride;
        if s.next == s.end {
            // Fully carved: let its stacks alone decide when it is unmapped.
            s.current = None;
        }
        (region, s.prepared, current)
    };
    let guarded = markers && (prepared || install_guard(region).is_ok());
    let bottom = if markers { region + page } else { region };
    Ok(FiberStack {
        bottom,
        size: size32,
        guarded,
        split_guard: false,
        slab: Some(slab),
    })
}

/// A stack size as stored in a [`FiberStack`]. Sizes are validated to at most
/// [`MAX_STACK_SIZE`] (1 GiB) before they get here; a larger one is refused rather than truncated.
fn stack_size_u32(size: usize) -> io::Result<u32> {
    u32::try_from(size).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack size {size} bytes is above the maximum of {MAX_STACK_SIZE} bytes"),
        )
    })
}

/// Readies a new slab in two system calls instead of two per stack: installs every stack's guard
/// marker and pre-faults every stack's top page (the one a starting fiber touches first) with
/// `process_madvise` over a vector of ranges. Measured here: a batched first touch costs ~1.7 µs
/// per stack against ~2.5 µs for a page fault. False if the kernel refuses (then guards are
/// installed one by one and top pages fault in as fibers start).
fn prepare_slab(base: usize, stride: usize, count: usize) -> bool {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let page = page_size();
    let guards: Vec<(usize, usize)> = (0..count).map(|i| (base + i * stride, page)).collect();
    let tops: Vec<(usize, usize)> = (0..count)
        .map(|i| (base + (i + 1) * stride - page, page))
        .collect();
    let Some(pidfd) = PidFd::open() else {
        return false;
    };
    if !pidfd.advise(&guards, MADV_GUARD_INSTALL) {
        return false;
    }
    // Pre-faulting is an optimisation only: its failure changes nothing else.
    pidfd.advise(&tops, MADV_POPULATE_WRITE);
    true
}

/// A pidfd for this process, to `process_madvise` many ranges at once. Closed on drop, so the
/// runtime keeps no file descriptor open for it.
struct PidFd(libc::c_int);

impl PidFd {
    fn open() -> Option<PidFd> {
        let pid = std::process::id() as libc::pid_t;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then_some(PidFd(fd as libc::c_int))
    }

    /// Applies `advice` to every `(start, len)` range; false if any call fails.
    fn advise(&self, ranges: &[(usize, usize)], advice: libc::c_int) -> bool {
        const MAX_IOV: usize = 1024; // UIO_MAXIOV
        for chunk in ranges.chunks(MAX_IOV) {
            let iov: Vec<libc::iovec> = chunk
                .iter()
                .map(|&(start, len)| libc::iovec {
                    iov_base: start as *mut libc::c_void,
                    iov_len: len,
                })
                .collect();
            // SAFETY: the iovecs describe pages of a private mapping this process just made and
            // no fiber uses yet; process_madvise only reads the vector, and the advice only
            // installs guard markers or populates (zero-filled) pages.
            let done = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    self.0,
                    iov.as_ptr(),
                    iov.len(),
                    advice,
                    0,
                )
            };
            if done < 0 || done as usize != chunk.iter().map(|r| r.1).sum::<usize>() {
                return false;
            }
        }
        true
    }
}

impl Drop for PidFd {
    fn drop(&mut self) {
        // SAFETY: closing the fd this value opened and owns.
        unsafe { libc::close(self.0) };
    }
}

/// Allocates a stack of `size` bytes (a whole number of pages) that the pool does not keep.
pub(crate) fn allocate_stack(size: usize) -> io::Result<FiberStack> {
    FiberStack::new_mapped(size)
}

/// Maps `len` bytes of private anonymous memory, reserving no swap.
fn map_region(len: usize) -> io::Result<usize> {
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
        return Err(map_error(len));
    }
    Ok(base as usize)
}
