//! The benchmarks of the report: what each measures, at which sizes, and how long a child may
//! take. The measurement bodies are in `point.rs`.

use fiber_support::workloads::skynet;

use crate::model::Variant;

/// One figure a benchmark's child reports (a benchmark can report several, e.g. echo).
pub(crate) struct Metric {
    /// The `RESULT` key.
    pub(crate) key: &'static str,
    /// Appended to the benchmark's title when it reports more than one metric.
    pub(crate) title: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) higher_is_better: bool,
}

/// One benchmark.
pub(crate) struct Spec {
    /// The `--point` series name, and the chart's file stem.
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// How one figure is taken (markdown).
    pub(crate) about: &'static str,
    pub(crate) x_name: &'static str,
    pub(crate) x_label: fn(u64) -> String,
    pub(crate) full: &'static [u64],
    pub(crate) quick: &'static [u64],
    /// The first metric decides which of the rounds' runs is kept.
    pub(crate) metrics: &'static [Metric],
    /// Passes over all (size, peer) cells, interleaved so that a burst of load on the shared
    /// machine hits every peer alike; the best pass is kept.
    pub(crate) rounds: u32,
    /// How long one child may take, seconds.
    pub(crate) timeout_secs: u64,
    /// OS threads (or may coroutines) live at once at size `x`, for the limits check.
    pub(crate) live: fn(u64) -> u64,
    /// Variants of fiber measured beside the peers, interleaved with them.
    pub(crate) variants: &'static [Variant],
}

/// The echo server written against `std::net`, unchanged, in fibers (libc hooks on).
pub(crate) const FIBER_STD: Variant = Variant {
    kind: "fiber-std",
    label: "fiber-std",
};

const fn lower(key: &'static str, unit: &'static str) -> [Metric; 1] {
    [Metric {
        key,
        title: "",
        unit,
        higher_is_better: false,
    }]
}

/// 1000 -> "1k", 1000000 -> "1M".
pub(crate) fn count(x: u64) -> String {
    match x {
        x if x >= 1_000_000 && x % 1_000_000 == 0 => format!("{}M", x / 1_000_000),
        x if x >= 1_000 && x % 1_000 == 0 => format!("{}k", x / 1_000),
        x => x.to_string(),
    }
}

fn workers(x: u64) -> String {
    format!("{x} worker{}", if x == 1 { "" } else { "s" })
}

fn one_pair(_: u64) -> String {
    "2 peers, 1 worker".into()
}

const SPAWN: [Metric; 1] = lower("ns", "ns per task");
const MEMORY: [Metric; 1] = lower("kib", "KiB per sleeper");
const SWITCH: [Metric; 1] = lower("ns", "ns per switch");
const PINGPONG: [Metric; 1] = lower("ns", "ns per round trip");
const MUTEX: [Metric; 1] = lower("ns", "ns per increment");
const SKYNET: [Metric; 1] = lower("ms", "ms per tree");
const CANCEL: [Metric; 1] = lower("ns", "ns per cancelled unit");
const TIMEOUT: [Metric; 1] = lower("ns", "ns per call");
const ECHO: [Metric; 2] = [
    Metric {
        key: "rps",
        title: "throughput",
        unit: "round trips/s",
        higher_is_better: true,
    },
    Metric {
        key: "p99_ms",
        title: "p99 latency",
        unit: "ms (p99)",
        higher_is_better: false,
    },
];

