//! The soak: rounds of a random mix of everything fiber does, for `--seconds`, with exact totals.
//!
//! `cargo run --release --example soak -- --seconds 600`
//!
//! Each round runs 3-8 scenarios at once on one runtime (`mix.rs`): spawn/join trees
//! (`Builder` names and stack sizes), park/unpark pairs, sleeps and `park_timeout`, `mpsc` and
//! `mpmc` channels (unbounded, bounded, zero capacity; every send and receive flavour, `select!`
//! with timeouts and `default`), `Mutex`, `RwLock`, `Condvar`, `Semaphore`, `Barrier`,
//! `WaitGroup`, `fiber::scope` over borrowed data, `spawn_blocking`, fiber-locals, TCP echo over
//! `fiber::net` with aborted connections (drop, reset by `SO_LINGER` 0, shutdown, a server
//! handler panicking), and a second runtime dropped while its fibers sleep, park and wait on a
//! channel and hold and wait on a `Mutex`, `RwLock`, `Semaphore`, `Condvar` and zero- and
//! one-capacity channels shared with the soak's runtime and plain threads (which then find every
//! lock free, every permit back and every message received once or still queued). About one
//! fiber in ten panics on purpose. Every scenario computes its expected totals from its plan
//! alone and compares them with what happened.
//!
//! The process fails (exit status 1, a line saying what) on any mismatch, when the open fds
//! after a round differ from those after the first round, or when the resident set grows past
//! the warm-up peak plus `--rss-growth-mib` (or past `--rss-bound-mib` at any time); a watchdog
//! thread exits with status 3 if no round completes within `--hang-secs`, naming the scenarios
//! still running. Once a second it prints a `SAMPLE` line (RSS, VmSize, fds, threads, rounds).
//! The plan of every round follows from `--seed` (printed at the start), so a failure can be
//! replayed with the same plan; the interleaving is the scheduler's.
mod mix;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fiber_support::flags::Flags;
use fiber_support::mem;
use fiber_support::rng::{splitmix, Rng};

use mix::{payload_text, Ctx, Kind, Report, INJECTED, KINDS};

const USAGE: &str = "usage: soak [--seconds N] [--workers N] [--seed S] [--load F] [--hang-secs N]
            [--warmup-secs N] [--rss-growth-mib N] [--rss-bound-mib N] [--only KIND,...]
            [--inject mismatch|hang|fd|rss]
  --seconds          how long to run rounds (default 60)
  --workers          worker threads of the runtime (default: one per CPU)
  --seed             seed of the plan, decimal or 0x-hex (default: from the clock; printed)
  --load             size multiplier of the scenarios (default 1 in release, 0.25 in debug builds)
  --hang-secs        watchdog: fail if no round completes for this long (default 60)
  --warmup-secs      RSS warm-up (default seconds/5, between 3 and 60)
  --rss-growth-mib   after warm-up, fail if RSS exceeds the warm-up peak by this much (default 64)
  --rss-bound-mib    fail if RSS ever exceeds this (default 1024)
  --only KINDS       run only these scenario kinds (comma-separated; see the final table)
  --inject KIND      self-test of the checks: a wrong total (mismatch), a round that never ends
                     (hang), a leaked fd (fd) or leaked memory after warm-up (rss)";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Inject {
    Mismatch,
    Hang,
    Fd,
    Rss,
}

struct Opts {
    seconds: u64,
    workers: Option<usize>,
    seed: u64,
    load: f64,
    hang: u64,
    warmup: u64,
    growth_mib: u64,
    bound_mib: u64,
    inject: Option<Inject>,
    only: Vec<Kind>,
}

