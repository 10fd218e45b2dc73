//! temp
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100_000);
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    let s = rt.block_on(|| {
        let hs: Vec<_> = (0..n).map(|i| fiber::spawn(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let s2 = rt.block_on(|| {
        let a = fiber::spawn(move || {
            for _ in 0..n {
                fiber::yield_now()
            }
        });
        for _ in 0..n {
            fiber::yield_now()
        }
        a.join().unwrap();
        0
    });
    println!("{s} {s2}");
}
