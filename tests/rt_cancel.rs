//! Cancelling one fiber (issue 15, docs/cancellation.md): `JoinHandle::cancel`,
//! `ScopedJoinHandle::cancel` and `Fiber::cancel` unwind the fiber from the wait it is in (or its
//! next one), `join` reports `fiber::Cancelled`, destructors run, and nothing handed to the fiber
//! at that moment is lost.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{
    mpmc, Barrier, Condvar, Mutex, OnceLock, RwLock, Semaphore, TryLockError, WaitGroup,
};
use support::{
    eventually, one_worker_runtime, payload_text, runtime, scaled, spawn_parked, watchdog,
    DropCounter,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Asserts that `result` is a cancellation (not a panic, not a value).
fn assert_cancelled<T>(what: &str, result: std::thread::Result<T>) {
    match result {
        Ok(_) => panic!("{what}: the fiber finished instead of being cancelled"),
        Err(e) => assert!(
            e.is::<fiber::Cancelled>(),
            "{what}: the payload is not fiber::Cancelled but {:?}",
            payload_text(&*e)
        ),
    }
}

/// Parks `wait` in a fiber of a one-worker runtime (it holds a drop guard), cancels it from this
/// plain thread, and checks that it is unwound with `Cancelled` and its guard dropped. Returns
/// the runtime, for checks on what the wait left behind.
fn cancel_while_parked(what: &str, wait: impl FnOnce() + Send + 'static) -> fiber::Runtime {
    let rt = one_worker_runtime();
    let drops = DropCounter::new();
    let guard = drops.guard();
    let handle = spawn_parked(&rt, move || {
        let _guard = guard;
        wait();
    });
    assert!(!handle.is_finished(), "{what}: the wait did not park");
    handle.cancel();
    assert_cancelled(what, handle.join());
    assert_eq!(
        drops.get(),
        1,
        "{what}: the fiber's destructors did not run"
    );
    rt
}

#[test]
fn cancel_unwinds_sleep_park_and_park_timeout() {
    watchdog(30, || {
        cancel_while_parked("sleep", || fiber::sleep(HOUR));
        cancel_while_parked("sleep_until", || fiber::sleep_until(Instant::now() + HOUR));
        cancel_while_parked("park", || loop {
            fiber::park()
        });
        cancel_while_parked("park_timeout", || loop {
            fiber::park_timeout(HOUR)
        });
        cancel_while_parked("yield_now", || loop {
            fiber::yield_now()
        });
    });
}

#[test]
fn cancel_unwinds_join_and_io() {
    watchdog(30, || {
        let forever = Arc::new(std::sync::Mutex::new(None::<fiber::Fiber>));
        let rt = cancel_while_parked("join", {
            let forever = forever.clone();
            move || {
                let waited = fiber::spawn(|| loop {
                    fiber::park()
                });
                *forever.lock().unwrap() = Some(waited.fiber().clone());
                let _ = waited.join();
            }
        });
        // The joined fiber is untouched by its joiner's cancellation.
        let waited = forever
            .lock()
            .unwrap()
            .take()
            .expect("the joiner spawned it");
        waited.cancel();
        drop(rt);

        cancel_while_parked("accept", || {
            let listener = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let _ = listener.accept();
        });
        cancel_while_parked("udp recv", || {
            let socket = fiber::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let _ = socket.recv(&mut [0; 16]);
        });
    });
}

#[test]
fn cancel_unwinds_channel_waits_and_keeps_messages() {
    watchdog(30, || {
        let (tx, rx) = mpmc::unbounded::<u32>();
        cancel_while_parked("recv", {
            let rx = rx.clone();
            move || {
                let _ = rx.recv();
            }
        });
        tx.send(7).unwrap();
        assert_eq!(
            rx.try_recv(),
            Ok(7),
            "a message sent after the cancel was lost"
        );

        let (tx, rx) = mpmc::bounded::<u32>(1);
        tx.send(1).unwrap();
        cancel_while_parked("send", {
            let tx = tx.clone();
            move || {
                let _ = tx.send(2);
            }
        });
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(
            rx.try_recv().is_err(),
            "the cancelled send delivered its message"
        );

        let (tx1, rx1) = mpmc::unbounded::<u32>();
        let (tx2, rx2) = mpmc::unbounded::<u32>();
        cancel_while_parked("select! with a timeout", {
            let (rx1, rx2) = (rx1.clone(), rx2.clone());
            move || {
                fiber::select! {
                    recv(rx1) -> _m => {},
                    recv(rx2) -> _m => {},
                    timeout(HOUR) => {},
                }
            }
        });
        tx1.send(1).unwrap();
        tx2.send(2).unwrap();
        assert_eq!((rx1.try_recv(), rx2.try_recv()), (Ok(1), Ok(2)));
        cancel_while_parked("recv_timeout", move || {
            let _ = rx1.recv_timeout(HOUR);
        });

        let (tx, rx) = fiber::sync::mpsc::sync_channel::<u32>(0);
        cancel_while_parked("rendezvous send", move || {
            let _ = tx.send(3);
        });
        drop(rx);
    });
}

#[test]
fn cancel_unwinds_lock_waits_and_leaves_the_locks_usable() {
    watchdog(30, || {
        let m = Arc::new(Mutex::new(0));
        let held = m.lock().unwrap();
        cancel_while_parked("mutex", {
            let m = m.clone();
            move || *m.lock().unwrap() += 1
        });
        drop(held);
        assert_eq!(*m.try_lock().expect("the mutex is free"), 0);

        let l = Arc::new(RwLock::new(0));
        let read = l.read().unwrap();
        cancel_while_parked("rwlock write", {
            let l = l.clone();
            move || *l.write().unwrap() += 1
        });
        drop(read);
        let write = l.write().unwrap();
        cancel_while_parked("rwlock read", {
            let l = l.clone();
            move || drop(l.read())
        });
        drop(write);
        assert!(l.try_write().is_ok(), "the rwlock is free");

        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        cancel_while_parked("condvar", {
            let pair = pair.clone();
            move || {
                let mut ready = pair.0.lock().unwrap();
                while !*ready {
                    ready = pair.1.wait(ready).unwrap();
                }
            }
        });
        assert!(pair.0.try_lock().is_ok(), "the condvar's mutex is free");
        cancel_while_parked("condvar wait_timeout", {
            let pair = pair.clone();
            move || {
                let ready = pair.0.lock().unwrap();
                let _ = pair.1.wait_timeout(ready, HOUR);
            }
        });
        assert!(pair.0.try_lock().is_ok(), "the condvar's mutex is free");
        assert!(!pair.0.is_poisoned(), "cancellation poisoned the mutex");

        let s = Arc::new(Semaphore::new(0));
        cancel_while_parked("semaphore", {
            let s = s.clone();
            move || drop(s.acquire())
        });
        s.add_permits(1);
        assert!(s.try_acquire().is_some(), "the permit was lost");

        let b = Arc::new(Barrier::new(2));
        cancel_while_parked("barrier", {
            let b = b.clone();
            move || {
                b.wait();
            }
        });

        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        cancel_while_parked("waitgroup", {
            let wg = wg.clone();
            move || wg.wait()
        });
    });
}

#[test]
fn cancel_unwinds_once_lock_and_spawn_blocking_waits() {
    watchdog(30, || {
        let cell = Arc::new(OnceLock::<u32>::new());
        let rt = one_worker_runtime();
        let initialising = spawn_parked(&rt, {
            let cell = cell.clone();
            move || {
                cell.get_or_init(|| loop {
                    fiber::park()
                });
            }
        });
        drop(cancel_while_parked("once_lock", {
            let cell = cell.clone();
            move || {
                cell.wait();
            }
        }));
        initialising.cancel();
        assert_cancelled("once_lock initialiser", initialising.join());
        assert_eq!(*cell.get_or_init(|| 5), 5, "the OnceLock is usable again");

        // The blocking job waits until the cancelled fiber has been joined: the fiber was woken
        // by the cancel, not by the job's result.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        cancel_while_parked("spawn_blocking", move || {
            fiber::spawn_blocking(move || released.lock().unwrap().recv().ok());
        });
        release.send(()).unwrap();
    });
}

