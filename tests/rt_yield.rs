//! Fairness: fibers that keep one worker busy — yielding, or waking each other — cannot starve
//! the others on that worker (new fibers, woken fibers, timers).
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use support::{runtime, watchdog};

/// One of a pair that hands a turn back and forth with park/unpark until `stop` is set.
fn ping_pong_until(me: usize, turn: &AtomicUsize, other: &fiber::Fiber, stop: &AtomicBool) -> u64 {
    let mut moves = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            other.unpark();
            return moves;
        }
        let t = turn.load(Ordering::Acquire);
        if t % 2 == me {
            turn.store(t + 1, Ordering::Release);
            moves += 1;
            other.unpark();
        } else {
            fiber::park();
        }
    }
}

/// Starts a ping-ponging pair on `rt`; returns their handles once both are playing.
fn start_pair(
    rt: &fiber::Runtime,
    stop: &Arc<AtomicBool>,
) -> (fiber::JoinHandle<u64>, fiber::JoinHandle<u64>) {
    let turn = Arc::new(AtomicUsize::new(0));
    let cells: Arc<[OnceLock<fiber::Fiber>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let spawn = |me: usize| {
        let (turn, cells, stop) = (turn.clone(), cells.clone(), stop.clone());
        rt.spawn(move || {
            cells[me].set(fiber::current()).unwrap();
            let other = loop {
                if let Some(f) = cells[1 - me].get() {
                    break f.clone();
                }
                fiber::yield_now();
            };
            ping_pong_until(me, &turn, &other, &stop)
        })
    };
    let a = spawn(0);
    let b = spawn(1);
    // Wait until the game is on.
    while turn.load(Ordering::SeqCst) < 100 {
        std::thread::yield_now();
    }
    (a, b)
}

#[test]
fn a_ping_pong_pair_cannot_starve_a_yielding_fiber() {
    watchdog(60, || {
        let rt = runtime(1, "pair-vs-yielder");
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b) = start_pair(&rt, &stop);
        // Spawned while the pair keeps the only worker busy, and it yields 1000 times.
        let stop2 = stop.clone();
        let third = rt.spawn(move || {
            for _ in 0..1000 {
                fiber::yield_now();
            }
            stop2.store(true, Ordering::SeqCst);
        });
        third.join().unwrap();
        assert!(a.join().unwrap() > 0);
        assert!(b.join().unwrap() > 0);
    });
}

#[test]
fn a_ping_pong_pair_cannot_starve_a_sleeper_or_a_woken_fiber() {
    watchdog(60, || {
        let rt = runtime(1, "pair-vs-wakeups");
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b) = start_pair(&rt, &stop);
        // A sleeper: its timer must fire although the worker never runs out of work.
        let sleeper = rt.spawn(|| {
            fiber::sleep(Duration::from_millis(30));
            1
        });
        assert_eq!(sleeper.join().unwrap(), 1);
        // A parked fiber woken from a plain thread (through the worker's inbox).
        let (tx, rx) = mpsc::channel();
        let flag = Arc::new(AtomicBool::new(false));
        let flag2 = flag.clone();
        let parked = rt.spawn(move || {
            tx.send(fiber::current()).unwrap();
            while !flag2.load(Ordering::SeqCst) {
                fiber::park();
            }
            2
        });
        let f = rx.recv().unwrap();
        flag.store(true, Ordering::SeqCst);
        f.unpark();
        assert_eq!(parked.join().unwrap(), 2);
        stop.store(true, Ordering::SeqCst);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn yield_loops_cannot_starve_unstarted_fibers() {
    watchdog(60, || {
        let rt = runtime(1, "yield-vs-new");
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                rt.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        fiber::yield_now();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // A fiber from outside (the global queue) gets to run...
        assert_eq!(rt.spawn(|| 5).join().unwrap(), 5);
        // ...and so does one spawned by a spinner (its worker's own queue of new fibers), which
        // then ends the spinning.
        let stop2 = stop.clone();
        let spawner = rt.spawn(move || {
            let child = fiber::spawn(move || stop2.store(true, Ordering::SeqCst));
            let mut n = 0u64;
            while !child.is_finished() {
                fiber::yield_now();
                n += 1;
            }
            child.join().unwrap();
            n
        });
        spawner.join().unwrap();
        for s in spinners {
            assert!(s.join().unwrap() > 0);
        }
    });
}

#[test]
fn two_yielding_fibers_alternate() {
    watchdog(60, || {
        let rt = runtime(1, "alternate");
        let log = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(AtomicUsize::new(0));
        let rounds = 1000;
        let handles: Vec<_> = (0..2u8)
            .map(|me| {
                let (log, ready) = (log.clone(), ready.clone());
                rt.spawn(move || {
                    ready.fetch_add(1, Ordering::SeqCst);
                    while ready.load(Ordering::SeqCst) < 2 {
                        fiber::yield_now();
                    }
                    for _ in 0..rounds {
                        log.lock().unwrap().push(me);
                        fiber::yield_now();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2 * rounds);
        // Each yield lets the other run: no fiber runs more than twice in a row.
        let longest = log.chunk_by(|a, b| a == b).map(<[u8]>::len).max().unwrap();
        assert!(
            longest <= 2,
            "a fiber ran {longest} times in a row after yielding"
        );
    });
}

#[test]
fn yield_shares_workers_between_many_fibers() {
    watchdog(60, || {
        // More yield-looping fibers than workers: every one of them finishes its quota.
        let rt = runtime(2, "many-yielders");
        let quota = 2000;
        let handles: Vec<_> = (0..32)
            .map(|_| {
                rt.spawn(move || {
                    for _ in 0..quota {
                        fiber::yield_now();
                    }
                    quota
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 32 * quota);
    });
}

#[test]
fn yield_now_on_a_plain_thread_returns() {
    for _ in 0..100 {
        fiber::yield_now();
    }
}
