//! Shared by the `million` and `stress` examples: memory figures from `/proc/self`, progress
//! bars, and the measured phases (sleeping crowds, spawn rate, switch cost) for fibers,
//! std threads and tokio tasks.
#![allow(dead_code)]

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Memory figures of this process, in KiB, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mem {
    /// Resident set now (`VmRSS`).
    pub(crate) rss: u64,
    /// Peak resident set since start or the last [`reset_peak`] (`VmHWM`).
    pub(crate) hwm: u64,
    /// Page tables (`VmPTE`): kernel memory, not part of the RSS.
    pub(crate) pte: u64,
    /// Memory maps in use (lines of `/proc/self/maps`); only filled by [`mem_with_maps`].
    pub(crate) maps: u64,
}

/// Reads [`Mem`] (without the map count, which is slow to read with many maps).
pub(crate) fn mem() -> Mem {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        pte: field("VmPTE:"),
        maps: 0,
    }
}

/// [`mem`] plus the number of memory maps.
pub(crate) fn mem_with_maps() -> Mem {
    let maps = std::fs::read("/proc/self/maps")
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0);
    Mem { maps, ..mem() }
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5); false if not allowed.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Counters a crowd of sleepers updates, read by the progress line.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) spawned: AtomicUsize,
    pub(crate) sleeping: AtomicUsize,
    pub(crate) done: AtomicUsize,
    /// The most sleepers that were asleep at the same time.
    pub(crate) max_sleeping: AtomicUsize,
}

impl Counters {
    /// Called by a sleeper just before it goes to sleep.
    pub(crate) fn falling_asleep(&self) {
        let now = self.sleeping.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_sleeping.fetch_max(now, Ordering::Relaxed);
    }
}

/// A progress bar on stderr (indicatif): `name`, the elapsed time, a bar with its position out of
/// `len`, and a message (cut to the terminal's width). Hidden unless `show` and stderr is a
/// terminal.
pub(crate) fn bar(name: &str, len: u64, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let style =
        ProgressStyle::with_template("{prefix:<15} {elapsed:>3} [{bar:20}] {pos}/{len} {wide_msg}")
            .expect("progress template")
            .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(len), target)
        .with_style(style)
        .with_prefix(name.to_owned());
    if !bar.is_hidden() {
        // Keeps the elapsed time moving while the position does not.
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}

/// Runs one step of a stage: shows `name` on `bar`, runs `f`, advances the bar by one.
pub(crate) fn step<T>(bar: &ProgressBar, name: &str, f: impl FnOnce() -> T) -> T {
    bar.set_message(name.to_owned());
    let r = f();
    bar.inc(1);
    r
}

/// A thread that samples the RSS every 10 ms (a fallback for the peak where `VmHWM` cannot be
/// reset) and shows a crowd on a progress bar: sleepers done out of all, then RSS, asleep, spawned.
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    max_rss: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(
        label: &str,
        total: usize,
        counters: Arc<Counters>,
        show: bool,
    ) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let max_rss = Arc::new(AtomicU64::new(0));
        let (stop2, max2) = (stop.clone(), max_rss.clone());
        let bar = bar(&format!("million {label}"), total as u64, show);
        let thread = std::thread::spawn(move || loop {
            let finished = stop2.load(Ordering::Acquire);
            let m = mem();
            max2.fetch_max(m.rss, Ordering::Relaxed);
            bar.set_position(counters.done.load(Ordering::Relaxed) as u64);
            bar.set_message(format!(
                "RSS {:.0} MiB, {} asleep, {} spawned",
                m.rss as f64 / 1024.0,
                counters.sleeping.load(Ordering::Relaxed),
                counters.spawned.load(Ordering::Relaxed),
            ));
            if finished {
                bar.finish();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        });
        Progress {
            stop,
            max_rss,
            thread: Some(thread),
        }
    }

    /// Stops the bar; returns the highest RSS sampled, in KiB.
    pub(crate) fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max_rss.load(Ordering::Relaxed)
    }
}