/// A fiber that never parks, only yields: the cancel lands at its next `yield_now`.
#[test]
fn cancel_lands_at_the_next_yield_of_a_busy_fiber() {
    watchdog(30, || {
        let rt = runtime(1, "cancel-busy");
        let spins = Arc::new(AtomicUsize::new(0));
        let handle = rt.spawn({
            let spins = spins.clone();
            move || loop {
                spins.fetch_add(1, Ordering::Relaxed);
                fiber::yield_now();
            }
        });
        assert!(eventually(10, || spins.load(Ordering::Relaxed) > 100));
        handle.cancel();
        assert_cancelled("busy yield loop", handle.join());
    });
}

/// A fiber that is running when cancelled keeps running until it parks.
#[test]
fn cancel_of_a_running_fiber_lands_at_its_next_park() {
    watchdog(30, || {
        let rt = runtime(1, "cancel-running");
        let (running, go_on) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reached_park = Arc::new(AtomicBool::new(false));
        let handle = rt.spawn({
            let (running, go_on, reached) = (running.clone(), go_on.clone(), reached_park.clone());
            move || {
                running.store(true, Ordering::SeqCst);
                while !go_on.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                reached.store(true, Ordering::SeqCst);
                fiber::sleep(HOUR);
                unreachable!("the sleep was cancelled");
            }
        });
        assert!(eventually(10, || running.load(Ordering::SeqCst)));
        handle.cancel();
        assert!(!handle.is_finished());
        go_on.store(true, Ordering::SeqCst);
        assert_cancelled("running, then sleeping", handle.join());
        assert!(
            reached_park.load(Ordering::SeqCst),
            "the fiber was stopped before its park"
        );
    });
}

