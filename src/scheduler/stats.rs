//! What a worker publishes about itself for observers: counters for `Runtime::metrics` and the
//! probe the watchdog samples (docs/observability.md, "Metrics" and "Watchdog").
//!
//! Every field has one writer, the worker thread (except `hazard`, which the watchdog writes), so
//! a counter is bumped with a relaxed load and store, not a read-modify-write; readers sum the
//! workers' values. Each worker's block is aligned to its own cache lines, so publishing costs
//! plain stores to lines no other worker writes.
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

use crate::task::reason::KINDS;

/// The size of the parks-by-kind table: every kind's index fits.
pub(crate) const PARK_SLOTS: usize = KINDS.next_power_of_two();

/// The label of a task (its name and spawn site): what the watchdog reads (under the hazard) to
/// name a stuck fiber and say where it was spawned.
pub(crate) type NameField = crate::task::Label;

/// One worker's counters and watchdog probe.
#[repr(align(128))]
pub(crate) struct WorkerStats {
    /// Resumes begun. The watchdog reports a worker whose `seq` is unchanged, with `name` set,
    /// for longer than its threshold.
    pub(crate) seq: AtomicU64,
    /// Id of the fiber of the current (or last) resume.
    pub(crate) fiber: AtomicU64,
    /// The name field of the task of the resume going on; null between resumes. Dereferenced
    /// only under `hazard` (see `leave`).
    pub(crate) name: AtomicPtr<NameField>,
    /// Set by the watchdog while it reads through `name`; the worker does not leave a resume
    /// (and so cannot drop the task) while it is set.
    pub(crate) hazard: AtomicBool,
    /// The worker thread's kernel thread id (for `/proc/self/task/<tid>/syscall`); 0 before start.
    pub(crate) tid: AtomicI32,
    pub(crate) spawned: AtomicU64,
    pub(crate) finished: AtomicU64,
    /// Resumes that ended in a wait, by the wait's kind (`task::reason::kind`; `NONE`: a wait
    /// nobody described). Indexed by the kind masked to the table's power-of-two size (one `and`
    /// on the switch rather than a bound check); slots from `KINDS` up stay zero.
    pub(crate) parks: [AtomicU64; PARK_SLOTS],
    pub(crate) yields: AtomicU64,
    /// Slices of 100 µs or more on a worker with I/O sources (`worker::LONG_SLICE`).
    pub(crate) long_slices: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) events: AtomicU64,
    /// Nanoseconds spent asleep in the reactor's poll, sleeps that ended.
    pub(crate) idle_ns: AtomicU64,
    /// While asleep: 1 + when the sleep began, in nanoseconds since the runtime was built; 0
    /// while awake. Lets a snapshot count a sleep still going on.
    pub(crate) asleep_since: AtomicU64,
    /// Timers of this worker, as of its last maintenance pass or sleep (a gauge).
    pub(crate) timers: AtomicU64,
}

/// Adds `n` to a single-writer counter.
#[inline]
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl WorkerStats {
    pub(crate) fn new() -> WorkerStats {
        WorkerStats {
            seq: AtomicU64::new(0),
            fiber: AtomicU64::new(0),
            name: AtomicPtr::new(std::ptr::null_mut()),
            hazard: AtomicBool::new(false),
            tid: AtomicI32::new(0),
            spawned: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            parks: [const { AtomicU64::new(0) }; PARK_SLOTS],
            yields: AtomicU64::new(0),
            long_slices: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            events: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            asleep_since: AtomicU64::new(0),
            timers: AtomicU64::new(0),
        }
    }

    /// A resume of fiber `id` begins: three plain stores, no clock read.
    #[inline]
    pub(crate) fn enter(&self, id: u64, name: &NameField) {
        // `seq` first, `name` last with Release: a watchdog that sees this `name` (Acquire) and
        // then the same `seq` as before it knows `name` belongs to that resume.
        add(&self.seq, 1);
        self.fiber.store(id, Ordering::Relaxed);
        self.name
            .store((name as *const NameField).cast_mut(), Ordering::Release);
    }

    /// The resume ended; the task may be dropped once this returns.
    ///
    /// Pairs with the watchdog's `membarrier` (asymmetric fence, `monitor/watchdog.rs`): the
    /// watchdog sets `hazard`, issues a process-wide barrier, then reads `name`. Either it sees
    /// this null store and does not touch the task, or this load, ordered after the store by
    /// that barrier, sees `hazard` and waits until the watchdog is done. The compiler fence keeps
    /// the compiler from moving the load above the store; the CPU side is the barrier's job.
    #[inline]
    pub(crate) fn leave(&self) {
        self.name.store(std::ptr::null_mut(), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        if self.hazard.load(Ordering::Relaxed) {
            self.wait_hazard();
        }
    }

    /// The watchdog is copying the name (microseconds); it may be preempted meanwhile, so spin
    /// briefly, then yield the CPU.
    #[cold]
    fn wait_hazard(&self) {
        let mut spins = 0u32;
        while self.hazard.load(Ordering::Acquire) {
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl WorkerStats {
    /// Counts a resume that ended in a wait described by `word` (the task's wait word).
    #[inline]
    pub(crate) fn parked(&self, word: u64) {
        let kind = usize::from(crate::task::reason::kind_of(word));
        add(&self.parks[kind & (PARK_SLOTS - 1)], 1);
    }
}
