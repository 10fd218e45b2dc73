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
//! With `go` on `PATH` the table has a Go column (goroutines, `benches/peers/go`, via
//! `fiber_support::go_peer`) for million, spawn, switch and echo; fanout has no Go equivalent.
//!
//! Each stage shows a progress bar on stderr (off with `--quiet` or when stderr is not a terminal);
//! the results go to stdout.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fiber_support::compare::Table;
use fiber_support::crowd::{self, CrowdReport};
use fiber_support::flags::Flags;
use fiber_support::http_server::ChildServer;
use fiber_support::progress::ProgressBar;
use fiber_support::workloads::switch;
use fiber_support::{echo, echo_load, fdlimit, go_peer, http_client, mem, progress, rates, rt};

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

fn stage_million(o: &Opts, table: &mut Table) {
    let dur = Duration::from_millis(o.sleep_ms);
    let tokio_n = o.tokio.unwrap_or(o.fibers);
    println!(
        "[million] {} fibers, {} std threads, {} tokio tasks; each sleeps {} ms",
        o.fibers, o.threads, tokio_n, o.sleep_ms
    );
    let rt = rt::fiber_rt(o.workers);
    let f = crowd::sleep_fibers(&rt, o.fibers, dur, !o.quiet);
    metrics_line("million", &rt);
    drop(rt);
    f.print();
    mem::trim();
    let t = (o.threads > 0).then(|| crowd::sleep_threads(o.threads, dur, !o.quiet));
    if let Some(t) = &t {
        t.print();
    }
    mem::trim();
    let k = (tokio_n > 0).then(|| {
        let rt = rt::tokio_rt(o.workers);
        crowd::sleep_tokio(&rt, tokio_n, dur, !o.quiet)
    });
    if let Some(k) = &k {
        k.print();
    }
    mem::trim();
    let secs = |r: &CrowdReport| r.wall.as_secs_f64();
    let per = |r: &CrowdReport| r.rss_per_sleeper_kib();
    let asleep = |r: &CrowdReport| r.peak_asleep as f64;
    let peak = |r: &CrowdReport| r.peak_rss as f64 / 1024.0;
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
    go_peer::stress::million(table, o.fibers, o.sleep_ms, o.workers);
    print_floors(o, &f);
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

/// How close the million stage is to what no stackful runtime can go below on this machine: the
/// time to touch one fresh page per fiber on the workers' threads (in a child process, measured
/// now), and one stack page plus a task chunk per sleeper.
fn print_floors(o: &Opts, f: &CrowdReport) {
    let pages = f.peak_asleep.max(1);
    // The stage's own cost: its wall time beyond the sleep every fiber does.
    let beyond = f
        .wall
        .saturating_sub(Duration::from_millis(o.sleep_ms))
        .as_secs_f64();
    match fiber_support::floor::page_floor(pages, o.workers) {
        Some(took) => println!(
            "  floor: touching {pages} fresh pages on {} threads took {:.2} s; fiber's wall \
             beyond the sleep, {beyond:.2} s, is {:.2}x that",
            o.workers,
            took.as_secs_f64(),
            beyond / took.as_secs_f64().max(1e-9)
        ),
        None => println!("  floor: the page-touching child failed"),
    }
    let floor = fiber_support::floor::sleeper_floor_kib(fiber_support::floor::TASK_CHUNK);
    println!(
        "  floor: {floor:.2} KiB per sleeper (a stack page + a {}-byte task chunk); fiber's \
         {:.2} KiB is {:.2}x that",
        fiber_support::floor::TASK_CHUNK,
        f.rss_per_sleeper_kib(),
        f.rss_per_sleeper_kib() / floor
    );
}

fn stage_spawn(o: &Opts, table: &mut Table) {
    let n = o.spawn;
    let threads_n = n.min(o.threads.max(1) as u64);
    println!(
        "[spawn] spawn + join: {n} fibers, {n} tokio tasks, {threads_n} std threads (best of 3)"
    );
    let bar = progress::bar("spawn", 3, !o.quiet);
    let f = progress::step(&bar, "fibers", || {
        let rt = rt::fiber_rt(o.workers);
        let rate = rates::spawn_rate_fiber(&rt, n, 3);
        metrics_line("spawn", &rt);
        rate
    });
    let k = progress::step(&bar, "tokio tasks", || {
        rates::spawn_rate_tokio(&rt::tokio_rt(o.workers), n, 3)
    });
    let t = progress::step(&bar, "std threads", || {
        rates::spawn_rate_threads(threads_n, 3)
    });
    bar.finish_with_message("done");
    println!("  fiber {f:.0} ns, tokio {k:.0} ns, std thread {t:.0} ns per spawn + join");
    table.add("spawn", "spawn + join", "ns", Some(f), Some(t), Some(k));
    go_peer::stress::spawn(table, n, o.workers);
}

fn stage_switch(o: &Opts, table: &mut Table) {
    let per_side = o.switches;
    let thread_side = (per_side / 10).max(1);
    println!(
        "[switch] {per_side} yields per side (fiber, tokio), {thread_side} handoffs per side (std threads pinned to one CPU); best of 3"
    );
    let bar = progress::bar("switch", 3, !o.quiet);
    // The same bodies as `cargo bench --bench switch` (fiber_support::workloads::switch).
    let switches = 2 * per_side;
    let f = progress::step(&bar, "fibers", || {
        let rt = rt::fiber_rt(1);
        let ns = rates::best_of(3, || switch::fiber(&rt, switches)) / switches as f64;
        metrics_line("switch", &rt);
        ns
    });
    let k = progress::step(&bar, "tokio tasks", || {
        let rt = rt::tokio_current_thread();
        rates::best_of(3, || switch::tokio(&rt, switches)) / switches as f64
    });
    let t = progress::step(&bar, "std threads", || {
        rates::switch_threads(thread_side, 3)
    });
    bar.finish_with_message("done");
    println!("  fiber {f:.1} ns, tokio {k:.1} ns, std thread {t:.1} ns per switch");
    table.add("switch", "one switch", "ns", Some(f), Some(t), Some(k));
    go_peer::stress::switch(table, switches);
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
    let bar = progress::bar("echo", 3, !o.quiet);
    let run = |kind: &str| {
        let r = progress::step(&bar, &format!("{kind} server"), || {
            let (mut child, addr) = echo::spawn_server(kind, o.workers);
            let r = echo_load::run_load(addr, conns, duration, warmup, 64, o.workers);
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
    let per_rt = |r: &echo_load::Report| Some(1e6 / r.per_sec().max(1.0));
    let p99 = |r: &echo_load::Report| Some(r.p99.as_secs_f64() * 1e3);
    let metric = format!("time per round trip, {conns} conns");
    table.add("echo", metric, "µs", per_rt(&f), per_rt(&t), per_rt(&k));
    table.add("echo", "p99 latency", "ms", p99(&f), p99(&t), p99(&k));
    go_peer::stress::echo(table, conns, o.echo_secs, o.workers);
}

fn stage_fanout(o: &Opts, table: &mut Table) {
    let n = o.fanout;
    let latency = Duration::from_millis(100);
    if fdlimit::raise_fd_limit(n as u64 + 64) < n as u64 + 64 {
        println!("[fanout] skipped: the open-file limit is too low for {n} requests");
        return;
    }
    let server = ChildServer::start(latency);
    let addr = server.addr;
    println!("[fanout] {n} requests to a server that answers after 100 ms, each mode");
    let bar = progress::bar("fanout", 2 * n as u64, !o.quiet);
    // The same blocking request in both modes; true if the server answered 200.
    let fetch = move |bar: ProgressBar, i: usize| {
        let ok = http_client::get(addr, &format!("/item/{i}"), Some(Duration::from_secs(30)))
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
    let rt = rt::fiber_rt(o.workers);
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
    metrics_line("fanout", &rt);
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

/// One line of a stage's fiber runtime metrics (docs/observability.md, "Metrics"). The echo
/// stage's fiber server runs in a child process and is not shown.
fn metrics_line(stage: &str, rt: &fiber::Runtime) {
    let m = rt.metrics();
    let busy: f64 = m.per_worker.iter().map(|w| w.busy.as_secs_f64()).sum();
    let idle: f64 = m.per_worker.iter().map(|w| w.idle.as_secs_f64()).sum();
    println!(
        "  [{stage}] fiber metrics: {} spawned, {} finished, {} switches, {} parks, {} yields, \
         {} steals, {} polls ({} events); {} workers busy {busy:.2} s, idle {idle:.2} s; \
         {} watchdog reports",
        m.fibers_spawned,
        m.fibers_finished,
        m.switches,
        m.parks,
        m.yields,
        m.steals,
        m.reactor_polls,
        m.reactor_events,
        m.workers,
        m.watchdog_reports
    );
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

fn parse() -> Opts {
    let mut flags = Flags::parse(usage(), &["--quiet"]);
    echo::serve_if_asked(&mut flags); // a child process of the echo stage
    let stages: Vec<String> = flags.all("--stage");
    if let Some(bad) = stages
        .iter()
        .find(|s| !STAGES.iter().any(|st| st.name == *s))
    {
        flags.fail(&format!("unknown stage: {bad}"));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let o = Opts {
        stages,
        fibers: flags.get("--fibers", 1_000_000),
        threads: flags.get("--threads", 10_000),
        tokio: flags.opt("--tokio"),
        sleep_ms: flags.get("--sleep-ms", 1000),
        spawn: flags.get("--spawn", 100_000u64).max(1),
        switches: flags.get("--switches", 1_000_000u64).max(1),
        fanout: flags.get("--fanout", 2000usize).max(1),
        echo_conns: flags.get("--echo-conns", 1000usize).max(1),
        echo_secs: flags.get("--echo-secs", 2u64).max(1),
        workers: flags.get("--workers", cpus).max(1),
        quiet: flags.switch("--quiet"),
    };
    flags.done();
    o
}

fn main() -> ExitCode {
    fiber_support::floor::run_if_asked();
    ChildServer::serve_if_child();
    let o = parse();
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