/// A fiber cancelled before it started never runs its closure; the closure is still dropped.
#[test]
fn cancel_before_start_never_runs_the_closure() {
    watchdog(30, || {
        let rt = runtime(1, "cancel-unstarted");
        let release = Arc::new(AtomicBool::new(false));
        let blocker = rt.spawn({
            let release = release.clone();
            // Occupies the only worker without yielding.
            move || {
                while !release.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            }
        });
        let drops = DropCounter::new();
        let ran = Arc::new(AtomicBool::new(false));
        let handle = rt.spawn({
            let (guard, ran) = (drops.guard(), ran.clone());
            move || {
                let _guard = guard;
                ran.store(true, Ordering::SeqCst);
            }
        });
        handle.cancel();
        release.store(true, Ordering::SeqCst);
        blocker.join().unwrap();
        assert_cancelled("unstarted", handle.join());
        assert!(
            !ran.load(Ordering::SeqCst),
            "the cancelled fiber's closure ran"
        );
        assert_eq!(drops.get(), 1, "the closure was not dropped");
    });
}

/// Sticky: a fiber that catches the unwind finds its next park cancelled again.
#[test]
fn cancellation_is_sticky() {
    watchdog(30, || {
        let rt = one_worker_runtime();
        let caught = Arc::new(AtomicUsize::new(0));
        let drops = DropCounter::new();
        let handle = spawn_parked(&rt, {
            let (caught, guard) = (caught.clone(), drops.guard());
            move || {
                let _outer = guard;
                for _ in 0..3 {
                    let r = std::panic::catch_unwind(|| fiber::sleep(HOUR));
                    let payload = r.expect_err("the sleep was not cancelled");
                    assert!(payload.is::<fiber::Cancelled>());
                    caught.fetch_add(1, Ordering::SeqCst);
                }
                // Waits that do not park are unaffected...
                let m = Mutex::new(1);
                assert_eq!(*m.lock().unwrap(), 1);
                // ...and the next one that does is cancelled again.
                loop {
                    fiber::park();
                }
            }
        });
        handle.cancel();
        handle.cancel(); // idempotent
        assert_cancelled("sticky", handle.join());
        assert_eq!(caught.load(Ordering::SeqCst), 3);
        assert_eq!(drops.get(), 1);
    });
}

