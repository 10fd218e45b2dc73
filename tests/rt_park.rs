//! Park/unpark: the token protocol, no lost wake-up when an unpark races the parking fiber's
//! switch-out (stress across workers), `park_timeout`, and plain-OS-thread behaviour.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use support::{runtime, scaled, watchdog};

/// Two parties hand a turn back and forth `total` times: party `me` may act when
/// `turn % 2 == me`; it passes the turn and unparks the other, then parks until it is its turn
/// again. A lost wake-up leaves both parked forever (the watchdog fires).
fn play(me: usize, turn: &AtomicUsize, other: &fiber::Fiber, total: usize) -> usize {
    let mut mine = 0;
    loop {
        let t = turn.load(Ordering::Acquire);
        if t >= total {
            return mine;
        }
        if t % 2 == me {
            turn.store(t + 1, Ordering::Release);
            mine += 1;
            other.unpark();
        } else {
            fiber::park();
        }
    }
}

#[test]
fn ping_pong_handoffs_across_two_workers() {
    // 1M handoffs in release (about 5 s here: each one wakes a sleeping worker); 200k in debug.
    let total = scaled(1_000_000, 200_000);
    let (a_thread, b_thread, a_moves, b_moves) = watchdog(120, move || {
        let rt = runtime(2, "pingpong");
        let turn = Arc::new(AtomicUsize::new(0));
        let a_fiber: Arc<OnceLock<fiber::Fiber>> = Arc::new(OnceLock::new());
        let b_fiber: Arc<OnceLock<fiber::Fiber>> = Arc::new(OnceLock::new());
        let a = {
            let (turn, a_fiber, b_fiber) = (turn.clone(), a_fiber.clone(), b_fiber.clone());
            rt.spawn(move || {
                a_fiber.set(fiber::current()).unwrap();
                // Spin without yielding until B has started: B cannot be on this worker, so the
                // two fibers run on different workers for the whole game.
                let b = loop {
                    if let Some(b) = b_fiber.get() {
                        break b.clone();
                    }
                    std::hint::spin_loop();
                };
                let thread = std::thread::current().name().unwrap().to_owned();
                (thread, play(0, &turn, &b, total))
            })
        };
        // Spawned from this plain thread only once A is running, so the idle worker takes it.
        while a_fiber.get().is_none() {
            std::thread::yield_now();
        }
        let b = {
            let (turn, a_fiber, b_fiber) = (turn.clone(), a_fiber.clone(), b_fiber.clone());
            rt.spawn(move || {
                b_fiber.set(fiber::current()).unwrap();
                let a = a_fiber.get().unwrap().clone();
                let thread = std::thread::current().name().unwrap().to_owned();
                (thread, play(1, &turn, &a, total))
            })
        };
        let (a_thread, a_moves) = a.join().unwrap();
        let (b_thread, b_moves) = b.join().unwrap();
        assert_eq!(turn.load(Ordering::SeqCst), total);
        (a_thread, b_thread, a_moves, b_moves)
    });
    assert_ne!(
        a_thread, b_thread,
        "the pair was meant to run on two workers"
    );
    assert_eq!(a_moves, total / 2);
    assert_eq!(b_moves, total / 2);
}

#[test]
fn many_pairs_handoffs_mixed_local_and_remote() {
    // Sixteen pairs on two workers: wake-ups land both on the waker's own worker (`next` slot)
    // and on the other worker (inbox), while the workers also steal unstarted fibers.
    let pairs = 16;
    let per_pair = scaled(100_000, 10_000);
    watchdog(120, move || {
        let rt = runtime(2, "pairs");
        let mut handles = Vec::new();
        for _ in 0..pairs {
            let turn = Arc::new(AtomicUsize::new(0));
            let cells: Arc<[OnceLock<fiber::Fiber>; 2]> =
                Arc::new([OnceLock::new(), OnceLock::new()]);
            for me in 0..2 {
                let (turn, cells) = (turn.clone(), cells.clone());
                handles.push(rt.spawn(move || {
                    cells[me].set(fiber::current()).unwrap();
                    let other = loop {
                        if let Some(f) = cells[1 - me].get() {
                            break f.clone();
                        }
                        fiber::yield_now();
                    };
                    play(me, &turn, &other, per_pair)
                }));
            }
        }
        let moves: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(moves, pairs * per_pair);
    });
}

