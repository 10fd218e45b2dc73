//! temp
use std::time::{Duration, Instant};
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    (get("VmRSS:"), get("VmHWM:"))
}
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
    let base = rss().0;
    let t = Instant::now();
    let total = rt.block_on(|| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                fiber::spawn(|| {
                    fiber::sleep(Duration::from_secs(1));
                    1u64
                })
            })
            .collect();
        println!("spawned in {:?}", t.elapsed());
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let (_, hwm) = rss();
    println!(
        "{total} fibers, wall {:?}, peak rss {} MiB, per fiber {:.2} KiB",
        t.elapsed(),
        hwm / 1024,
        (hwm - base) as f64 / n as f64
    );
}
