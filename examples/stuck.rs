//! What the watchdog reports (docs/observability.md, "Watchdog"): two ways a fiber holds its
//! worker, each on its own runtime, each reported once.
//!
//! `cargo run --example stuck` (add `--release` for speed; `FIBER_WATCHDOG_MS` does not apply:
//! the threshold is set here to 100 ms).
//!
//! 1. A CPU loop with no yield point: the carrier is `running` user code; a second fiber started
//!    on the same worker, woken from another thread, waits behind it (it cannot move), while
//!    100 fibers spawned before the loop run on the other worker. The loop ends after 500 ms and
//!    everything finishes.
//! 2. A `std::sync::Mutex` held across a hooked sleep (with the `hook` feature): the holder parks,
//!    a second fiber on the same (only) worker asks for the lock, and std blocks the carrier in
//!    `futex`. The holder can only be resumed by that carrier, so it never is: the runtime is
//!    stuck for good. The example prints the report, leaks that runtime and exits.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const THRESHOLD: Duration = Duration::from_millis(100);

fn runtime(workers: usize, name: &str, reports: mpsc::Sender<String>) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(workers)
        .thread_name(name)
        .watchdog(Some(THRESHOLD))
        .on_watchdog_report(move |report| {
            eprintln!("{report}");
            let _ = reports.send(report.fiber_name.clone().unwrap_or_default());
        })
        .build()
        .expect("runtime")
}

fn cpu_loop() {
    let (tx, rx) = mpsc::channel();
    let rt = runtime(2, "cpu", tx);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let ran = fiber::Builder::new()
        .name("cpu-loop".into())
        .spawn_on(&rt, move || {
            // Started here and parked; woken from outside while the loop runs, it is ready but
            // waits behind the loop: started fibers cannot move to the other worker.
            let go = Arc::new(AtomicBool::new(false));
            let g = go.clone();
            let neighbour = fiber::spawn(move || {
                while !g.load(Ordering::SeqCst) {
                    fiber::park();
                }
            });
            fiber::sleep(Duration::from_millis(5)); // lets it start here and park
            let waker = neighbour.thread().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                go.store(true, Ordering::SeqCst);
                waker.unpark();
            });
            // Queued on this worker's deque just before the loop: the other worker steals them.
            for _ in 0..100 {
                let d = d.clone();
                fiber::spawn(move || {
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
            let until = Instant::now() + Duration::from_millis(500);
            let mut x = 0u64;
            while Instant::now() < until {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            neighbour.join().unwrap();
            x
        })
        .expect("spawn");
    let _ = ran.join();
    let reported = rx.try_iter().filter(|name| name == "cpu-loop").count();
    println!(
        "cpu loop: {reported} report(s); {} of 100 fibers spawned before the loop ran meanwhile",
        done.load(Ordering::SeqCst)
    );
    println!("{}", rt.metrics());
}

#[cfg(feature = "hook")]
fn std_lock_across_io() {
    let (tx, rx) = mpsc::channel();
    let rt = runtime(1, "lock", tx);
    let m = Arc::new(std::sync::Mutex::new(0u32));
    let locked = Arc::new(AtomicBool::new(false));
    let (m1, l1) = (m.clone(), locked.clone());
    fiber::Builder::new()
        .name("holder".into())
        .spawn_on(&rt, move || {
            let mut g = m1.lock().unwrap();
            l1.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50)); // hooked: parks the fiber
            *g += 1;
        })
        .expect("spawn");
    fiber::Builder::new()
        .name("asks-std-lock".into())
        .spawn_on(&rt, move || {
            while !locked.load(Ordering::SeqCst) {
                fiber::yield_now();
            }
            *m.lock().unwrap() += 1; // blocks the carrier in futex
        })
        .expect("spawn");
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(name) => println!("std lock: reported {name:?}; the runtime is stuck for good, leaked"),
        Err(_) => println!("std lock: no report within 10 s"),
    }
    std::mem::forget(rt);
}

#[cfg(not(feature = "hook"))]
fn std_lock_across_io() {
    println!("std lock: needs the `hook` feature (a std sleep is a fiber park only with it)");
}

fn main() {
    cpu_loop();
    std_lock_across_io();
}
