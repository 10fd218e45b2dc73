//! Costs on one worker for issue 15's "spawn, switch and park stay within noise":
//! `cargo run --release --example switch_cost [yield|park|spawn] [n]`.
//! - `yield`: one `yield_now` switch between two fibers;
//! - `park`: one hand-off of a park/unpark ping-pong between two fibers;
//! - `spawn`: spawning and joining one empty fiber.
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
        other => panic!("unknown mode {other:?}: yield, park or spawn"),
    });
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    println!("{ns:.1} ns per op ({ops} ops)");
}
