//! The stress demo: runs a list of stages, each measuring fibers against std threads and tokio
//! tasks in the same run, then prints one table with the ratios.
//!
//! `cargo run --release --example stress -- [--stage NAME]... [--fibers N] [--threads N] ...`
//! (`--help` lists the stages and flags). Stages:
//! - `million`: N fibers (default 1,000,000) that each sleep, vs std threads (10,000) and tokio
//!   tasks (as many as fibers): wall time, peak RSS, RSS per sleeper;
//! - `spawn`: spawn + join rate of trivial workers;
//! - `switch`: cost of one switch (two fibers alternating `yield_now` on one worker; tokio tasks on
//!   a current-thread runtime; two std threads pinned to one CPU handing a turn back and forth);
//! - `echo`: 64-byte echo round trips at `--echo-conns` connections (default 1,000) against a fiber
//!   server, a std thread-per-connection server and a tokio server, each in a child process (this
//!   program re-run with `--serve KIND`), driven by the same fiber client;
//! - `fanout`: `--fanout N` requests (default 2,000) to a server (a child process) that answers
//!   after 100 ms, one fiber vs one OS thread per request, the same blocking client code: wall time
//!   in latencies (fibers: about one, plus the CPU time the connections cost; see `fan_out`).
//!
//! Each stage shows a progress bar on stderr (off with `--quiet` or when stderr is not a terminal);
//! the results go to stdout.
use std::process::ExitCode;

use indicatif::ProgressBar;
use std::time::{Duration, Instant};

mod common;
mod demo;
#[path = "echo_common/mod.rs"]
mod echo_common;
#[path = "../benches/workloads/mod.rs"]
mod workloads;

/// Command-line options shared by the stages.
struct Opts {
    stages: Vec<String>,
    fibers: usize,
    threads: usize,
    tokio: Option<usize>,
    sleep_ms: u64,
    spawn: u64,
    switches: u64,
    echo_conns: usize,
    echo_secs: u64,
    fanout: usize,
    workers: usize,
    quiet: bool,
}

/// One stage of the demo: a name, a one-line description, and the function that runs it.
struct Stage {
    name: &'static str,
    about: &'static str,
    run: fn(&Opts, &mut Table),
}

/// The stages, in the order a full run executes them. Later issues add stages here.
const STAGES: &[Stage] = &[
    Stage {
        name: "million",
        about: "N sleeping fibers vs std threads vs tokio tasks: wall time, peak RSS, RSS each",
        run: stage_million,
    },
    Stage {
        name: "spawn",
        about: "spawn + join rate of trivial fibers vs tokio tasks vs std threads",
        run: stage_spawn,
    },
    Stage {
        name: "switch",
        about: "one context switch: fiber yield_now vs tokio yield_now vs std thread handoff",
        run: stage_switch,
    },
    Stage {
        name: "fanout",
        about: "N requests to a 100 ms server: one fiber vs one OS thread per request",
        run: stage_fanout,
    },
    Stage {
        name: "echo",
        about: "echo round trips at N connections: fiber vs thread-per-connection vs tokio servers",
        run: stage_echo,
    },
];

/// One row of the final table: a figure for fibers, std threads and tokio (lower is better).
struct Row {
    stage: &'static str,
    metric: String,
    unit: &'static str,
    fiber: Option<f64>,
    thread: Option<f64>,
    tokio: Option<f64>,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        stage: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        fiber: Option<f64>,
        thread: Option<f64>,
        tokio: Option<f64>,
    ) {
        self.0.push(Row {
            stage,
            metric: metric.into(),
            unit,
            fiber,
            thread,
            tokio,
        });
    }

    fn print(&self) {
        let cell = |v: Option<f64>| match v {
            Some(v) if v >= 100.0 => format!("{v:.0}"),
            Some(v) => format!("{v:.2}"),
            None => "-".into(),
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "\n{:<8} {:<34} {:>10} {:>10} {:>10} {:>13} {:>13}",
            "stage", "metric", "fiber", "std", "tokio", "fiber/tokio", "fiber/std"
        );
        println!("{}", "-".repeat(104));
        for r in &self.0 {
            println!(
                "{:<8} {:<34} {:>10} {:>10} {:>10} {:>13} {:>13}",
                r.stage,
                format!("{} ({})", r.metric, r.unit),
                cell(r.fiber),
                cell(r.thread),
                cell(r.tokio),
                ratio(r.fiber, r.tokio),
                ratio(r.fiber, r.thread),
            );
        }
        println!("(lower is better except for counts; a ratio below 1 means fibers win)");
    }
}