fn parse_opts() -> Opts {
    let mut flags = Flags::parse(USAGE, &["--with-known-bugs"]);
    if flags.switch("--with-known-bugs") {
        flags.fail(
            "`--with-known-bugs` is gone: the defects it kept apart are fixed, and what it added \
             is part of the normal mix",
        );
    }
    let seconds = flags.get("--seconds", 60);
    let workers: Option<usize> = flags.opt("--workers");
    if workers.is_some_and(|n| n == 0 || n > fiber::MAX_WORKER_THREADS) {
        flags.fail("`--workers` must be between 1 and 1024");
    }
    let seed = flags.opt::<String>("--seed").map(|v| {
        let hex = v.strip_prefix("0x").map(|h| u64::from_str_radix(h, 16));
        match hex.unwrap_or_else(|| v.parse()) {
            Ok(seed) => seed,
            Err(_) => flags.fail(&format!("bad value for `--seed`: `{v}`")),
        }
    });
    let load: Option<f64> = flags.opt("--load");
    if load.is_some_and(|f| !(f > 0.0 && f <= 100.0)) {
        flags.fail("`--load` must be in (0, 100]");
    }
    let hang = flags.get("--hang-secs", 60u64).max(1);
    let warmup: Option<u64> = flags.opt("--warmup-secs");
    let growth_mib = flags.get("--rss-growth-mib", 64);
    let bound_mib = flags.get("--rss-bound-mib", 1024);
    let inject = flags.opt::<String>("--inject").map(|v| match v.as_str() {
        "mismatch" => Inject::Mismatch,
        "hang" => Inject::Hang,
        "fd" => Inject::Fd,
        "rss" => Inject::Rss,
        _ => flags.fail(&format!("bad value for `--inject`: `{v}`")),
    });
    let mut only = Vec::new();
    for list in flags.all::<String>("--only") {
        for name in list.split(',') {
            match KINDS.iter().find(|k| k.name() == name) {
                Some(k) => only.push(*k),
                None => flags.fail(&format!("unknown scenario kind `{name}`")),
            }
        }
    }
    flags.done();
    let seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        splitmix(t ^ std::process::id() as u64)
    });
    Opts {
        seconds,
        workers,
        seed,
        load: load.unwrap_or(if cfg!(debug_assertions) { 0.25 } else { 1.0 }),
        hang,
        warmup: warmup.unwrap_or((seconds / 5).clamp(3, 60)),
        growth_mib,
        bound_mib,
        inject,
        only,
    }
}

// ---- /proc sampling ----------------------------------------------------------------------------

/// One sample of this process.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    secs: u64,
    rss_kib: u64,
    vmsize_kib: u64,
    fds: u64,
    threads: u64,
    rounds: u64,
}

/// Shared between the rounds and the monitor thread.
struct Monitor {
    start: Instant,
    rounds: AtomicU64,
    /// When the last round completed (or the run started).
    last_round: Mutex<Instant>,
    /// Scenarios of the current round still running: (index, kind).
    running: Mutex<Vec<(usize, &'static str)>>,
    /// Reading /proc opens fds: the fd check after a round and the sampler take turns.
    proc_lock: Mutex<()>,
    samples: Mutex<Vec<Sample>>,
    seed: u64,
}

impl Monitor {
    fn sample(&self) -> Sample {
        let _turn = self.proc_lock.lock().unwrap();
        let m = mem::mem();
        Sample {
            secs: self.start.elapsed().as_secs(),
            rss_kib: m.rss,
            vmsize_kib: m.size,
            threads: m.threads,
            fds: mem::open_fds(),
            rounds: self.rounds.load(Ordering::SeqCst),
        }
    }

