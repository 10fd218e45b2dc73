//! What `fiber::timeout` and `fiber::uncancellable` cost around work that does not time out, and
//! how late an expiring `timeout` returns (docs/cancellation.md, "Deadlines").
//!
//! `cargo run --release --example timeout_cost -- [ops, default 1000000]`
//!
//! On a one-worker runtime: nanoseconds per call of a trivial closure bare, inside `timeout`
//! (one timer insert and remove; with 0 and with 10,000 other timers pending on the worker),
//! and inside `uncancellable`; then the lateness of an expiring `timeout` around a long sleep
//! (from its deadline to its `Err(Elapsed)`), mean and worst over 1,000 rounds.
use std::hint::black_box;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

fn per_op(ops: u64, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ops: a number"))
        .unwrap_or(1_000_000);
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(|| {
        let bare = per_op(ops, || {
            black_box(black_box(1u64) + 1);
        });
        let timed = per_op(ops, || {
            black_box(fiber::timeout(HOUR, || black_box(1u64) + 1).unwrap());
        });
        let shielded = per_op(ops, || {
            black_box(fiber::uncancellable(|| black_box(1u64) + 1));
        });
        // Other timers pending on the worker: 10,000 sleeping fibers.
        let sleepers: Vec<_> = (0..10_000)
            .map(|_| fiber::spawn(|| fiber::sleep(HOUR)))
            .collect();
        fiber::yield_now();
        let timed_busy = per_op(ops, || {
            black_box(fiber::timeout(HOUR, || black_box(1u64) + 1).unwrap());
        });
        for s in &sleepers {
            s.cancel();
        }
        for s in sleepers {
            let _ = s.join();
        }
        println!("bare closure:                      {bare:8.1} ns");
        println!("timeout, not expiring:             {timed:8.1} ns");
        println!("timeout, not expiring, 10k timers: {timed_busy:8.1} ns");
        println!("uncancellable:                     {shielded:8.1} ns");

        let rounds = 1_000;
        let (mut total, mut worst) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let deadline = Instant::now() + Duration::from_micros(200);
            let r = fiber::timeout_at(deadline, || fiber::sleep(HOUR));
            assert!(r.is_err());
            let late = deadline.elapsed();
            total += late;
            worst = worst.max(late);
        }
        println!(
            "expiring timeout, deadline to Err: mean {:?}, worst {:?} ({rounds} rounds)",
            total / rounds,
            worst
        );
    });
}
