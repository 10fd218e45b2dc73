//! temp
use std::time::Instant;
fn main() {
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let n = 5_000_000;
        rt.block_on(|| {
            let a = fiber::spawn(move || {
                for _ in 0..n {
                    fiber::yield_now()
                }
            });
            for _ in 0..n {
                fiber::yield_now()
            }
            a.join().unwrap();
        });
        println!(
            "yield: {:.1} ns/switch",
            t.elapsed().as_nanos() as f64 / (2 * n) as f64
        );
        let t = Instant::now();
        let n = 100_000u64;
        let s = rt.block_on(|| {
            let hs: Vec<_> = (0..n).map(|i| fiber::spawn(move || i)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        println!(
            "spawn+join: {:.1} ns/fiber ({s})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