    /// Once a second: a sample line, the RSS bounds, the watchdog. Exits the process on failure.
    fn run(&self, o: &Opts) {
        let mut warm_peak = 0u64;
        let mut bound: Option<u64> = None;
        let mut tick = 1;
        loop {
            let next = self.start + Duration::from_secs(tick);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            tick += 1;
            let s = self.sample();
            println!(
                "SAMPLE t={}s rss_kib={} vmsize_kib={} fds={} threads={} rounds={}",
                s.secs, s.rss_kib, s.vmsize_kib, s.fds, s.threads, s.rounds
            );
            self.samples.lock().unwrap().push(s);
            if s.rss_kib > o.bound_mib << 10 {
                fail(
                    self.seed,
                    &format!(
                        "RSS BOUND: resident set {} MiB exceeds --rss-bound-mib {} at {} s",
                        s.rss_kib >> 10,
                        o.bound_mib,
                        s.secs
                    ),
                );
            }
            match bound {
                None if s.secs < o.warmup => warm_peak = warm_peak.max(s.rss_kib),
                None => {
                    warm_peak = warm_peak.max(s.rss_kib);
                    let b = warm_peak + (o.growth_mib << 10);
                    println!(
                        "warm-up over after {} s: peak RSS {} KiB; bound from now on {} KiB",
                        s.secs, warm_peak, b
                    );
                    bound = Some(b);
                }
                Some(b) if s.rss_kib > b => fail(
                    self.seed,
                    &format!(
                        "RSS GROWTH: resident set {} KiB at {} s exceeds the bound {} KiB \
                         (warm-up peak {} KiB + {} MiB)",
                        s.rss_kib, s.secs, b, warm_peak, o.growth_mib
                    ),
                ),
                Some(_) => {}
            }
            let stalled = self.last_round.lock().unwrap().elapsed();
            if stalled > Duration::from_secs(o.hang) {
                let running = self.running.lock().unwrap().clone();
                let names: Vec<String> = running.iter().map(|(i, k)| format!("#{i} {k}")).collect();
                println!(
                    "WATCHDOG: no round completed for {} s (round {} running; scenarios not \
                     finished: {}); seed {:#x}",
                    stalled.as_secs(),
                    s.rounds + 1,
                    names.join(", "),
                    self.seed
                );
                std::process::exit(3);
            }
        }
    }
}

/// Prints the failure and exits with status 1.
fn fail(seed: u64, msg: &str) -> ! {
    println!("SOAK FAILED: {msg}");
    println!("(replay the same plan with --seed {seed:#x})");
    std::process::exit(1)
}

// ---- the rounds --------------------------------------------------------------------------------

/// Running totals per scenario kind.
#[derive(Default)]
struct KindTotals {
    runs: u64,
    fibers: u64,
    panics: u64,
    messages: u64,
    bytes: u64,
}

fn main() -> ExitCode {
    let o = parse_opts();
    let kinds_to_run: Vec<Kind> = if o.only.is_empty() {
        KINDS.to_vec()
    } else {
        o.only.clone()
    };
    let mut builder = fiber::RuntimeBuilder::new().thread_name("soak");
    if let Some(n) = o.workers {
        builder = builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Injected panics are expected and accounted for; keep them quiet. Anything else is printed
    // by the hook that was there (the runtime's, which names the fiber, then std's): installed
    // after the runtime is built, so it wraps the runtime's.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = payload_text(info.payload());
        if !(text.starts_with(INJECTED) || text == "a scoped fiber panicked") {
            default_hook(info);
        }
    }));
    println!(
        "soak: seed {:#x}, {} s, workers {}, load {}, {} scenario kinds, {} build",
        o.seed,
        o.seconds,
        o.workers
            .map(|n| n.to_string())
            .unwrap_or_else(|| "one per CPU".into()),
        o.load,
        kinds_to_run.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "soak: bounds: RSS <= warm-up peak ({} s) + {} MiB, and <= {} MiB always; open fds after \
         every round == after round 1; watchdog {} s per round",
        o.warmup, o.growth_mib, o.bound_mib, o.hang
    );
    let monitor = Arc::new(Monitor {
        start: Instant::now(),
        rounds: AtomicU64::new(0),
        last_round: Mutex::new(Instant::now()),
        running: Mutex::new(Vec::new()),
        proc_lock: Mutex::new(()),
        samples: Mutex::new(Vec::new()),
        seed: o.seed,
    });
    let opts = Arc::new(o);
    {
        let (m, o) = (monitor.clone(), opts.clone());
        std::thread::Builder::new()
            .name("soak-monitor".into())
            .spawn(move || m.run(&o))
            .expect("start the monitor thread");
    }
    let o = &*opts;
    let ctx = Ctx { load: o.load };
    let mut rng = Rng::new(o.seed);
    let mut checks: BTreeMap<(&'static str, &'static str), (u64, u64)> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, KindTotals> = BTreeMap::new();
    let deadline = monitor.start + Duration::from_secs(o.seconds);
    let mut fd_base = None;
    let mut round = 0u64;
    let mut leaked: Vec<Vec<u8>> = Vec::new();
    while round == 0 || Instant::now() < deadline {
        round += 1;
        let hang = o.inject == Some(Inject::Hang) && round == 1;
        // The injected hang runs alone, so the watchdog's message can only name it.
        let n = if hang { 0 } else { rng.range(3, 9) };
        let plan: Vec<(Kind, Rng)> = (0..n)
            // No kind is rationed: each runs as often as the draw says (the `runtime`
            // scenario too, now that a dropped runtime gives its memory back).
            .map(|_| (rng.pick(&kinds_to_run), rng.fork()))
            .collect();
        *monitor.running.lock().unwrap() = plan
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (i, k.name()))
            .collect();
        let results: Vec<Result<Report, String>> = rt.block_on(|| {
            fiber::scope(|s| {
                let hs: Vec<_> = plan
                    .into_iter()
                    .enumerate()
                    .map(|(i, (kind, r))| {
                        let (ctx, monitor) = (&ctx, &monitor);
                        s.spawn(move || {
                            let report = kind.run(ctx, r);
                            monitor.running.lock().unwrap().retain(|(j, _)| *j != i);
                            report
                        })
                    })
                    .collect();
                if hang {
                    // A wait that never ends: the watchdog must notice.
                    let (tx, rx) = fiber::sync::mpmc::bounded::<()>(0);
                    monitor.running.lock().unwrap().push((n, "injected hang"));
                    let _ = rx.recv();
                    drop(tx);
                }
                hs.into_iter()
                    .zip(0..)
                    .map(|(h, i)| {
                        h.join()
                            .map_err(|p| format!("scenario #{i}: {}", payload_text(&*p)))
                    })
                    .collect()
            })
        });
        let mut failures = Vec::new();
        let mut failed = 0;
        for (i, res) in results.into_iter().enumerate() {
            let mut rep = match res {
                Ok(rep) => rep,
                Err(e) => {
                    failed += 1;
                    failures.push(format!("round {round}: scenario panicked: {e}"));
                    continue;
                }
            };
            if o.inject == Some(Inject::Mismatch) && round == 2 && i == 0 {
                if let Some(c) = rep.checks.first_mut() {
                    c.actual += 1; // self-test: the comparison below must catch it
                    rep.notes
                        .push("(--inject mismatch added 1 to this actual)".into());
                }
            }
            let kt = kinds.entry(rep.kind).or_default();
            kt.runs += 1;
            kt.fibers += rep.fibers;
            kt.panics += rep.panics();
            kt.messages += rep.messages;
            kt.bytes += rep.bytes;
            let mut bad = false;
            for c in &rep.checks {
                let e = checks.entry((rep.kind, c.what)).or_default();
                // Sums of values can exceed u64 over a long run: both sides wrap alike.
                e.0 = e.0.wrapping_add(c.expected);
                e.1 = e.1.wrapping_add(c.actual);
                if c.expected != c.actual {
                    bad = true;
                    failed += 1;
                    failures.push(format!(
                        "round {round}, scenario #{i} {}: {}: expected {}, got {}",
                        rep.kind, c.what, c.expected, c.actual
                    ));
                }
            }
            if bad {
                for n in &rep.notes {
                    failures.push(format!("    note: {n}"));
                }
            }
        }
        if !failures.is_empty() {
            println!("MISMATCH:");
            for f in &failures {
                println!("  {f}");
            }
            fail(
                o.seed,
                &format!("{failed} check(s) failed in round {round}"),
            );
        }
        match o.inject {
            Some(Inject::Fd) if round == 2 => {
                std::mem::forget(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
            }
            Some(Inject::Rss) if monitor.start.elapsed() > Duration::from_secs(o.warmup) => {
                leaked.push(vec![1u8; 16 << 20]); // self-test: 16 MiB per round, touched
            }
            _ => {}
        }
        let fds = {
            let _turn = monitor.proc_lock.lock().unwrap();
            mem::open_fds()
        };
        match fd_base {
            None => fd_base = Some(fds),
            Some(b) if b != fds => fail(
                o.seed,
                &format!(
                    "FD LEAK: {} {} fds open after round {round} than after round 1 ({fds} vs {b})",
                    fds.abs_diff(b),
                    if fds > b { "more" } else { "fewer" }
                ),
            ),
            Some(_) => {}
        }
        monitor.rounds.store(round, Ordering::SeqCst);
        *monitor.last_round.lock().unwrap() = Instant::now();
    }
    let elapsed = monitor.start.elapsed();
    let last = monitor.sample();
    let samples = monitor.samples.lock().unwrap().clone();
    report(
        o,
        round,
        elapsed,
        &kinds,
        &checks,
        &samples,
        last,
        fd_base.unwrap_or(0),
    );
    drop(leaked);
    ExitCode::SUCCESS
}

