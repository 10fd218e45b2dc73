//! The child side: one measurement of one peer at one size, printed for the parent (see
//! `child.rs`). Bodies come from `fiber_support`: `workloads` (the same code the criterion benches
//! run), `crowd` and `rates` (sleeping crowds, the std switch), `echo` and `echo_load` (echo servers
//! and load generator).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber_support::workloads::{self, cancel, channel, mutex, skynet, spawn, switch};
use fiber_support::{cpu, crowd, echo, echo_load, go_peer, mem, rates, rt};

use crate::child::{emit, note};

/// Runs `series` for `kind` at `x` and prints the result; panics on failure (the parent reports
/// the panic message as the reason the peer cannot run this size).
pub(crate) fn run(series: &str, kind: &str, x: u64, quick: bool) {
    if kind == "go" && series != "echo" {
        // The Go program measures its own points; the echo point is this child's load generator
        // against the Go server (`echo::spawn_server("go", ..)`).
        go_peer::exec_point(series, x, quick);
    }
    let reps = if quick { 2 } else { 5 };
    match series {
        "spawn" => per_unit(sum_body(kind, spawn_bodies()), x, x, reps),
        "skynet" => {
            let mut body = sum_body(kind, skynet_bodies());
            let ns = best_ns(reps, || timed(|| body(x)));
            emit(&[("ms", ns / 1e6)]);
        }
        "memory" => memory(kind, x as usize, quick),
        "switch" => switch(kind, quick, reps),
        "pingpong" => pingpong(kind, x as usize, quick, reps),
        "mutex" => contended(kind, x as usize, quick, reps),
        "echo" => echo(kind, x as usize, quick),
        "cancel" => cancel_many(kind, x, reps),
        "timeout" => timeout_cost(kind, quick, reps),
        other => panic!("unknown series {other}"),
    }
}

/// The time of one call of `f`.
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// One warm-up run (stack pools, allocator, thread caches), then the best of `reps`, in ns.
fn best_ns(reps: u32, mut f: impl FnMut() -> Duration) -> f64 {
    f();
    rates::best_of(reps, f)
}

/// The runtime each peer runs on in a 2-worker measurement.
fn fiber_rt(workers: usize) -> fiber::Runtime {
    rt::fiber_rt(workers)
}

/// tokio with `workers` workers; one worker means a current-thread runtime.
fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    if workers == 1 {
        rt::tokio_current_thread()
    } else {
        rt::tokio_rt(workers)
    }
}

/// A body `n -> sum of 0..n` per peer, for the spawn+join and skynet workloads.
struct SumBodies {
    fiber: fn(&fiber::Runtime, u64) -> u64,
    tokio: fn(&tokio::runtime::Runtime, u64) -> u64,
    may: fn(u64) -> u64,
    std: fn(u64) -> u64,
}

fn spawn_bodies() -> SumBodies {
    SumBodies {
        fiber: spawn::fiber,
        tokio: spawn::tokio,
        may: spawn::may,
        std: spawn::std,
    }
}

fn skynet_bodies() -> SumBodies {
    SumBodies {
        fiber: skynet::fiber,
        tokio: skynet::tokio,
        may: skynet::may,
        std: skynet::std,
    }
}

/// `kind`'s body on a 2-worker runtime, checking that it sums 0..n.
fn sum_body(kind: &str, b: SumBodies) -> Box<dyn FnMut(u64)> {
    let mut body: Box<dyn FnMut(u64) -> u64> = match kind {
        "fiber" => {
            let rt = fiber_rt(2);
            Box::new(move |n| (b.fiber)(&rt, n))
        }
        "tokio" => {
            let rt = tokio_rt(2);
            Box::new(move |n| (b.tokio)(&rt, n))
        }
        "may" => {
            may::config().set_workers(2);
            Box::new(b.may)
        }
        "std" => Box::new(b.std),
        other => panic!("unknown peer {other}"),
    };
    Box::new(move |n| assert_eq!(body(n), n * (n - 1) / 2, "wrong sum"))
}

/// Best time of `body(x)` divided by `units`, in ns.
fn per_unit(mut body: Box<dyn FnMut(u64)>, x: u64, units: u64, reps: u32) {
    let ns = best_ns(reps, || timed(|| body(x)));
    emit(&[("ns", ns / units as f64)]);
}

