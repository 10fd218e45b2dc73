//! What a dump costs: spawns `--fibers N` (default 1,000,000) waiting fibers (half parked, a
//! quarter sleeping, a quarter queued on 1,000 mutexes held by parked holders, so the dump pins
//! a quarter of them to read the owners; the sleepers are cancelled by the runtime's shutdown at
//! the end), then takes dumps while two fibers play channel
//! ping-pong, and prints the time of the dump, of its text and JSON, and the ping-pong rate
//! before and during the dump.
//!
//! `cargo run --release --example dump_cost -- [--fibers N] [--workers N]`
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{mpmc, Mutex};
use fiber_support::flags::Flags;

const USAGE: &str = "usage: dump_cost [--fibers N] [--workers N]
  --fibers N   waiting fibers to dump (default 1000000)
  --workers N  worker threads (default 2)";

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    let n: usize = flags.get("--fibers", 1_000_000);
    let workers: usize = flags.get("--workers", 2);
    flags.done();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));

    let start = Instant::now();
    let locks: Arc<Vec<Mutex<()>>> = Arc::new((0..1000).map(|_| Mutex::new(())).collect());
    let (held_tx, held_rx) = mpmc::bounded::<()>(1000);
    let mut handles = Vec::with_capacity(n + 1000);
    for i in 0..1000 {
        let (locks, held_tx, stop) = (locks.clone(), held_tx.clone(), stop.clone());
        handles.push(rt.spawn(move || {
            let _g = locks[i].lock().unwrap();
            held_tx.send(()).unwrap();
            while !stop.load(Ordering::SeqCst) {
                fiber::park();
            }
        }));
    }
    for _ in 0..1000 {
        held_rx.recv().unwrap();
    }
    for i in 0..n {
        let stop = stop.clone();
        let locks = locks.clone();
        handles.push(rt.spawn(move || match i % 4 {
            0 | 1 => {
                while !stop.load(Ordering::SeqCst) {
                    fiber::park();
                }
            }
            2 => fiber::sleep(Duration::from_secs(3600)),
            _ => drop(locks[i % 1000].lock().unwrap()),
        }));
    }
    // Wait until the workers have started and published them all.
    loop {
        let d = fiber::dump();
        let listed = d.fibers().count();
        if listed >= n + 1000 && d.unlisted() == 0 && d.unstarted() == 0 {
            break;
        }
        eprintln!(
            "waiting: {listed} listed, {} not listed, {} not started",
            d.unlisted(),
            d.unstarted()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "{} waiting fibers ready in {:.2?}",
        n + 1000,
        start.elapsed()
    );

    // Two fibers in channel ping-pong; count round trips.
    let trips = Arc::new(AtomicU64::new(0));
    let (a_tx, a_rx) = mpmc::bounded::<u64>(0);
    let (b_tx, b_rx) = mpmc::bounded::<u64>(0);
    let ping = {
        let (trips, stop) = (trips.clone(), stop.clone());
        rt.spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                a_tx.send(i).unwrap();
                i = b_rx.recv().unwrap() + 1;
                trips.fetch_add(1, Ordering::Relaxed);
            }
            drop(a_tx);
        })
    };
    let pong = rt.spawn(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v).is_err() {
                break;
            }
        }
    });
    let rate = |window: Duration| {
        let before = trips.load(Ordering::Relaxed);
        let t = Instant::now();
        std::thread::sleep(window);
        (trips.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64()
    };
    let quiet = rate(Duration::from_millis(500));

    let mut took = Vec::new();
    let during_trips_before = trips.load(Ordering::Relaxed);
    let during_start = Instant::now();
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let d = fiber::dump();
        took.push(t.elapsed());
        last = Some(d);
    }
    let during = (trips.load(Ordering::Relaxed) - during_trips_before) as f64
        / during_start.elapsed().as_secs_f64();
    let dump = last.expect("three dumps");
    let t = Instant::now();
    let text = dump.to_string();
    let text_took = t.elapsed();
    let t = Instant::now();
    let json = dump.to_json();
    let json_took = t.elapsed();
    let waiting_on_locks = dump
        .fibers()
        .filter(|f| {
            matches!(
                f.reason(),
                Some(fiber::WaitReason::Mutex { owner: Some(_), .. })
            )
        })
        .count();
    println!(
        "dump of {} fibers: {:.1?} / {:.1?} / {:.1?} ({:.2} us per fiber); {} lock waiters with owners",
        dump.fibers().count(),
        took[0],
        took[1],
        took[2],
        took[2].as_secs_f64() * 1e6 / dump.fibers().count() as f64,
        waiting_on_locks
    );
    println!(
        "text: {} bytes in {text_took:.1?}; JSON: {} bytes in {json_took:.1?}",
        text.len(),
        json.len()
    );
    println!(
        "ping-pong: {:.0} round trips/s before, {:.0} during the dumps ({:.0}%)",
        quiet,
        during,
        100.0 * during / quiet
    );

    stop.store(true, Ordering::SeqCst);
    for h in &handles {
        h.fiber().unpark();
    }
    ping.join().unwrap();
    pong.join().unwrap();
    let t = Instant::now();
    drop(handles);
    drop(rt);
    println!("shut down in {:.1?}", t.elapsed());
}
