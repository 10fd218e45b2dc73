//! What the cooperative budget costs and buys, on a one-worker runtime (docs/benchmark-notes.md,
//! "Cooperative budget").
//!
//! `cargo run --release --example coop_cost -- [ops per case, default 10000000] [case]`
//!
//! `case` is one of `try_recv`, `try_recv_socket`, `lock`, `get`, `latency` (default: all). A
//! fixed number of operations per case lets an instruction counter (`valgrind --tool=callgrind`,
//! run at two counts) give the exact cost per operation, which the shared machine's noise hides.
//!
//! Cost, with nothing else to run (the budget check finds no other work): nanoseconds per
//! operation for a `try_recv` spin on an empty channel (without and with an I/O source registered
//! on the worker, which makes each check a non-blocking reactor poll), an uncontended
//! `lock`/unlock, and `OnceLock::get`.
//!
//! Benefit: a fiber spinning on `try_recv` next to a fiber that sleeps 1 ms at a time: how late
//! the sleeper's wake-ups are (mean and max over the run), and how many it got.
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn per_op(ops: u64, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// A fiber that sleeps 1 ms at a time until `stop`; returns (mean lateness, worst, wake-ups).
fn spawn_sleeper(stop: &Arc<AtomicBool>) -> fiber::JoinHandle<(Duration, Duration, u32)> {
    let stop = stop.clone();
    fiber::spawn(move || {
        let (mut late, mut worst, mut wakes) = (Duration::ZERO, Duration::ZERO, 0u32);
        while !stop.load(Ordering::Relaxed) {
            let due = Instant::now() + Duration::from_millis(1);
            fiber::sleep(Duration::from_millis(1));
            let l = Instant::now().saturating_duration_since(due);
            late += l;
            worst = worst.max(l);
            wakes += 1;
        }
        (late / wakes.max(1), worst, wakes)
    })
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let only = std::env::args().nth(2).unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    let case = Duration::from_millis(300);
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(|| {
        let (_tx, rx) = fiber::sync::mpsc::channel::<u64>();
        if run("try_recv") {
            let ns = per_op(ops, || {
                black_box(rx.try_recv().is_err());
            });
            println!("alone: try_recv {ns:.1} ns");
        }
        // A socket that has waited once is registered with this worker's reactor.
        let l = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let c = std::thread::spawn(move || std::net::TcpStream::connect(a).unwrap());
        let (s, _) = l.accept().unwrap();
        let _peer = c.join().unwrap();
        if run("try_recv_socket") {
            let ns = per_op(ops, || {
                black_box(rx.try_recv().is_err());
            });
            println!("alone: try_recv with a registered socket {ns:.1} ns");
        }
        drop((s, l));
        if run("lock") {
            let m = fiber::sync::Mutex::new(0u64);
            let ns = per_op(ops, || {
                *m.lock().unwrap() += 1;
            });
            println!("alone: lock+unlock {ns:.1} ns");
        }
        if run("get") {
            let cell = fiber::sync::OnceLock::new();
            cell.set(1u64).unwrap();
            let ns = per_op(ops, || {
                black_box(cell.get());
            });
            println!("alone: OnceLock::get {ns:.1} ns");
        }
        if !run("latency") {
            return;
        }

        // The sleeper alone first: its lateness without a spinner is the machine's.
        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = spawn_sleeper(&stop);
        fiber::sleep(case);
        stop.store(true, Ordering::Relaxed);
        let (mean, worst, wakes) = sleeper.join().unwrap();
        println!(
            "alone: 1 ms sleeper woke {wakes} times, late by {mean:?} on average, {worst:?} at worst"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = spawn_sleeper(&stop);
        let (_tx, rx) = fiber::sync::mpsc::channel::<u64>();
        let start = Instant::now();
        let mut spins = 0u64;
        while start.elapsed() < case {
            black_box(rx.try_recv().is_err());
            spins += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let (mean, worst, wakes) = sleeper.join().unwrap();
        println!(
            "next to a try_recv spinner ({spins} spins in {case:?}): 1 ms sleeper woke {wakes} times, late by {mean:?} on average, {worst:?} at worst"
        );
    });
}
