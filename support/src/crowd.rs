//! Crowds of sleepers (fibers, std threads, tokio tasks), measured: wall time, peak RSS, page
//! tables and memory maps per sleeper (`million`, `stress`, `bench_report`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mem::{mem, mem_with_maps, reset_peak, Mem};
use crate::progress::bar;

/// Counters a crowd of sleepers updates, read by the progress line.
#[derive(Default)]
pub struct Counters {
    /// Sleepers spawned so far.
    pub spawned: AtomicUsize,
    /// Sleepers asleep now.
    pub sleeping: AtomicUsize,
    /// Sleepers that woke up and finished.
    pub done: AtomicUsize,
    /// The most sleepers that were asleep at the same time.
    pub max_sleeping: AtomicUsize,
}

impl Counters {
    /// Called by a sleeper just before it goes to sleep.
    pub fn falling_asleep(&self) {
        let now = self.sleeping.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_sleeping.fetch_max(now, Ordering::Relaxed);
    }
}

/// A thread that samples the RSS every 10 ms (a fallback for the peak where `VmHWM` cannot be
/// reset) and shows a crowd on a progress bar: sleepers done out of all, then RSS, asleep, spawned.
pub struct Progress {
    stop: Arc<AtomicBool>,
    max_rss: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts sampling and showing the crowd `label` of `total` sleepers (the bar only if `show`).
    pub fn start(label: &str, total: usize, counters: Arc<Counters>, show: bool) -> Progress {
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
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max_rss.load(Ordering::Relaxed)
    }
}

/// What one crowd of sleepers cost.
#[derive(Debug, Clone)]
pub struct CrowdReport {
    /// What slept: `fibers`, `std threads`, `tokio`.
    pub kind: &'static str,
    /// How many.
    pub n: usize,
    /// Workers that failed to start or join.
    pub failed: usize,
    /// From the first spawn until all were spawned.
    pub spawn: Duration,
    /// From the first spawn until all were joined.
    pub wall: Duration,
    /// The figures before the first spawn.
    pub base: Mem,
    /// Peak RSS in KiB (`VmHWM` after a reset, else the sampled maximum).
    pub peak_rss: u64,
    /// Peak of page tables seen while all were asleep, in KiB.
    pub peak_pte: u64,
    /// Memory maps while all were asleep (if sampled).
    pub maps: u64,
    /// The first error, if any.
    pub error: Option<String>,
    /// The most that were asleep at the same time (all `n` unless starting them lagged behind).
    pub peak_asleep: usize,
}

impl CrowdReport {
    /// (peak − baseline) / n, in KiB.
    pub fn rss_per_worker_kib(&self) -> f64 {
        self.peak_rss.saturating_sub(self.base.rss) as f64 / self.n.max(1) as f64
    }

    /// (peak − baseline) / the most asleep at once, in KiB: the cost of one sleeper even when
    /// not all `n` were asleep together (then it also carries the not-yet-started ones).
    pub fn rss_per_sleeper_kib(&self) -> f64 {
        self.peak_rss.saturating_sub(self.base.rss) as f64 / self.peak_asleep.max(1) as f64
    }

    /// (page-table peak − baseline) / n, in KiB.
    pub fn pte_per_worker_kib(&self) -> f64 {
        self.peak_pte.saturating_sub(self.base.pte) as f64 / self.n.max(1) as f64
    }

    /// Prints the report on one line.
    pub fn print(&self) {
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
pub fn sleep_fibers(rt: &fiber::Runtime, n: usize, dur: Duration, show: bool) -> CrowdReport {
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
pub fn sleep_threads(n: usize, dur: Duration, show: bool) -> CrowdReport {
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
pub fn sleep_tokio(
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

fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