#[test]
fn ping_pong_between_two_runtimes() {
    // Wake-ups that cross runtimes go through the other runtime's inbox.
    let total = scaled(400_000, 50_000);
    watchdog(120, move || {
        let rt_a = runtime(1, "pp-rt-a");
        let rt_b = runtime(1, "pp-rt-b");
        let turn = Arc::new(AtomicUsize::new(0));
        let cells: Arc<[OnceLock<fiber::Fiber>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
        let player = |me: usize| {
            let (turn, cells) = (turn.clone(), cells.clone());
            move || {
                cells[me].set(fiber::current()).unwrap();
                let other = loop {
                    if let Some(f) = cells[1 - me].get() {
                        break f.clone();
                    }
                    fiber::yield_now();
                };
                play(me, &turn, &other, total)
            }
        };
        let a = rt_a.spawn(player(0));
        let b = rt_b.spawn(player(1));
        assert_eq!(a.join().unwrap() + b.join().unwrap(), total);
    });
}

#[test]
fn many_unparkers_one_parker() {
    // Fibers and OS threads each bump a counter and unpark the consumer; the consumer parks until
    // it has seen every bump. Unparks collapse into one token, so the count must be re-checked.
    let per_producer = scaled(50_000, 5_000);
    watchdog(120, move || {
        let rt = runtime(2, "storm");
        let count = Arc::new(AtomicUsize::new(0));
        let producers = 6; // 3 fibers + 3 OS threads
        let total = producers * per_producer;
        let consumer = {
            let count = count.clone();
            rt.spawn(move || {
                let mut parks = 0usize;
                while count.load(Ordering::Acquire) < total {
                    fiber::park();
                    parks += 1;
                }
                parks
            })
        };
        let target = consumer.fiber().clone();
        let mut fibers = Vec::new();
        let mut threads = Vec::new();
        for p in 0..producers {
            let (count, target) = (count.clone(), target.clone());
            let work = move || {
                for _ in 0..per_producer {
                    count.fetch_add(1, Ordering::Release);
                    target.unpark();
                }
            };
            if p % 2 == 0 {
                fibers.push(rt.spawn(work));
            } else {
                threads.push(std::thread::spawn(work));
            }
        }
        for f in fibers {
            f.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        let parks = consumer.join().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), total);
        assert!(
            parks <= total,
            "more returns from park ({parks}) than unparks ({total})"
        );
    });
}

#[test]
fn os_thread_and_fiber_hand_off() {
    // A plain thread and a fiber take turns: fiber::park on the thread is std's park, and the
    // thread's `fiber::current()` handle unparks it.
    let total = scaled(100_000, 20_000);
    watchdog(120, move || {
        let rt = runtime(2, "mixed");
        let turn = Arc::new(AtomicUsize::new(0));
        let me = fiber::current();
        let (tx, rx) = mpsc::channel();
        let turn2 = turn.clone();
        let f = rt.spawn(move || {
            tx.send(fiber::current()).unwrap();
            play(1, &turn2, &me, total)
        });
        let fiber_handle = rx.recv().unwrap();
        let mine = play(0, &turn, &fiber_handle, total);
        assert_eq!(mine + f.join().unwrap(), total);
    });
}

#[test]
fn unpark_before_park_makes_park_return_once() {
    watchdog(30, || {
        let rt = runtime(1, "token");
        rt.block_on(|| {
            let me = fiber::current();
            me.unpark();
            // The token is there: park returns at once.
            fiber::park();
            // Several unparks still make one token.
            me.unpark();
            me.unpark();
            me.unpark();
            fiber::park();
            // The token is used up: this waits for the timeout.
            let t = Instant::now();
            fiber::park_timeout(Duration::from_millis(50));
            assert!(
                t.elapsed() >= Duration::from_millis(50),
                "park_timeout returned early without a token"
            );
        });
    });
}

#[test]
fn park_timeout_expires_and_returns_early_on_unpark() {
    watchdog(60, || {
        let rt = runtime(2, "timeout");
        // Expires: no unpark comes.
        let waited = rt.block_on(|| {
            let t = Instant::now();
            fiber::park_timeout(Duration::from_millis(100));
            t.elapsed()
        });
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");

        // Unparked long before the timeout.
        let (tx, rx) = mpsc::channel();
        let h = rt.spawn(move || {
            tx.send(fiber::current()).unwrap();
            let t = Instant::now();
            fiber::park_timeout(Duration::from_secs(600));
            t.elapsed()
        });
        let f = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        f.unpark();
        let waited = h.join().unwrap();
        assert!(
            waited < Duration::from_secs(60),
            "park_timeout ignored the unpark: {waited:?}"
        );

        // Zero timeout: returns at once; Duration::MAX: the same as park (needs an unpark).
        rt.block_on(|| fiber::park_timeout(Duration::ZERO));
        let (tx, rx) = mpsc::channel();
        let h = rt.spawn(move || {
            tx.send(fiber::current()).unwrap();
            fiber::park_timeout(Duration::MAX);
            7
        });
        let f = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        f.unpark();
        assert_eq!(h.join().unwrap(), 7);
    });
}