fn stage_million(o: &Opts, table: &mut Table) {
    let dur = Duration::from_millis(o.sleep_ms);
    let tokio_n = o.tokio.unwrap_or(o.fibers);
    println!(
        "[million] {} fibers, {} std threads, {} tokio tasks; each sleeps {} ms",
        o.fibers, o.threads, tokio_n, o.sleep_ms
    );
    let rt = fiber_runtime(o.workers);
    let f = common::sleep_fibers(&rt, o.fibers, dur, !o.quiet);
    drop(rt);
    f.print();
    common::trim();
    let t = (o.threads > 0).then(|| common::sleep_threads(o.threads, dur, !o.quiet));
    if let Some(t) = &t {
        t.print();
    }
    common::trim();
    let k = (tokio_n > 0).then(|| {
        let rt = tokio_runtime(o.workers);
        common::sleep_tokio(&rt, tokio_n, dur, !o.quiet)
    });
    if let Some(k) = &k {
        k.print();
    }
    common::trim();
    let secs = |r: &common::CrowdReport| r.wall.as_secs_f64();
    let per = |r: &common::CrowdReport| r.rss_per_sleeper_kib();
    let asleep = |r: &common::CrowdReport| r.peak_asleep as f64;
    let peak = |r: &common::CrowdReport| r.peak_rss as f64 / 1024.0;
    table.add(
        "million",
        format!("wall for a {} ms sleep", o.sleep_ms),
        "s",
        Some(secs(&f)),
        t.as_ref().map(secs),
        k.as_ref().map(secs),
    );
    table.add(
        "million",
        "most asleep at once",
        "count",
        Some(asleep(&f)),
        t.as_ref().map(asleep),
        k.as_ref().map(asleep),
    );
    table.add(
        "million",
        "RSS per sleeper",
        "KiB",
        Some(per(&f)),
        t.as_ref().map(per),
        k.as_ref().map(per),
    );
    table.add(
        "million",
        "peak RSS",
        "MiB",
        Some(peak(&f)),
        t.as_ref().map(peak),
        k.as_ref().map(peak),
    );
    for r in [Some(&f), t.as_ref(), k.as_ref()].into_iter().flatten() {
        if r.failed > 0 {
            println!(
                "  {}: {} failed: {}",
                r.kind,
                r.failed,
                r.error.as_deref().unwrap_or("?")
            );
        }
    }
}

fn stage_spawn(o: &Opts, table: &mut Table) {
    let n = o.spawn;
    let threads_n = n.min(o.threads.max(1) as u64);
    println!(
        "[spawn] spawn + join: {n} fibers, {n} tokio tasks, {threads_n} std threads (best of 3)"
    );
    let bar = common::bar("spawn", 3, !o.quiet);
    let f = common::step(&bar, "fibers", || {
        common::spawn_rate_fiber(&fiber_runtime(o.workers), n, 3)
    });
    let k = common::step(&bar, "tokio tasks", || {
        common::spawn_rate_tokio(&tokio_runtime(o.workers), n, 3)
    });
    let t = common::step(&bar, "std threads", || {
        common::spawn_rate_threads(threads_n, 3)
    });
    bar.finish_with_message("done");
    println!("  fiber {f:.0} ns, tokio {k:.0} ns, std thread {t:.0} ns per spawn + join");
    table.add("spawn", "spawn + join", "ns", Some(f), Some(t), Some(k));
}