/// What one crowd of sleepers cost.
#[derive(Debug, Clone)]
pub(crate) struct CrowdReport {
    pub(crate) kind: &'static str,
    pub(crate) n: usize,
    /// Workers that failed to start or join.
    pub(crate) failed: usize,
    /// From the first spawn until all were spawned.
    pub(crate) spawn: Duration,
    /// From the first spawn until all were joined.
    pub(crate) wall: Duration,
    pub(crate) base: Mem,
    /// Peak RSS in KiB (`VmHWM` after a reset, else the sampled maximum).
    pub(crate) peak_rss: u64,
    /// Peak of page tables seen while all were asleep, in KiB.
    pub(crate) peak_pte: u64,
    /// Memory maps while all were asleep (if sampled).
    pub(crate) maps: u64,
    /// The first error, if any.
    pub(crate) error: Option<String>,
    /// The most that were asleep at the same time (all `n` unless starting them lagged behind).
    pub(crate) peak_asleep: usize,
}

impl CrowdReport {
    /// (peak − baseline) / n, in KiB.
    pub(crate) fn rss_per_worker_kib(&self) -> f64 {
        self.peak_rss.saturating_sub(self.base.rss) as f64 / self.n.max(1) as f64
    }

    /// (peak − baseline) / the most asleep at once, in KiB: the cost of one sleeper even when
    /// not all `n` were asleep together (then it also carries the not-yet-started ones).
    pub(crate) fn rss_per_sleeper_kib(&self) -> f64 {
        self.peak_rss.saturating_sub(self.base.rss) as f64 / self.peak_asleep.max(1) as f64
    }

    pub(crate) fn pte_per_worker_kib(&self) -> f64 {
        self.peak_pte.saturating_sub(self.base.pte) as f64 / self.n.max(1) as f64
    }

    pub(crate) fn print(&self) {
        println!(
            "  {:<12} n={:<9} asleep at once {:<9} wall {:>8.3} s (spawning {:.3} s)  peak RSS {:>8.1} MiB  RSS/worker {:>6.2} KiB  RSS/sleeper {:>6.2} KiB  page tables/worker {:.2} KiB{}{}",
            self.kind,
            self.n,
            self.peak_asleep,
            self.wall.as_secs_f64(),
            self.spawn.as_secs_f64(),
            self.peak_rss as f64 / 1024.0,
            self.rss_per_worker_kib(),
            self.rss_per_sleeper_kib(),
            self.pte_per_worker_kib(),
            if self.maps > 0 { format!("  maps {}", self.maps) } else { String::new() },
            if self.failed > 0 {
                format!("  FAILED {} ({})", self.failed, self.error.as_deref().unwrap_or("?"))
            } else {
                String::new()
            },
        );
    }
}

/// Starts measuring a crowd: resets the peak, takes the baseline.
fn begin() -> (Mem, bool) {
    let reset = reset_peak();
    (mem(), reset)
}

/// Samples page tables and maps once every sleeper is asleep (or the time is up).
fn sample_when_asleep(counters: &Counters, n: usize, until: Instant) -> Mem {
    while counters.sleeping.load(Ordering::Acquire) + counters.done.load(Ordering::Acquire) < n
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    mem_with_maps()
}

/// Builds the report at the end of a crowd.
#[allow(clippy::too_many_arguments)]
fn end(
    kind: &'static str,
    n: usize,
    failed: usize,
    error: Option<String>,
    spawn: Duration,
    wall: Duration,
    base: Mem,
    reset: bool,
    sampled_max: u64,
    asleep: Mem,
    counters: &Counters,
) -> CrowdReport {
    let now = mem();
    let peak_rss = if reset {
        now.hwm
    } else {
        sampled_max.max(now.rss)
    };
    CrowdReport {
        kind,
        n,
        failed,
        spawn,
        wall,
        base,
        peak_rss,
        peak_pte: asleep.pte.max(now.pte),
        maps: asleep.maps,
        error,
        peak_asleep: counters.max_sleeping.load(Ordering::Relaxed),
    }
}