/// Operations per run such that one run takes about `target` (this also warms up), then the best
/// of `reps` runs, in ns per operation.
fn per_op(target: Duration, reps: u32, mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut n = 1_000u64;
    loop {
        let took = run(n);
        if took >= target / 2 || n >= 1 << 32 {
            break;
        }
        let scale = target.as_secs_f64() / took.as_secs_f64().max(1e-6);
        n = (n as f64 * scale.clamp(2.0, 100.0)) as u64;
    }
    rates::best_of(reps, || run(n)) / n as f64
}

fn op_target(quick: bool) -> Duration {
    Duration::from_millis(if quick { 20 } else { 200 })
}

/// RSS per sleeping unit: `n` of them sleep long enough to all be asleep at once; (peak RSS −
/// RSS before) ÷ the most asleep at once.
fn memory(kind: &str, n: usize, quick: bool) {
    // Long enough for the last one to start before the first wakes (fibers start at ≈ 300k/s).
    let base = Duration::from_millis(if quick { 200 } else { 1_000 });
    let dur = base + Duration::from_micros(4 * n as u64);
    let r = match kind {
        "fiber" => crowd::sleep_fibers(&fiber_rt(2), n, dur, false),
        "tokio" => crowd::sleep_tokio(&tokio_rt(2), n, dur, false),
        "std" => crowd::sleep_threads(n, dur, false),
        "may" => return may_sleepers(n, dur),
        other => panic!("unknown peer {other}"),
    };
    assert!(
        r.failed == 0,
        "{} of {n} failed: {}",
        r.failed,
        r.error.as_deref().unwrap_or("?")
    );
    if r.peak_asleep < n {
        note(format_args!(
            "{kind}: at most {} of {n} asleep at once; the figure divides by that, so it also \
             carries the ones not yet started or already done",
            r.peak_asleep
        ));
    }
    if kind == "fiber" {
        let floor = fiber_support::floor::sleeper_floor_kib(fiber_support::floor::TASK_CHUNK);
        note(format_args!(
            "fiber at {n}: {:.2}x its floor of {floor:.2} KiB per sleeper (one {} KiB stack \
             page + a {}-byte task chunk)",
            r.rss_per_sleeper_kib() / floor,
            fiber_support::floor::page_size() / 1024,
            fiber_support::floor::TASK_CHUNK
        ));
    }
    emit(&[("kib", r.rss_per_sleeper_kib())]);
}