pub(crate) const SPECS: &[Spec] = &[
    Spec {
        id: "spawn",
        title: "Spawn + join",
        about: "From inside a worker of the same kind (2 workers; std: the main thread), spawn N \
                trivial workers that return their index, then join them all (all N live at \
                once); Go (GOMAXPROCS 2): N goroutines each store their index in a slot, a \
                WaitGroup is the join. Per task = time / N. Best of 5 runs after a warm-up run, per child \
                process.",
        x_name: "N",
        x_label: count,
        full: &[1_000, 10_000, 100_000],
        quick: &[100, 1_000],
        metrics: &SPAWN,
        rounds: 2,
        timeout_secs: 120,
        live: |n| n,
        variants: &[],
    },
    Spec {
        id: "memory",
        title: "Memory per sleeping unit",
        about: "N workers each sleep (fiber::sleep, tokio::time::sleep, may's sleep, \
                thread::sleep; Go: time.Sleep, GOMAXPROCS 2) for 1 s + 4 µs × N, so that all \
                are asleep at once; figure = (peak RSS − RSS before) / the most asleep at once. One child process per cell, so the \
                peak (`VmHWM`) is that crowd's alone; one run (a crowd is its own warm-up).",
        x_name: "N",
        x_label: count,
        full: &[10_000, 100_000, 1_000_000],
        quick: &[1_000, 10_000],
        metrics: &MEMORY,
        rounds: 1,
        timeout_secs: 120,
        live: |n| n,
        variants: &[],
    },
    Spec {
        id: "switch",
        title: "Context switch",
        about: "Two fibers alternate `yield_now` on a one-worker runtime; tokio: two tasks on a \
                current-thread runtime without drivers (with drivers in the notes); may: one \
                worker; std: two threads pinned to one CPU handing a turn back and forth with \
                park/unpark (a kernel context switch each); Go: two goroutines alternate \
                `runtime.Gosched` with GOMAXPROCS 1. Per switch = total / switches; the \
                switch count is calibrated to ≈ 200 ms per run, best of 5.",
        x_name: "setup",
        x_label: one_pair,
        full: &[1],
        quick: &[1],
        metrics: &SWITCH,
        rounds: 2,
        timeout_secs: 60,
        live: |_| 2,
        variants: &[],
    },
    Spec {
        id: "pingpong",
        title: "Channel ping-pong",
        about: "A driver sends a number on an unbounded channel, an echo peer sends it back on \
                another: one round trip. fiber::sync::mpsc between two fibers, tokio::sync::mpsc \
                between two tasks (1 worker: current-thread runtime), Go channels of capacity 1 \
                between two goroutines (GOMAXPROCS = workers), may::sync::mpsc between two \
                coroutines, std::sync::mpsc between two threads (1 worker: both pinned to \
                one CPU). Calibrated to ≈ 200 ms per run, best of 5.",
        x_name: "workers",
        x_label: workers,
        full: &[1, 2],
        quick: &[1, 2],
        metrics: &PINGPONG,
        rounds: 2,
        timeout_secs: 60,
        live: |_| 2,
        variants: &[],
    },
    Spec {
        id: "mutex",
        title: "Mutex contention",
        about: "N workers (2 runtime workers; std: N threads) share 100,000 increments of one \
                counter, each lock → increment → unlock: fiber::sync::Mutex, tokio::sync::Mutex, \
                may::sync::Mutex, std::sync::Mutex, Go's sync.Mutex (N goroutines, GOMAXPROCS \
                2). Per increment = time / 100,000. Best of 5.",
        x_name: "N workers",
        x_label: count,
        full: &[10, 100, 1_000],
        quick: &[10, 100],
        metrics: &MUTEX,
        rounds: 2,
        timeout_secs: 60,
        live: |n| n,
        variants: &[],
    },
    Spec {
        id: "echo",
        title: "Echo",
        about: "64-byte echo round trips over loopback TCP at N connections. Each server (2 \
                workers; std: a thread per connection; Go: `net`, a goroutine per connection, \
                GOMAXPROCS 2) runs in its own process, driven by the \
                same fiber load generator (2 workers, fiber_support::echo_load); client and server \
                share the machine's cores. 0.5 s warm-up, then 2 s measured; two rounds over all \
                servers, the better run by throughput kept (its p99 is the one shown). \
                *fiber-std*: the std-threads server's code (`std::net::TcpListener` and \
                `TcpStream`, blocking calls) run unchanged in fibers, one per connection, the \
                libc hooks parking each fiber (docs/hook.md).",
        x_name: "connections",
        x_label: count,
        full: &[10, 100, 1_000],
        quick: &[10],
        metrics: &ECHO,
        rounds: 2,
        timeout_secs: 60,
        live: |n| n,
        variants: &[FIBER_STD],
    },
    Spec {
        id: "skynet",
        title: "Skynet",
        about: "A 10-ary tree of workers: each leaf returns its number, each inner node spawns \
                its 10 children and sums their joins (1M leaves = 1,111,111 workers; 2 runtime \
                workers; std: one thread per node; Go: the classic skynet, goroutines sending \
                to their parent's channel, GOMAXPROCS 2). Time per tree, best of 5 after a warm-up.",
        x_name: "leaves",
        x_label: count,
        full: &[10_000, 100_000, 1_000_000],
        quick: &[100, 1_000],
        metrics: &SKYNET,
        rounds: 2,
        timeout_secs: 120,
        live: skynet::workers,
        variants: &[],
    },
    Spec {
        id: "cancel",
        title: "Cancel",
        about: "N units sleep for an hour (fiber::sleep, tokio::time::sleep; 2 workers); once \
                all are asleep, the clock runs while every one is cancelled \
                (JoinHandle::cancel; tokio: JoinHandle::abort) and then joined, each join \
                checking that it saw the cancellation. Per unit = time / N; at N = 1 that is the \
                latency of one cancel, request to outcome. Best of 5 after a warm-up.",
        x_name: "N",
        x_label: count,
        full: &[1, 1_000, 100_000],
        quick: &[1, 100],
        metrics: &CANCEL,
        rounds: 2,
        timeout_secs: 120,
        live: |n| n,
        variants: &[],
    },
    Spec {
        id: "timeout",
        title: "Timeout that does not expire",
        about: "fiber::timeout(1 h, f) around an `f` that returns at once (tokio: \
                tokio::time::timeout around a ready future), on one worker: the cost a deadline \
                adds to a call that finishes in time (a timer insert and remove). Calibrated to \
                ≈ 200 ms per run, best of 5.",
        x_name: "setup",
        x_label: |_| "1 worker".into(),
        full: &[1],
        quick: &[1],
        metrics: &TIMEOUT,
        rounds: 2,
        timeout_secs: 60,
        live: |_| 1,
        variants: &[],
    },
];