/// `n` fibers that each sleep `dur`, spawned from a fiber of `rt` and joined.
pub(crate) fn sleep_fibers(
    rt: &fiber::Runtime,
    n: usize,
    dur: Duration,
    show: bool,
) -> CrowdReport {
    let counters = Arc::new(Counters::default());
    let (base, reset) = begin();
    let progress = Progress::start("fibers", n, counters.clone(), show);
    let c = counters.clone();
    let (spawn, wall, failed, error, asleep) = rt.block_on(move || {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let c2 = c.clone();
            handles.push(fiber::spawn(move || {
                c2.falling_asleep();
                fiber::sleep(dur);
                c2.sleeping.fetch_sub(1, Ordering::Relaxed);
                c2.done.fetch_add(1, Ordering::Release);
            }));
            c.spawned.fetch_add(1, Ordering::Relaxed);
        }
        let spawn = start.elapsed();
        // Sample page tables while the crowd sleeps, on a helper thread (this fiber must not
        // block its worker).
        let c3 = c.clone();
        let until = start + dur;
        let sampler = std::thread::spawn(move || sample_when_asleep(&c3, n, until));
        let mut failed = 0;
        let mut error = None;
        for h in handles {
            if let Err(e) = h.join() {
                failed += 1;
                error.get_or_insert_with(|| panic_message(&e));
            }
        }
        let wall = start.elapsed();
        (
            spawn,
            wall,
            failed,
            error,
            sampler.join().unwrap_or_default(),
        )
    });
    let sampled = progress.finish();
    end(
        "fibers", n, failed, error, spawn, wall, base, reset, sampled, asleep, &counters,
    )
}

/// `n` std threads that each sleep `dur`, spawned from the main thread and joined.
pub(crate) fn sleep_threads(n: usize, dur: Duration, show: bool) -> CrowdReport {
    let counters = Arc::new(Counters::default());
    let (base, reset) = begin();
    let progress = Progress::start("threads", n, counters.clone(), show);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    let mut failed = 0;
    let mut error = None;
    for _ in 0..n {
        let c = counters.clone();
        match std::thread::Builder::new().spawn(move || {
            c.falling_asleep();
            std::thread::sleep(dur);
            c.sleeping.fetch_sub(1, Ordering::Relaxed);
            c.done.fetch_add(1, Ordering::Release);
        }) {
            Ok(h) => handles.push(h),
            Err(e) => {
                failed += 1;
                error.get_or_insert_with(|| e.to_string());
            }
        }
        counters.spawned.fetch_add(1, Ordering::Relaxed);
    }
    let spawn = start.elapsed();
    let asleep = sample_when_asleep(&counters, handles.len(), start + dur);
    for h in handles {
        if h.join().is_err() {
            failed += 1;
        }
    }
    let wall = start.elapsed();
    let sampled = progress.finish();
    end(
        "std threads",
        n,
        failed,
        error,
        spawn,
        wall,
        base,
        reset,
        sampled,
        asleep,
        &counters,
    )
}

/// `n` tokio tasks that each `tokio::time::sleep(dur)`, spawned from a task of `rt` and joined.
pub(crate) fn sleep_tokio(
    rt: &tokio::runtime::Runtime,
    n: usize,
    dur: Duration,
    show: bool,
) -> CrowdReport {
    let counters = Arc::new(Counters::default());
    let (base, reset) = begin();
    let progress = Progress::start("tokio", n, counters.clone(), show);
    let c = counters.clone();
    let (spawn, wall, failed, error, asleep) = rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let c2 = c.clone();
                handles.push(tokio::spawn(async move {
                    c2.falling_asleep();
                    tokio::time::sleep(dur).await;
                    c2.sleeping.fetch_sub(1, Ordering::Relaxed);
                    c2.done.fetch_add(1, Ordering::Release);
                }));
                c.spawned.fetch_add(1, Ordering::Relaxed);
            }
            let spawn = start.elapsed();
            let c3 = c.clone();
            let sampler = std::thread::spawn(move || sample_when_asleep(&c3, n, start + dur));
            let mut failed = 0;
            let mut error = None;
            for h in handles {
                if let Err(e) = h.await {
                    failed += 1;
                    error.get_or_insert_with(|| e.to_string());
                }
            }
            let wall = start.elapsed();
            (
                spawn,
                wall,
                failed,
                error,
                sampler.join().unwrap_or_default(),
            )
        })
        .await
        .expect("tokio driver task")
    });
    let sampled = progress.finish();
    end(
        "tokio", n, failed, error, spawn, wall, base, reset, sampled, asleep, &counters,
    )
}