/// The join payload is `fiber::Cancelled`, and a cancelled fiber prints no panic message: no
/// panic hook runs for it (counted for panics on this test's own worker threads only).
#[test]
fn cancelled_fibers_print_no_panic_message() {
    watchdog(30, || {
        let rt = runtime(2, "cancel-quiet");
        static HOOK_RUNS: AtomicUsize = AtomicUsize::new(0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            if name.starts_with("cancel-quiet") {
                HOOK_RUNS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                rt.spawn(move || {
                    if i % 2 == 0 {
                        fiber::sleep(HOUR)
                    } else {
                        loop {
                            fiber::park()
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        for h in &handles {
            h.cancel();
        }
        for h in handles {
            let err = h.join().unwrap_err();
            assert!(err.downcast_ref::<fiber::Cancelled>().is_some());
            assert_eq!(
                err.downcast_ref::<fiber::Cancelled>().unwrap().to_string(),
                "the fiber was cancelled"
            );
        }
        assert_eq!(HOOK_RUNS.load(Ordering::SeqCst), 0, "a panic hook ran");
        // A real panic on the same threads does run it: the counter works.
        assert!(rt.spawn(|| panic!("a real one")).join().is_err());
        assert_eq!(HOOK_RUNS.load(Ordering::SeqCst), 1);
    });
}

/// Cancel racing completion: exactly one outcome each time, and the closure dropped once.
#[test]
fn cancel_racing_completion_has_exactly_one_outcome() {
    watchdog(120, || {
        let n = scaled(100_000, 10_000);
        let rt = runtime(2, "cancel-race");
        let drops = DropCounter::new();
        let (ok, cancelled) = rt.block_on(|| {
            let (mut ok, mut cancelled) = (0usize, 0usize);
            for i in 0..n {
                let guard = drops.guard();
                let handle = fiber::spawn(move || {
                    let _guard = guard;
                    for _ in 0..i % 3 {
                        fiber::yield_now();
                    }
                    i
                });
                // Varied head starts: the other worker steals and runs the fiber meanwhile, or
                // not yet (a yield here would not let it run: unstarted fibers come last).
                for _ in 0..(i % 64) * 16 {
                    std::hint::spin_loop();
                }
                handle.cancel();
                match handle.join() {
                    Ok(v) => {
                        assert_eq!(v, i);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.is::<fiber::Cancelled>(), "{:?}", payload_text(&*e));
                        cancelled += 1;
                    }
                }
            }
            (ok, cancelled)
        });
        eprintln!("cancel race: {ok} finished, {cancelled} cancelled of {n}");
        assert_eq!(ok + cancelled, n);
        assert_eq!(drops.get(), n, "each closure dropped exactly once");
    });
}

/// From a fiber on another worker, and from a plain OS thread.
#[test]
fn cancel_from_another_worker_and_from_a_thread() {
    watchdog(60, || {
        let rt = runtime(2, "cancel-cross");
        let spawn_target = || {
            let home = Arc::new(std::sync::Mutex::new(None::<String>));
            let handle = rt.spawn({
                let home = home.clone();
                move || {
                    *home.lock().unwrap() = std::thread::current().name().map(str::to_owned);
                    loop {
                        fiber::park()
                    }
                }
            });
            assert!(eventually(10, || home.lock().unwrap().is_some()));
            let home = home.lock().unwrap().clone().unwrap();
            (handle, home)
        };
        // Two fibers that spin without a fiber operation until both have started must run on
        // different workers at once (a worker runs one at a time, and an unstarted one is
        // stolen by the idle worker): exactly one of them is on the other worker, and cancels.
        let (target, home) = spawn_target();
        let started = Arc::new(AtomicUsize::new(0));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let (started, victim, home) =
                    (started.clone(), target.fiber().clone(), home.clone());
                rt.spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    while started.load(Ordering::SeqCst) < 2 {
                        std::hint::spin_loop();
                    }
                    let here = std::thread::current().name().map(str::to_owned);
                    let other = here.as_deref() != Some(home.as_str());
                    if other {
                        victim.cancel();
                    }
                    other
                })
            })
            .collect();
        let from_other: usize = spinners
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(from_other, 1, "one spinner on each worker");
        assert_cancelled("from another worker", target.join());

        let (target, _) = spawn_target();
        let victim = target.fiber().clone();
        std::thread::spawn(move || victim.cancel()).join().unwrap();
        assert_cancelled("from a plain thread", target.join());
    });
}

/// A mutex hand-off to a waiter that is cancelled at that moment passes on: the waiter behind it
/// gets the lock. Repeated with the release and the cancel racing on two threads.
#[test]
fn a_lock_handed_over_at_cancel_time_is_not_lost() {
    watchdog(120, || {
        let rt = runtime(2, "cancel-lock");
        let rounds = scaled(3_000, 300);
        let (mut got, mut cancelled) = (0usize, 0usize);
        for _ in 0..rounds {
            let m = Arc::new(Mutex::new(0usize));
            let held = m.lock().unwrap();
            let queued = Arc::new(AtomicUsize::new(0));
            let spawn_waiter = |m: &Arc<Mutex<usize>>| {
                let (m, queued) = (m.clone(), queued.clone());
                rt.spawn(move || {
                    queued.fetch_add(1, Ordering::SeqCst);
                    *m.lock().unwrap() += 1;
                })
            };
            let first = spawn_waiter(&m);
            assert!(eventually(10, || queued.load(Ordering::SeqCst) == 1));
            let second = spawn_waiter(&m);
            assert!(eventually(10, || queued.load(Ordering::SeqCst) == 2));
            let victim = first.fiber().clone();
            let canceller = std::thread::spawn(move || victim.cancel());
            drop(held);
            canceller.join().unwrap();
            match first.join() {
                Ok(()) => got += 1,
                Err(e) => {
                    assert!(e.is::<fiber::Cancelled>());
                    cancelled += 1;
                }
            }
            second.join().expect("the second waiter got the lock");
            let g = match m.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(_)) => panic!("cancellation poisoned the mutex"),
                Err(TryLockError::WouldBlock) => panic!("the mutex was lost"),
            };
            assert!(*g == 1 || *g == 2);
        }
        eprintln!(
            "lock race: the cancelled waiter got the lock {got} times, was cancelled {cancelled}"
        );
        assert_eq!(got + cancelled, rounds);
    });
}

