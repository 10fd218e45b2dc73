//! A deadlock and the dump that finds it: two fibers take two mutexes in opposite order while
//! 10,000 other fibers idle; `fiber::dump()` shows the cycle with both owners.
//!
//! `cargo run --release --example deadlock`. Exits 0 once the cycle is found and printed (a
//! deadlocked program does not end by itself: this one ends the process with `exit`), 1 if the
//! dump did not find it within 10 s.
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{Barrier, Mutex};

fn main() {
    let idle: Vec<_> = (0..10_000)
        .map(|_| fiber::spawn(|| fiber::park()))
        .collect();
    let a = Arc::new(Mutex::new("account a"));
    let b = Arc::new(Mutex::new("account b"));
    // Both hold their first lock before either asks for the second: a certain deadlock.
    let both = Arc::new(Barrier::new(2));
    let transfer =
        |name: &str, first: Arc<Mutex<&'static str>>, second: Arc<Mutex<&'static str>>| {
            let both = both.clone();
            fiber::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    let _one = first.lock().unwrap();
                    both.wait();
                    let _two = second.lock().unwrap();
                    unreachable!("the other transfer holds this lock and waits for ours");
                })
                .expect("spawn")
        };
    let _ab = transfer("transfer a->b", a.clone(), b.clone());
    let _ba = transfer("transfer b->a", b.clone(), a.clone());

    let start = Instant::now();
    loop {
        let dump = fiber::dump();
        if let Some(cycle) = dump.cycles().first() {
            println!("{dump}");
            let names: Vec<_> = cycle
                .fibers()
                .iter()
                .map(|id| dump.fiber(*id).and_then(|f| f.name()).unwrap_or("?"))
                .collect();
            println!(
                "found the cycle {names:?} in {:.1?} ({} fibers dumped in {:.1?})",
                start.elapsed(),
                dump.fibers().count(),
                dump.took()
            );
            assert_eq!(cycle.fibers().len(), 2);
            drop(idle);
            std::process::exit(0);
        }
        if start.elapsed() > Duration::from_secs(10) {
            eprintln!("no cycle found in 10 s; last dump:\n{dump}");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