/// As `crowd::sleep_threads` for may coroutines (may has no sleeping-crowd helper there).
fn may_sleepers(n: usize, dur: Duration) {
    may::config().set_workers(2);
    let counters = Arc::new(crowd::Counters::default());
    assert!(mem::reset_peak(), "cannot reset VmHWM");
    let base = mem::mem();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let c = counters.clone();
            workloads::may_go(move || {
                c.falling_asleep();
                may::coroutine::sleep(dur);
                c.sleeping.fetch_sub(1, Ordering::Relaxed);
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let asleep = counters.max_sleeping.load(Ordering::Relaxed).max(1);
    let grown = mem::mem().hwm.saturating_sub(base.rss);
    emit(&[("kib", grown as f64 / asleep as f64)]);
}

/// One switch between two peers on one worker (std: two threads pinned to one CPU).
fn switch(kind: &str, quick: bool, reps: u32) {
    let target = op_target(quick);
    let ns = match kind {
        "fiber" => {
            let floor = per_op(target, reps, switch::corosensei);
            note(format_args!(
                "raw corosensei resume + suspend (the floor): {floor:.1} ns"
            ));
            let rt = fiber_rt(1);
            per_op(target, reps, |n| switch::fiber(&rt, n))
        }
        "tokio" => {
            let all = tokio_rt(1);
            let with_drivers = per_op(target, reps, |n| switch::tokio(&all, n));
            note(format_args!(
                "tokio with its drivers enabled (`enable_all`): {with_drivers:.1} ns"
            ));
            let bare = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio runtime");
            per_op(target, reps, |n| switch::tokio(&bare, n))
        }
        "may" => {
            may::config().set_workers(1);
            per_op(target, reps, switch::may)
        }
        "std" => per_op(target, reps, |n| {
            // switch_threads times one round of `n` switches; convert back to a duration.
            let per = rates::switch_threads(n.div_ceil(2), 1);
            Duration::from_nanos((per * n as f64) as u64)
        }),
        other => panic!("unknown peer {other}"),
    };
    emit(&[("ns", ns)]);
}

/// Channel ping-pong round trip with `workers` workers (std: two threads; on one CPU for 1).
fn pingpong(kind: &str, workers: usize, quick: bool, reps: u32) {
    let target = op_target(quick);
    let ns = match kind {
        "fiber" => {
            let rt = fiber_rt(workers);
            per_op(target, reps, |n| channel::fiber(&rt, n))
        }
        "tokio" => {
            let rt = tokio_rt(workers);
            per_op(target, reps, |n| channel::tokio(&rt, n))
        }
        "may" => {
            may::config().set_workers(workers);
            per_op(target, reps, channel::may)
        }
        "std" => {
            if workers == 1 {
                // The threads spawned from here inherit the single-CPU mask.
                cpu::pin_to_cpu0();
            }
            per_op(target, reps, channel::std)
        }
        other => panic!("unknown peer {other}"),
    };
    emit(&[("ns", ns)]);
}

/// `tasks` workers share a fixed total of increments of one mutex-guarded counter (2 workers).
fn contended(kind: &str, tasks: usize, quick: bool, reps: u32) {
    let total = if quick { 10_000 } else { 100_000 };
    let per_task = (total / tasks).max(1);
    let mut body: Box<dyn FnMut()> = match kind {
        "fiber" => {
            let rt = fiber_rt(2);
            Box::new(move || mutex::fiber(&rt, tasks, per_task))
        }
        "tokio" => {
            let rt = tokio_rt(2);
            Box::new(move || mutex::tokio(&rt, tasks, per_task))
        }
        "may" => {
            may::config().set_workers(2);
            Box::new(move || mutex::may(tasks, per_task))
        }
        "std" => Box::new(move || mutex::std(tasks, per_task)),
        other => panic!("unknown peer {other}"),
    };
    let ns = best_ns(reps, || timed(&mut body));
    emit(&[("ns", ns / (tasks * per_task) as f64)]);
}

/// Echo round trips at `conns` connections against a `kind` server (a grandchild process, 2
/// workers), with the fiber load generator (2 workers).
fn echo(kind: &str, conns: usize, quick: bool) {
    // Without the hooks the std server's blocking calls would hold the workers: a hang, not a
    // figure.
    assert!(
        kind != "fiber-std" || cfg!(feature = "hook"),
        "fiber-std needs the hook feature (this build has it off)"
    );
    let (duration, warmup) = if quick {
        (Duration::from_millis(300), Duration::from_millis(100))
    } else {
        (Duration::from_secs(2), Duration::from_millis(500))
    };
    let (mut server, addr) = echo::spawn_server(kind, 2);
    let r = echo_load::run_load(addr, conns, duration, warmup, 64, 2);
    let _ = server.kill();
    let _ = server.wait();
    assert!(r.round_trips > 0, "no round trip completed");
    if r.errors > 0 {
        note(format_args!("{kind}: {} connection errors", r.errors));
    }
    emit(&[("rps", r.per_sec()), ("p99_ms", r.p99.as_secs_f64() * 1e3)]);
}

/// Cancel `n` sleeping units and join them (2 workers); per unit = time / n.
fn cancel_many(kind: &str, n: u64, reps: u32) {
    let ns = match kind {
        "fiber" => {
            let rt = fiber_rt(2);
            best_ns(reps, || cancel::fiber(&rt, n))
        }
        "tokio" => {
            let rt = tokio_rt(2);
            best_ns(reps, || cancel::tokio(&rt, n))
        }
        "may" => panic!("may's cancel is an unsafe fn (Coroutine::cancel): not measured"),
        "std" => panic!("a std thread cannot be cancelled"),
        other => panic!("unknown peer {other}"),
    };
    emit(&[("ns", ns / n as f64)]);
}

/// A deadline around a call that returns at once, per call (1 worker).
fn timeout_cost(kind: &str, quick: bool, reps: u32) {
    let target = op_target(quick);
    let ns = match kind {
        "fiber" => {
            let rt = fiber_rt(1);
            per_op(target, reps, |n| cancel::fiber_timeout(&rt, n))
        }
        "tokio" => {
            let rt = tokio_rt(1);
            per_op(target, reps, |n| cancel::tokio_timeout(&rt, n))
        }
        "may" => panic!("may has no deadline around a block of code"),
        "std" => panic!("a std thread cannot be cancelled at a deadline"),
        other => panic!("unknown peer {other}"),
    };
    emit(&[("ns", ns)]);
}