/// Hands freed heap memory back to the OS between phases, so that one phase's leftovers do not
/// serve (and hide) the next phase's allocations.
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

// ---- spawn rate ---------------------------------------------------------------------------------

/// Nanoseconds per spawn + join of `n` trivial fibers (spawned from a fiber; all spawned, then all
/// joined). Best of `rounds`.
pub(crate) fn spawn_rate_fiber(rt: &fiber::Runtime, n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        rt.block_on(|| {
            let start = Instant::now();
            let hs: Vec<_> = (0..n).map(|i| fiber::spawn(move || i)).collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, n * (n - 1) / 2);
            start.elapsed()
        })
    }) / n as f64
}

/// As [`spawn_rate_fiber`] for tokio tasks (spawned from a task).
pub(crate) fn spawn_rate_tokio(rt: &tokio::runtime::Runtime, n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        rt.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
                start.elapsed()
            })
            .await
            .unwrap()
        })
    }) / n as f64
}

/// As [`spawn_rate_fiber`] for std threads.
pub(crate) fn spawn_rate_threads(n: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        let start = Instant::now();
        let hs: Vec<_> = (0..n).map(|i| std::thread::spawn(move || i)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        start.elapsed()
    }) / n as f64
}

// ---- switch cost --------------------------------------------------------------------------------

/// Nanoseconds per switch between two std threads pinned to one CPU, handing a turn back and
/// forth with park/unpark (each handoff is one kernel context switch). total / (2 × `per_side`).
pub(crate) fn switch_threads(per_side: u64, rounds: u32) -> f64 {
    best_of(rounds, || {
        let turn = Arc::new(AtomicU64::new(0));
        let limit = 2 * per_side;
        let main = std::thread::current();
        let t2 = turn.clone();
        let partner = std::thread::spawn(move || {
            pin_to_cpu0();
            loop {
                let t = t2.load(Ordering::Acquire);
                if t >= limit {
                    return;
                }
                if t % 2 == 1 {
                    t2.store(t + 1, Ordering::Release);
                    main.unpark();
                } else {
                    std::thread::park();
                }
            }
        });
        let other = partner.thread().clone();
        let restore = pin_to_cpu0();
        let start = Instant::now();
        loop {
            let t = turn.load(Ordering::Acquire);
            if t >= limit {
                break;
            }
            if t % 2 == 0 {
                turn.store(t + 1, Ordering::Release);
                other.unpark();
            } else {
                std::thread::park();
            }
        }
        let elapsed = start.elapsed();
        partner.join().unwrap();
        restore_affinity(restore);
        elapsed
    }) / (2 * per_side) as f64
}

/// Pins the calling thread to CPU 0; returns the previous mask.
pub(crate) fn pin_to_cpu0() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; the calls only read/write the sets passed by pointer.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        Some(old)
    }
}

fn restore_affinity(old: Option<libc::cpu_set_t>) {
    if let Some(old) = old {
        // SAFETY: as in `pin_to_cpu0`.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    }
}

/// The shortest of `rounds` runs of `f`, in nanoseconds.
pub(crate) fn best_of(rounds: u32, mut f: impl FnMut() -> Duration) -> f64 {
    (0..rounds.max(1))
        .map(|_| f().as_nanos() as f64)
        .fold(f64::INFINITY, f64::min)
}
