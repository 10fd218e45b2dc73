use std::time::{Duration, Instant};
fn main() {
    let t = Instant::now();
    let hs: Vec<_> = (0..1000u64)
        .map(|i| {
            fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(10));
                i * 2
            })
        })
        .collect();
    let s: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    println!("sum {s} in {:?}", t.elapsed());
    let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
    let x = 5;
    let r = rt.block_on(|| {
        let h = fiber::spawn(move || x + 1);
        h.join().unwrap()
    });
    println!("block_on {r}");
    let t = Instant::now();
    let n = rt.block_on(|| {
        let hs: Vec<_> = (0..100_000u64).map(|i| fiber::spawn(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    println!("100k spawn+join {n} in {:?}", t.elapsed());
    let t = Instant::now();
    rt.block_on(|| {
        let a = fiber::spawn(|| {
            for _ in 0..1_000_000 {
                fiber::yield_now()
            }
        });
        for _ in 0..1_000_000 {
            fiber::yield_now()
        }
        a.join().unwrap();
    });
    println!("2M yields in {:?}", t.elapsed());
    let p = rt.block_on(|| fiber::spawn(|| panic!("boom")).join());
    println!("panic joined: {}", p.is_err());
}