/// Ten thousand parked fibers cancelled at once all finish promptly.
#[test]
fn cancelling_a_hundred_thousand_parked_fibers() {
    // How fast: bench_report's "cancel" row (100,000 at once); this checks every one is unwound.
    watchdog(120, || {
        let n = 100_000;
        let rt = runtime(2, "cancel-many");
        let parked = Arc::new(AtomicUsize::new(0));
        let drops = DropCounter::new();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (parked, guard) = (parked.clone(), drops.guard());
                rt.spawn(move || {
                    let _guard = guard;
                    parked.fetch_add(1, Ordering::SeqCst);
                    match i % 3 {
                        0 => fiber::sleep(HOUR),
                        1 => fiber::park_timeout(HOUR),
                        _ => loop {
                            fiber::park()
                        },
                    }
                })
            })
            .collect();
        assert!(eventually(30, || parked.load(Ordering::SeqCst) == n));
        let start = Instant::now();
        for h in &handles {
            h.cancel();
        }
        let mut cancelled = 0;
        for h in handles {
            assert!(h.join().unwrap_err().is::<fiber::Cancelled>());
            cancelled += 1;
        }
        eprintln!(
            "cancelled and joined {n} parked fibers in {:?}",
            start.elapsed()
        );
        assert_eq!(cancelled, n);
        assert_eq!(drops.get(), n);
    });
}

/// `ScopedJoinHandle::cancel`: a cancelled scoped fiber does not make the scope panic.
#[test]
fn scoped_fibers_can_be_cancelled() {
    watchdog(30, || {
        let rt = runtime(2, "cancel-scope");
        let local = AtomicUsize::new(0);
        rt.block_on(|| {
            fiber::scope(|s| {
                let parked = s.spawn(|| {
                    local.fetch_add(1, Ordering::SeqCst);
                    loop {
                        fiber::park()
                    }
                });
                // Unjoined: its cancellation must not be reported as a panic by the scope.
                let unjoined = s.spawn(|| loop {
                    fiber::park()
                });
                while local.load(Ordering::SeqCst) == 0 {
                    fiber::yield_now();
                }
                parked.cancel();
                unjoined.cancel();
                assert_cancelled("scoped", parked.join());
            });
        });
        assert_eq!(local.load(Ordering::SeqCst), 1);
    });
}