fn stage_switch(o: &Opts, table: &mut Table) {
    let per_side = o.switches;
    let thread_side = (per_side / 10).max(1);
    println!(
        "[switch] {per_side} yields per side (fiber, tokio), {thread_side} handoffs per side (std threads pinned to one CPU); best of 3"
    );
    let bar = common::bar("switch", 3, !o.quiet);
    // The same bodies as `cargo bench --bench switch` (benches/workloads/switch.rs).
    let switches = 2 * per_side;
    let f = common::step(&bar, "fibers", || {
        let rt = fiber_runtime(1);
        common::best_of(3, || workloads::switch::fiber(&rt, switches)) / switches as f64
    });
    let k = common::step(&bar, "tokio tasks", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
        common::best_of(3, || workloads::switch::tokio(&rt, switches)) / switches as f64
    });
    let t = common::step(&bar, "std threads", || {
        common::switch_threads(thread_side, 3)
    });
    bar.finish_with_message("done");
    println!("  fiber {f:.1} ns, tokio {k:.1} ns, std thread {t:.1} ns per switch");
    table.add("switch", "one switch", "ns", Some(f), Some(t), Some(k));
}

fn stage_echo(o: &Opts, table: &mut Table) {
    let conns = o.echo_conns;
    let duration = Duration::from_secs(o.echo_secs);
    let warmup = Duration::from_millis(500);
    println!(
        "[echo] {conns} connections, 64 B messages, {} s per server after {} ms warm-up, fiber client with {} workers",
        o.echo_secs,
        warmup.as_millis(),
        o.workers
    );
    let bar = common::bar("echo", 3, !o.quiet);
    let run = |kind: &str| {
        let r = common::step(&bar, &format!("{kind} server"), || {
            let (mut child, addr) = echo_common::spawn_server(kind, o.workers);
            let r = echo_common::run_load(addr, conns, duration, warmup, 64, o.workers);
            let _ = child.kill();
            let _ = child.wait();
            r
        });
        bar.suspend(|| {
            println!(
                "  {kind:<6} {:>9.0} round trips/s, p99 {:.2} ms, {} errors",
                r.per_sec(),
                r.p99.as_secs_f64() * 1e3,
                r.errors
            )
        });
        r
    };
    let (f, t, k) = (run("fiber"), run("std"), run("tokio"));
    bar.finish_with_message("done");
    let per_rt = |r: &echo_common::Report| Some(1e6 / r.per_sec().max(1.0));
    let p99 = |r: &echo_common::Report| Some(r.p99.as_secs_f64() * 1e3);
    let metric = format!("time per round trip, {conns} conns");
    table.add("echo", metric, "µs", per_rt(&f), per_rt(&t), per_rt(&k));
    table.add("echo", "p99 latency", "ms", p99(&f), p99(&t), p99(&k));
}

fn stage_fanout(o: &Opts, table: &mut Table) {
    let n = o.fanout;
    let latency = Duration::from_millis(100);
    if demo::raise_fd_limit(n as u64 + 64) < n as u64 + 64 {
        println!("[fanout] skipped: the open-file limit is too low for {n} requests");
        return;
    }
    let server = demo::ChildServer::start(latency);
    let addr = server.addr;
    println!("[fanout] {n} requests to a server that answers after 100 ms, each mode");
    let bar = common::bar("fanout", 2 * n as u64, !o.quiet);
    // The same blocking request in both modes; true if the server answered 200.
    let fetch = move |bar: ProgressBar, i: usize| {
        let ok = demo::get(addr, &format!("/item/{i}"), Some(Duration::from_secs(30)))
            .is_ok_and(|r| r.status == 200);
        bar.inc(1);
        ok
    };
    bar.set_message("OS threads");
    let t = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let bar = bar.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || fetch(bar, i))
                .expect("spawn thread")
        })
        .collect();
    let threads_ok = threads
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .filter(|&ok| ok)
        .count();
    let thread_time = t.elapsed();
    let rt = fiber_runtime(o.workers);
    bar.set_message("fibers");
    let t = Instant::now();
    let fibers_ok = rt.block_on(|| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let bar = bar.clone();
                fiber::spawn(move || fetch(bar, i))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(false))
            .filter(|&ok| ok)
            .count()
    });
    let fiber_time = t.elapsed();
    drop(rt);
    bar.finish_with_message("done");
    let lat = |d: Duration| d.as_secs_f64() / latency.as_secs_f64();
    println!(
        "  fibers {fibers_ok}/{n} ok in {:.2} latencies, OS threads {threads_ok}/{n} ok in {:.2} latencies",
        lat(fiber_time),
        lat(thread_time)
    );
    table.add(
        "fanout",
        format!("wall for {n} requests"),
        "latencies",
        Some(lat(fiber_time)),
        Some(lat(thread_time)),
        None,
    );
}

