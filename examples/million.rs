//! A million sleeping fibers: spawns `--fibers N` (default 1,000,000) fibers that each sleep
//! `--sleep-ms` (default 1000) ms, with progress bars, then prints wall time, peak RSS and
//! RSS per fiber; then the same for `--threads N` (default 10,000) std threads, side by side.
//!
//! `cargo run --release --example million -- [--fibers N] [--threads N] [--sleep-ms MS] [--workers N]`
//!
//! RSS per worker = (peak RSS − RSS before spawning) / N, and RSS per sleeper divides by the most that
//! were asleep at the same time instead (the same when all N sleep together); the peak is `VmHWM` after a reset through
//! `/proc/self/clear_refs` (or the highest sampled `VmRSS` where that is not allowed). Page tables
//! (`VmPTE`) are kernel memory outside the RSS and are printed separately.
use std::process::ExitCode;
use std::time::Duration;

use fiber_support::flags::Flags;
use fiber_support::{crowd, mem};

const USAGE: &str =
    "usage: million [--fibers N] [--threads N] [--sleep-ms MS] [--workers N] [--quiet]
  --fibers N     fibers to spawn (default 1000000)
  --threads N    std threads to spawn for comparison (default 10000; 0 skips)
  --sleep-ms MS  how long each sleeps (default 1000)
  --workers N    fiber worker threads (default: one per CPU)
  --quiet        no progress bars (they are also off when stderr is not a terminal)";

struct Opts {
    fibers: usize,
    threads: usize,
    sleep_ms: u64,
    workers: Option<usize>,
    quiet: bool,
}

fn parse() -> Opts {
    let mut flags = Flags::parse(USAGE, &["--quiet"]);
    let o = Opts {
        fibers: flags.get("--fibers", 1_000_000),
        threads: flags.get("--threads", 10_000),
        sleep_ms: flags.get("--sleep-ms", 1000),
        workers: flags.opt("--workers"),
        quiet: flags.switch("--quiet"),
    };
    flags.done();
    o
}

fn main() -> ExitCode {
    let o = parse();
    let dur = Duration::from_millis(o.sleep_ms);
    let mut builder = fiber::Runtime::builder();
    if let Some(w) = o.workers {
        builder = builder.worker_threads(w);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("million: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default();
    println!(
        "million: {} fibers sleeping {} ms on {:?}, vs {} std threads (vm.max_map_count = {}, {} CPUs)",
        o.fibers,
        o.sleep_ms,
        rt,
        o.threads,
        max_maps.trim(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let fibers = crowd::sleep_fibers(&rt, o.fibers, dur, !o.quiet);
    drop(rt);
    mem::trim();
    let threads = (o.threads > 0).then(|| crowd::sleep_threads(o.threads, dur, !o.quiet));

    println!();
    println!("{:<28} {:>14} {:>14}", "", "fibers", "std threads");
    let row = |name: &str, f: String, t: Option<String>| {
        println!("{name:<28} {f:>14} {:>14}", t.unwrap_or_else(|| "-".into()));
    };
    let t = threads.as_ref();
    row("count", fibers.n.to_string(), t.map(|t| t.n.to_string()));
    row(
        "wall time (s)",
        format!("{:.3}", fibers.wall.as_secs_f64()),
        t.map(|t| format!("{:.3}", t.wall.as_secs_f64())),
    );
    row(
        "  of which spawning (s)",
        format!("{:.3}", fibers.spawn.as_secs_f64()),
        t.map(|t| format!("{:.3}", t.spawn.as_secs_f64())),
    );
    row(
        "peak RSS (MiB)",
        format!("{:.1}", fibers.peak_rss as f64 / 1024.0),
        t.map(|t| format!("{:.1}", t.peak_rss as f64 / 1024.0)),
    );
    row(
        "baseline RSS (MiB)",
        format!("{:.1}", fibers.base.rss as f64 / 1024.0),
        t.map(|t| format!("{:.1}", t.base.rss as f64 / 1024.0)),
    );
    row(
        "most asleep at once",
        fibers.peak_asleep.to_string(),
        t.map(|t| t.peak_asleep.to_string()),
    );
    row(
        "RSS per worker (KiB, / count)",
        format!("{:.2}", fibers.rss_per_worker_kib()),
        t.map(|t| format!("{:.2}", t.rss_per_worker_kib())),
    );
    row(
        "RSS per sleeper (KiB)",
        format!("{:.2}", fibers.rss_per_sleeper_kib()),
        t.map(|t| format!("{:.2}", t.rss_per_sleeper_kib())),
    );
    row(
        "page tables per worker (KiB)",
        format!("{:.2}", fibers.pte_per_worker_kib()),
        t.map(|t| format!("{:.2}", t.pte_per_worker_kib())),
    );
    row(
        "memory maps while asleep",
        fibers.maps.to_string(),
        t.map(|t| t.maps.to_string()),
    );
    row(
        "failed",
        fibers.failed.to_string(),
        t.map(|t| t.failed.to_string()),
    );
    if let Some(t) = t {
        println!(
            "\nper sleeper, fibers use {:.1}x less RSS than std threads; wall overhead over the sleep: fibers {:.0} ms, threads {:.0} ms",
            t.rss_per_sleeper_kib() / fibers.rss_per_sleeper_kib().max(1e-9),
            (fibers.wall.as_secs_f64() - dur.as_secs_f64()) * 1e3,
            (t.wall.as_secs_f64() - dur.as_secs_f64()) * 1e3,
        );
    }
    for r in [Some(&fibers), t].into_iter().flatten() {
        if let Some(e) = &r.error {
            println!("{}: {} failed; first error: {e}", r.kind, r.failed);
        }
    }
    if fibers.peak_asleep < fibers.n {
        println!(
            "note: only {} of {} fibers were asleep at the same time (starting them lagged behind the first wake-ups); \
             RSS per sleeper divides by that number",
            fibers.peak_asleep, fibers.n
        );
    }
    if fibers.failed > 0 || threads.as_ref().is_some_and(|t| t.failed > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
