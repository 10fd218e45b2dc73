//! Channel ping-pong between two fibers on one worker (profiling aid for `fiber::sync::mpsc`).
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let workers = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap();
    rt.block_on(|| {
        let (tx1, rx1) = fiber::sync::mpsc::channel::<u64>();
        let (tx2, rx2) = fiber::sync::mpsc::channel::<u64>();
        let echo = fiber::spawn(move || {
            for v in rx1.iter() {
                tx2.send(v).unwrap();
            }
        });
        let t = Instant::now();
        for i in 0..n {
            tx1.send(i).unwrap();
            rx2.recv().unwrap();
        }
        let e = t.elapsed();
        drop(tx1);
        echo.join().unwrap();
        println!("{workers} worker(s): {:?} per round trip", e / n as u32);
    });
    // Baseline: the runtime's own park/unpark round trip between two fibers.
    rt.block_on(|| {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let turn = Arc::new(AtomicU64::new(0));
        let main = fiber::current();
        let t2 = turn.clone();
        let echo = fiber::spawn(move || {
            for i in 0..n {
                while t2.load(Ordering::Acquire) != 2 * i + 1 {
                    fiber::park();
                }
                t2.store(2 * i + 2, Ordering::Release);
                main.unpark();
            }
        });
        let other = echo.fiber().clone();
        let t = Instant::now();
        for i in 0..n {
            turn.store(2 * i + 1, Ordering::Release);
            other.unpark();
            while turn.load(Ordering::Acquire) != 2 * i + 2 {
                fiber::park();
            }
        }
        let e = t.elapsed();
        echo.join().unwrap();
        println!(
            "{workers} worker(s): raw park/unpark round trip {:?}",
            e / n as u32
        );
    });
}
