//! Costs on one worker for issue 15's "spawn, switch and park stay within noise":
//! `cargo run --release --example switch_cost [yield|park|spawn] [n]`.
//! - `yield`: one `yield_now` switch between two fibers;
//! - `park`: one hand-off of a park/unpark ping-pong between two fibers;
//! - `spawn`: spawning and joining one empty fiber;
//! - `cancel`: cancelling a parked fiber and joining it (the wake-up, the unwind, the join);
//!   prints that figure alone first (the last line includes spawning the fibers).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "yield".into());
    let n: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().expect("n: a number"))
        .unwrap_or(10_000_000);
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    let start = Instant::now();
    let ops = rt.block_on(move || match mode.as_str() {
        "yield" => {
            let other = fiber::spawn(move || (0..n).for_each(|_| fiber::yield_now()));
            (0..n).for_each(|_| fiber::yield_now());
            other.join().unwrap();
            2 * n
        }
        "park" => {
            // `turn` false: the main fiber's turn; true: the other's.
            let turn = Arc::new(AtomicBool::new(false));
            let me = fiber::current();
            let t = turn.clone();
            let other = fiber::spawn(move || {
                for _ in 0..n {
                    while !t.load(Ordering::Acquire) {
                        fiber::park();
                    }
                    t.store(false, Ordering::Release);
                    me.unpark();
                }
            });
            let peer = other.fiber().clone();
            for _ in 0..n {
                turn.store(true, Ordering::Release);
                peer.unpark();
                while turn.load(Ordering::Acquire) {
                    fiber::park();
                }
            }
            other.join().unwrap();
            2 * n
        }
        "spawn" => {
            for _ in 0..n {
                fiber::spawn(|| ()).join().unwrap();
            }
            n
        }
        "cancel" => {
            // `n` parked fibers; then the measured part alone: cancel and join each.
            let parked = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let parked = parked.clone();
                    fiber::spawn(move || {
                        parked.fetch_add(1, Ordering::Relaxed);
                        loop {
                            fiber::park()
                        }
                    })
                })
                .collect();
            while parked.load(Ordering::Relaxed) < n {
                fiber::park_timeout(std::time::Duration::from_millis(1));
            }
            let start = Instant::now();
            for h in handles {
                h.cancel();
                assert!(h.join().unwrap_err().is::<fiber::Cancelled>());
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            println!("cancel + join of a parked fiber: {ns:.1} ns");
            n
        }
        other => panic!("unknown mode {other:?}: yield, park, spawn or cancel"),
    });
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    println!("{ns:.1} ns per op ({ops} ops)");
}