/// A scope owner waiting for its fibers is not unwound by a cancel (they borrow its stack): the
/// scope completes, and the cancel lands at the owner's next park after it.
#[test]
fn a_scope_owner_is_not_unwound_while_it_waits() {
    watchdog(30, || {
        let rt = runtime(2, "cancel-owner");
        let finished_scope = Arc::new(AtomicBool::new(false));
        let owner_started = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let owner = rt.spawn({
            let (finished, started, release) = (
                finished_scope.clone(),
                owner_started.clone(),
                release.clone(),
            );
            move || {
                let borrowed = [1, 2, 3];
                fiber::scope(|s| {
                    s.spawn(|| {
                        started.store(true, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            let _ =
                                std::panic::catch_unwind(|| fiber::sleep(Duration::from_millis(1)));
                        }
                        assert_eq!(borrowed.len(), 3);
                    });
                });
                finished.store(true, Ordering::SeqCst);
                fiber::sleep(HOUR);
            }
        });
        assert!(eventually(10, || owner_started.load(Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(10));
        owner.cancel();
        std::thread::sleep(Duration::from_millis(10));
        assert!(!finished_scope.load(Ordering::SeqCst));
        release.store(true, Ordering::SeqCst);
        assert_cancelled("scope owner", owner.join());
        assert!(
            finished_scope.load(Ordering::SeqCst),
            "the owner was unwound out of its scope"
        );
    });
}

/// A message sent to a receiver that is cancelled at that moment is received by it or stays in
/// the channel, never lost; likewise a semaphore permit released to a cancelled waiter.
#[test]
fn a_message_or_permit_handed_over_at_cancel_time_is_not_lost() {
    watchdog(120, || {
        let rt = runtime(2, "cancel-handoff");
        let rounds = scaled(3_000, 300);
        let (mut received, mut left_in_channel) = (0usize, 0usize);
        for round in 0..rounds {
            let (tx, rx) = mpmc::unbounded::<usize>();
            let waiting = Arc::new(AtomicBool::new(false));
            let receiver = rt.spawn({
                let waiting = waiting.clone();
                let rx = rx.clone();
                move || {
                    waiting.store(true, Ordering::SeqCst);
                    rx.recv().unwrap()
                }
            });
            assert!(eventually(10, || waiting.load(Ordering::SeqCst)));
            let victim = receiver.fiber().clone();
            let canceller = std::thread::spawn(move || victim.cancel());
            tx.send(round).unwrap();
            canceller.join().unwrap();
            match receiver.join() {
                Ok(v) => {
                    assert_eq!(v, round);
                    assert!(rx.try_recv().is_err(), "the message was duplicated");
                    received += 1;
                }
                Err(e) => {
                    assert!(e.is::<fiber::Cancelled>());
                    assert_eq!(rx.try_recv(), Ok(round), "the message was lost");
                    left_in_channel += 1;
                }
            }
        }
        eprintln!("channel race: received {received}, left in the channel {left_in_channel}");
        assert_eq!(received + left_in_channel, rounds);

        let (mut acquired, mut kept) = (0usize, 0usize);
        for _ in 0..rounds {
            let s = Arc::new(Semaphore::new(0));
            let waiting = Arc::new(AtomicBool::new(false));
            let waiter = rt.spawn({
                let (s, waiting) = (s.clone(), waiting.clone());
                move || {
                    waiting.store(true, Ordering::SeqCst);
                    s.acquire().forget();
                }
            });
            assert!(eventually(10, || waiting.load(Ordering::SeqCst)));
            let victim = waiter.fiber().clone();
            let canceller = std::thread::spawn(move || victim.cancel());
            s.add_permits(1);
            canceller.join().unwrap();
            match waiter.join() {
                Ok(()) => {
                    assert_eq!(s.available_permits(), 0);
                    acquired += 1;
                }
                Err(e) => {
                    assert!(e.is::<fiber::Cancelled>());
                    assert_eq!(s.available_permits(), 1, "the permit was lost");
                    kept += 1;
                }
            }
        }
        eprintln!("semaphore race: acquired {acquired}, released back {kept}");
        assert_eq!(acquired + kept, rounds);
    });
}

/// Cancelled while running, then it waits: the wait unwinds; it never reports success (a lock
/// acquired, a permit, a message) that it did not get.
#[test]
fn a_wait_begun_after_the_cancel_unwinds_and_gets_nothing() {
    watchdog(30, || {
        fn cancelled_then(what: &str, wait: impl FnOnce() + Send + 'static) {
            let rt = runtime(1, "cancel-then-wait");
            let (running, go) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let handle = rt.spawn({
                let (running, go) = (running.clone(), go.clone());
                move || {
                    running.store(true, Ordering::SeqCst);
                    while !go.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                    wait();
                }
            });
            assert!(eventually(10, || running.load(Ordering::SeqCst)));
            handle.cancel();
            go.store(true, Ordering::SeqCst);
            assert_cancelled(what, handle.join());
        }
        let m = Arc::new(Mutex::new(0));
        let held = m.lock().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        cancelled_then("mutex", {
            let (m, got) = (m.clone(), got.clone());
            move || {
                let _g = m.lock();
                got.store(true, Ordering::SeqCst);
            }
        });
        assert!(
            !got.load(Ordering::SeqCst),
            "the cancelled fiber 'acquired' a held mutex"
        );
        drop(held);

        let l = Arc::new(RwLock::new(0));
        let read = l.read().unwrap();
        cancelled_then("rwlock", {
            let (l, got) = (l.clone(), got.clone());
            move || {
                let _g = l.write();
                got.store(true, Ordering::SeqCst);
            }
        });
        assert!(
            !got.load(Ordering::SeqCst),
            "the cancelled fiber 'acquired' a read-locked rwlock"
        );
        drop(read);

        let s = Arc::new(Semaphore::new(0));
        cancelled_then("semaphore", {
            let (s, got) = (s.clone(), got.clone());
            move || {
                s.acquire().forget();
                got.store(true, Ordering::SeqCst);
            }
        });
        assert!(
            !got.load(Ordering::SeqCst),
            "the cancelled fiber got a permit"
        );

        let (tx, rx) = mpmc::unbounded::<u32>();
        cancelled_then("recv", {
            let got = got.clone();
            move || {
                let r = rx.recv();
                got.store(true, Ordering::SeqCst);
                panic!("recv returned {r:?}");
            }
        });
        assert!(!got.load(Ordering::SeqCst));
        drop(tx);

        cancelled_then("sleep", || {
            fiber::sleep(HOUR);
        });
        cancelled_then("join", || {
            let _ = fiber::spawn(|| fiber::sleep(Duration::from_millis(200))).join();
            unreachable!("the join was cancelled");
        });
    });
}

/// A fiber that never parks nor yields itself but uses fiber operations (here an uncontended
/// mutex, which spends the cooperative budget): the cancel lands when its budget runs out, alone
/// on its worker or not.
#[test]
fn cancel_lands_at_the_cooperative_budget_check() {
    watchdog(30, || {
        for neighbours in [false, true] {
            let rt = runtime(1, "cancel-budget");
            let spins = Arc::new(AtomicUsize::new(0));
            let _neighbour = neighbours.then(|| {
                rt.spawn(|| loop {
                    fiber::sleep(Duration::from_millis(1))
                })
            });
            let handle = rt.spawn({
                let spins = spins.clone();
                move || {
                    let m = Mutex::new(0u64);
                    loop {
                        *m.lock().unwrap() += 1;
                        spins.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            assert!(eventually(10, || spins.load(Ordering::Relaxed) > 1000));
            handle.cancel();
            assert_cancelled("budget", handle.join());
        }
    });
}

/// `Condvar::notify_one` reaching a waiter that is cancelled at that moment is passed on: the
/// other waiter wakes and takes the one item, or the cancelled one took it.
#[test]
fn a_condvar_notification_at_cancel_time_is_passed_on() {
    watchdog(120, || {
        let rt = runtime(2, "cancel-condvar");
        let rounds = scaled(2_000, 200);
        let (mut first_took, mut passed_on) = (0usize, 0usize);
        for _ in 0..rounds {
            let pair = Arc::new((Mutex::new(0usize), Condvar::new()));
            let waiting = Arc::new(AtomicUsize::new(0));
            let spawn_waiter = || {
                let (pair, waiting) = (pair.clone(), waiting.clone());
                rt.spawn(move || {
                    let mut items = pair.0.lock().unwrap();
                    waiting.fetch_add(1, Ordering::SeqCst);
                    while *items == 0 {
                        items = pair.1.wait(items).unwrap();
                    }
                    *items -= 1;
                })
            };
            let first = spawn_waiter();
            assert!(eventually(10, || waiting.load(Ordering::SeqCst) == 1));
            let second = spawn_waiter();
            assert!(eventually(10, || waiting.load(Ordering::SeqCst) == 2));
            // Both are in `wait` once the mutex is free again (they released it there).
            drop(pair.0.lock().unwrap());
            let victim = first.fiber().clone();
            let canceller = std::thread::spawn(move || victim.cancel());
            *pair.0.lock().unwrap() += 1;
            pair.1.notify_one();
            canceller.join().unwrap();
            match first.join() {
                Ok(()) => {
                    first_took += 1;
                    second.cancel();
                    assert_cancelled("the second waiter", second.join());
                }
                Err(e) => {
                    assert!(e.is::<fiber::Cancelled>());
                    second.join().expect("the notification was passed on");
                    passed_on += 1;
                }
            }
            assert_eq!(
                *pair.0.lock().unwrap(),
                0,
                "the item was taken exactly once"
            );
        }
        eprintln!(
            "condvar race: the first waiter took it {first_took} times, passed on {passed_on}"
        );
        assert_eq!(first_took + passed_on, rounds);
    });
}