/// The final tables and the `RESULT` line.
#[allow(clippy::too_many_arguments)]
fn report(
    o: &Opts,
    rounds: u64,
    elapsed: Duration,
    kinds: &BTreeMap<&'static str, KindTotals>,
    checks: &BTreeMap<(&'static str, &'static str), (u64, u64)>,
    samples: &[Sample],
    last: Sample,
    fd_base: u64,
) {
    println!(
        "\nsoak: {rounds} rounds in {:.1} s, seed {:#x}",
        elapsed.as_secs_f64(),
        o.seed
    );
    println!(
        "{:<10} {:>6} {:>10} {:>8} {:>11} {:>12}",
        "scenario", "runs", "fibers", "panics", "messages", "tcp bytes"
    );
    let mut all = KindTotals::default();
    for (k, t) in kinds {
        println!(
            "{:<10} {:>6} {:>10} {:>8} {:>11} {:>12}",
            k, t.runs, t.fibers, t.panics, t.messages, t.bytes
        );
        all.runs += t.runs;
        all.fibers += t.fibers;
        all.panics += t.panics;
        all.messages += t.messages;
        all.bytes += t.bytes;
    }
    println!(
        "{:<10} {:>6} {:>10} {:>8} {:>11} {:>12}",
        "total", all.runs, all.fibers, all.panics, all.messages, all.bytes
    );
    println!("\nchecks (summed over all runs; every one matched):");
    for ((k, what), (e, a)) in checks {
        println!("  {k:<10} {what:<58} expected {e:>12} got {a:>12}");
    }
    let after_warm: Vec<&Sample> = samples.iter().filter(|s| s.secs >= o.warmup).collect();
    let max_rss = samples
        .iter()
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(last.rss_kib);
    let warm_rss = samples
        .iter()
        .filter(|s| s.secs < o.warmup)
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(0);
    println!(
        "\nRSS: warm-up peak {} KiB, max {} KiB, after warm-up {}..{} KiB, last {} KiB; fds \
         after every round {}",
        warm_rss,
        max_rss,
        after_warm.iter().map(|s| s.rss_kib).min().unwrap_or(0),
        after_warm.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        last.rss_kib,
        fd_base
    );
    println!(
        "RESULT status=ok seconds={:.1} rounds={rounds} scenarios={} kinds_run={} fibers={} \
         panics={} messages={} bytes={} checks={} samples={} rss_warm_kib={warm_rss} \
         rss_max_kib={max_rss} rss_last_kib={} fds={fd_base} seed={:#x}",
        elapsed.as_secs_f64(),
        all.runs,
        kinds.len(),
        all.fibers,
        all.panics,
        all.messages,
        all.bytes,
        checks.len(),
        samples.len(),
        last.rss_kib,
        o.seed
    );
}