#[test]
fn park_timeout_does_not_leave_a_stale_wake_up() {
    // Many short timeouts that fire, then a long one: an expired timer must not wake the fiber
    // later, and a cancelled one must not fire.
    watchdog(60, || {
        let rt = runtime(1, "stale");
        rt.block_on(|| {
            for _ in 0..20 {
                fiber::park_timeout(Duration::from_millis(1));
            }
            let me = fiber::current();
            for _ in 0..20 {
                me.unpark();
                fiber::park_timeout(Duration::from_millis(30)); // returns at once: token
            }
            let t = Instant::now();
            fiber::park_timeout(Duration::from_millis(100));
            assert!(t.elapsed() >= Duration::from_millis(100));
        });
    });
}

#[test]
fn park_timeout_many_fibers_racing_unparks() {
    // Fibers wait with short timeouts while unparks fly at them: each must end with exactly the
    // work it expects, whichever of timer and unpark wins each race.
    let rounds = scaled(2_000, 300);
    watchdog(120, move || {
        let rt = runtime(2, "race");
        let fibers = 8;
        let done = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..fibers)
            .map(|_| {
                rt.spawn(move || {
                    for _ in 0..rounds {
                        fiber::park_timeout(Duration::from_micros(50));
                    }
                    rounds
                })
            })
            .collect();
        let targets: Vec<fiber::Fiber> = handles.iter().map(|h| h.fiber().clone()).collect();
        let done2 = done.clone();
        let unparker = std::thread::spawn(move || {
            while !done2.load(Ordering::Relaxed) {
                for t in &targets {
                    t.unpark();
                }
                std::thread::yield_now();
            }
        });
        let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::Relaxed);
        unparker.join().unwrap();
        assert_eq!(sum, fibers * rounds);
    });
}

#[test]
fn unpark_of_a_finished_fiber_is_harmless() {
    watchdog(30, || {
        let rt = runtime(1, "finished");
        let h = rt.spawn(|| 1);
        let f = h.fiber().clone();
        assert_eq!(h.join().unwrap(), 1);
        for _ in 0..100 {
            f.unpark();
        }
        // The runtime still works.
        assert_eq!(rt.spawn(|| 2).join().unwrap(), 2);
        // Unparking a fiber that has not started yet gives it a token for its first park.
        let started = Arc::new(AtomicBool::new(false));
        let s2 = started.clone();
        let blocker = rt.spawn(move || {
            // Keep the only worker busy so the next fiber cannot start yet.
            while !s2.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        let h = rt.spawn(fiber::park);
        h.fiber().unpark();
        started.store(true, Ordering::SeqCst);
        blocker.join().unwrap();
        h.join().unwrap();
    });
}

#[test]
fn on_os_threads_park_and_current_behave_as_std() {
    watchdog(30, || {
        assert!(!fiber::is_fiber());
        let me = fiber::current();
        assert_eq!(me.id(), fiber::current().id());
        assert_eq!(me.name(), std::thread::current().name());

        // Token before park.
        me.unpark();
        fiber::park();
        // park_timeout expires.
        let t = Instant::now();
        fiber::park_timeout(Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(20)); // std allows spurious wake-ups; rare
                                                           // A named thread, unparked through its fiber::current() handle.
        let (tx, rx) = mpsc::channel();
        let flag = Arc::new(AtomicBool::new(false));
        let flag2 = flag.clone();
        let t = std::thread::Builder::new()
            .name("parker".into())
            .spawn(move || {
                let me = fiber::current();
                tx.send(me.clone()).unwrap();
                while !flag2.load(Ordering::SeqCst) {
                    fiber::park();
                }
                (me.name().map(str::to_owned), me.id())
            })
            .unwrap();
        let handle = rx.recv().unwrap();
        assert_ne!(handle.id(), me.id());
        std::thread::sleep(Duration::from_millis(10));
        flag.store(true, Ordering::SeqCst);
        handle.unpark();
        let (name, id) = t.join().unwrap();
        assert_eq!(name.as_deref(), Some("parker"));
        assert_eq!(id, handle.id());

        // yield_now and sleep on a plain thread.
        fiber::yield_now();
        let t = Instant::now();
        fiber::sleep(Duration::from_millis(10));
        assert!(t.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn a_fiber_wakes_a_parked_os_thread() {
    watchdog(30, || {
        let rt = runtime(1, "wake-thread");
        let flag = Arc::new(AtomicBool::new(false));
        let me = fiber::current();
        let flag2 = flag.clone();
        rt.spawn(move || {
            fiber::sleep(Duration::from_millis(20));
            flag2.store(true, Ordering::SeqCst);
            me.unpark();
        });
        while !flag.load(Ordering::SeqCst) {
            fiber::park();
        }
    });
}