fn fiber_runtime(workers: usize) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("fiber runtime")
}

fn tokio_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn usage() -> String {
    let mut s = String::from(
        "usage: stress [--stage NAME]... [--fibers N] [--threads N] [--tokio N] [--sleep-ms MS]
              [--spawn N] [--switches N] [--fanout N] [--echo-conns N] [--echo-secs S] [--workers N] [--quiet]
  --stage NAME    run only this stage (repeatable; default: all, in order)
  --fibers N      million: sleeping fibers (default 1000000)
  --threads N     million, spawn: std threads (default 10000)
  --tokio N       million: tokio tasks (default: as many as fibers)
  --sleep-ms MS   million: how long each sleeps (default 1000)
  --spawn N       spawn: fibers and tokio tasks per round (default 100000)
  --switches N    switch: yields per side (default 1000000)
  --fanout N      fanout: requests per mode (default 2000)
  --echo-conns N  echo: client connections (default 1000)
  --echo-secs S   echo: measured seconds per server (default 2)
  --workers N     worker threads of the fiber and tokio runtimes (default: one per CPU)
  --quiet         no progress bars (they are also off when stderr is not a terminal)
stages:
",
    );
    for st in STAGES {
        s.push_str(&format!("  {:<10} {}\n", st.name, st.about));
    }
    s
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        stages: Vec::new(),
        fibers: 1_000_000,
        threads: 10_000,
        tokio: None,
        sleep_ms: 1000,
        spawn: 100_000,
        switches: 1_000_000,
        fanout: 2000,
        echo_conns: 1000,
        echo_secs: 2,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        quiet: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String, String> {
            args.next().ok_or(format!("{name} needs a value"))
        };
        let number = |name: &str, v: String| -> Result<u64, String> {
            v.replace('_', "")
                .parse()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--stage" => {
                let name = value("--stage")?;
                if !STAGES.iter().any(|s| s.name == name) {
                    return Err(format!("unknown stage: {name}"));
                }
                o.stages.push(name);
            }
            "--fibers" => o.fibers = number(&arg, value(&arg)?)? as usize,
            "--threads" => o.threads = number(&arg, value(&arg)?)? as usize,
            "--tokio" => o.tokio = Some(number(&arg, value(&arg)?)? as usize),
            "--sleep-ms" => o.sleep_ms = number(&arg, value(&arg)?)?,
            "--spawn" => o.spawn = number(&arg, value(&arg)?)?.max(1),
            "--switches" => o.switches = number(&arg, value(&arg)?)?.max(1),
            "--fanout" => o.fanout = (number(&arg, value(&arg)?)? as usize).max(1),
            "--echo-conns" => o.echo_conns = (number(&arg, value(&arg)?)? as usize).max(1),
            "--echo-secs" => o.echo_secs = number(&arg, value(&arg)?)?.max(1),
            "--workers" => o.workers = (number(&arg, value(&arg)?)? as usize).max(1),
            "--quiet" => o.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    demo::ChildServer::serve_if_child();
    if let Some(kind) = std::env::args().skip_while(|a| a != "--serve").nth(1) {
        // A child process of the echo stage.
        echo_common::serve(&kind, echo_common::arg("--workers", 2));
    }
    let o = match parse() {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("stress: {msg}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    println!(
        "stress: {} CPUs, {} workers per runtime, vm.max_map_count = {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        o.workers,
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .unwrap_or_default()
            .trim(),
    );
    let start = Instant::now();
    let mut table = Table::default();
    for stage in STAGES {
        if o.stages.is_empty() || o.stages.iter().any(|s| s == stage.name) {
            (stage.run)(&o, &mut table);
        }
    }
    table.print();
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
