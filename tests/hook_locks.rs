//! The hazard the hooks leave (docs/caveats.md, docs/hook.md): a std lock held across a hooked
//! wait. The holder parks (the hooks made its sleep or I/O a fiber park), another fiber on the same
//! carrier asks for the lock, and std's lock blocks the carrier's OS thread in the kernel. The
//! holder can only be resumed by that thread, so it never runs again: the carrier and every fiber
//! on it stop for good. `fiber::sync`'s locks park the asking fiber instead.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{runtime_without_spares, watchdog};

/// What one run of the scenario showed.
struct Seen {
    holder_done: bool,
    waiter_done: bool,
    /// Ticks of a third fiber on the carrier during the observation window.
    ticks_in_window: usize,
}

#[derive(Default)]
struct Progress {
    locked: AtomicBool,
    holder_done: AtomicBool,
    waiter_done: AtomicBool,
    ticks: AtomicUsize,
    stop: AtomicBool,
}

/// On one worker: a holder takes the lock and sleeps 100 ms with `std::thread::sleep` (hooked: a
/// park), a waiter then asks for the lock, and a ticker counts 5 ms sleeps. `lock` takes the
/// lock, holds it across the sleep and drops it. Observed from this (plain) thread for 1 s after
/// the holder's sleep should have ended. Returns the runtime too: a stalled one cannot be dropped.
fn scenario(
    lock: impl Fn(&Progress) + Send + Sync + 'static,
) -> (Seen, fiber::Runtime, Arc<Progress>) {
    // No spare worker: the ticker, if not started yet, would start on one.
    let rt = runtime_without_spares(1, "hazard");
    let p = Arc::new(Progress::default());
    let lock = Arc::new(lock);
    let (p1, l1) = (p.clone(), lock.clone());
    rt.spawn(move || {
        l1(&p1);
        p1.holder_done.store(true, Ordering::SeqCst);
    });
    let p2 = p.clone();
    rt.spawn(move || {
        while !p2.locked.load(Ordering::SeqCst) {
            fiber::yield_now();
        }
        lock(&p2);
        p2.waiter_done.store(true, Ordering::SeqCst);
    });
    let p3 = p.clone();
    rt.spawn(move || {
        while !p3.stop.load(Ordering::SeqCst) {
            p3.ticks.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let t0 = Instant::now();
    while !p.locked.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        p.locked.load(Ordering::SeqCst),
        "the holder never took the lock"
    );
    // Well past the holder's 100 ms sleep, then a 1 s window.
    std::thread::sleep(Duration::from_millis(300));
    let before = p.ticks.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let seen = Seen {
        holder_done: p.holder_done.load(Ordering::SeqCst),
        waiter_done: p.waiter_done.load(Ordering::SeqCst),
        ticks_in_window: p.ticks.load(Ordering::SeqCst) - before,
    };
    (seen, rt, p)
}

#[test]
fn a_std_lock_held_across_a_hooked_wait_stops_the_carrier_for_good() {
    let m = Arc::new(std::sync::Mutex::new(0u32));
    let (seen, rt, _p) = watchdog(60, move || {
        scenario(move |p| {
            let mut g = m.lock().unwrap();
            p.locked.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            *g += 1;
        })
    });
    assert!(
        !seen.holder_done && !seen.waiter_done,
        "holder done {}, waiter done {}: expected both stuck",
        seen.holder_done,
        seen.waiter_done
    );
    assert_eq!(
        seen.ticks_in_window, 0,
        "a fiber on the stalled carrier kept running"
    );
    // The worker thread sits in the kernel on the std mutex and its holder can never run again:
    // dropping the runtime would wait for that worker forever. Leak it (the process exits).
    std::mem::forget(rt);
}

#[test]
fn a_fiber_sync_lock_held_across_the_same_wait_parks_only_the_fiber() {
    let m = Arc::new(fiber::sync::Mutex::new(0u32));
    let m2 = m.clone();
    let (seen, rt, p) = watchdog(60, move || {
        scenario(move |p| {
            let mut g = m2.lock().unwrap();
            p.locked.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            *g += 1;
        })
    });
    assert!(seen.holder_done && seen.waiter_done);
    // 5 ms ticks for 1 s: about 200 on an idle machine, 35 seen on a loaded one; the stalled
    // carrier of the std-lock case gives exactly 0.
    assert!(
        seen.ticks_in_window >= 10,
        "the ticker ran only {} times in 1 s",
        seen.ticks_in_window
    );
    p.stop.store(true, Ordering::SeqCst);
    drop(rt);
    assert_eq!(*m.lock().unwrap(), 2);
}
