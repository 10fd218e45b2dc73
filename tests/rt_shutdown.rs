//! Dropping a `Runtime`: fibers parked forever, sleeping, or never started are unwound or
//! dropped so that their destructors run (counted exactly), their join handles return `Err`,
//! and the drop itself returns.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::{payload_text, runtime, watchdog, DropCounter};

const NEVER_RAN: &str = "the fiber never ran";

/// Spawns `n` fibers that each hold a guard, count themselves as started, then run `wait`.
fn spawn_waiting(
    rt: &fiber::Runtime,
    n: usize,
    drops: &DropCounter,
    started: &Arc<AtomicUsize>,
    wait: fn(),
) -> Vec<fiber::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let guard = drops.guard();
            let started = started.clone();
            rt.spawn(move || {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                wait();
            })
        })
        .collect()
}

fn wait_started(started: &AtomicUsize, n: usize) {
    assert!(
        support::eventually(30, || started.load(Ordering::SeqCst) == n),
        "only {} of {n} fibers started",
        started.load(Ordering::SeqCst)
    );
}

#[test]
fn parked_fibers_are_unwound_on_drop() {
    watchdog(60, || {
        let rt = runtime(2, "drop-parked");
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let n = 200;
        let handles = spawn_waiting(&rt, n, &drops, &started, || loop {
            fiber::park();
        });
        wait_started(&started, n);
        assert_eq!(drops.get(), 0);
        drop(rt);
        assert_eq!(drops.get(), n);
        for h in handles {
            assert!(h.join().is_err(), "a cancelled fiber's join must be Err");
        }
    });
}

#[test]
fn sleeping_fibers_are_unwound_on_drop() {
    watchdog(60, || {
        let rt = runtime(2, "drop-sleeping");
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = spawn_waiting(&rt, 50, &drops, &started, || {
            fiber::sleep(Duration::from_secs(3600))
        });
        handles.extend(spawn_waiting(&rt, 50, &drops, &started, || {
            fiber::sleep(Duration::MAX)
        }));
        handles.extend(spawn_waiting(&rt, 50, &drops, &started, || loop {
            fiber::park_timeout(Duration::from_secs(3600));
        }));
        wait_started(&started, 150);
        drop(rt);
        assert_eq!(drops.get(), 150);
        for h in handles {
            assert!(h.join().is_err());
        }
    });
}

#[test]
fn twenty_thousand_parked_fibers_are_unwound_on_drop() {
    // More live fibers than guarded stacks are made for (the rest are slab stacks).
    watchdog(120, || {
        let rt = runtime(2, "drop-many");
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let n = 20_000;
        let handles = spawn_waiting(&rt, n, &drops, &started, || loop {
            fiber::park();
        });
        wait_started(&started, n);
        drop(rt);
        assert_eq!(drops.get(), n);
        assert_eq!(handles.into_iter().filter(|h| !h.is_finished()).count(), 0);
    });
}

#[test]
fn fibers_waiting_on_each_other_are_unwound_on_drop() {
    watchdog(60, || {
        let rt = runtime(2, "drop-joiners");
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        // A chain: each fiber joins the one before it; the first parks forever.
        let mut prev: Option<fiber::JoinHandle<()>> = None;
        let n = 100;
        for _ in 0..n {
            let guard = drops.guard();
            let started = started.clone();
            let before = prev.take();
            prev = Some(rt.spawn(move || {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                match before {
                    Some(h) => {
                        let _ = h.join();
                    }
                    None => loop {
                        fiber::park();
                    },
                }
            }));
        }
        wait_started(&started, n);
        drop(rt);
        assert_eq!(drops.get(), n);
        // Err if it was cancelled; but a worker runs a few more fibers before it notices the
        // shutdown, so a joiner woken by its predecessor's cancellation may also return Ok. Either
        // way the join must return.
        let _ = prev.unwrap().join();
    });
}

/// Runs on the only worker of a runtime and blocks that OS thread (not just the fiber) until the
/// runtime is shutting down, which it detects because spawning starts to fail.
fn block_worker_until_shutdown(ready: mpsc::Sender<()>) {
    ready.send(()).unwrap();
    loop {
        std::thread::park_timeout(Duration::from_millis(5));
        // Probes land on this worker's queue if the runtime still takes fibers.
        if fiber::Builder::new().spawn(|| ()).is_err() {
            return;
        }
    }
}

#[test]
fn never_started_detached_fibers_are_dropped() {
    watchdog(60, || {
        let rt = runtime(1, "drop-detached");
        let (ready_tx, ready_rx) = mpsc::channel();
        let blocker = rt.spawn(move || block_worker_until_shutdown(ready_tx));
        ready_rx.recv().unwrap();
        // The only worker is blocked: these are queued and can never start. Their handles are
        // dropped (detached).
        let drops = DropCounter::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let n = 500;
        for _ in 0..n {
            let guard = drops.guard();
            let ran = ran.clone();
            drop(rt.spawn(move || {
                let _guard = guard;
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(rt);
        blocker.join().unwrap();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "a fiber started after shutdown began"
        );
        assert_eq!(drops.get(), n, "every unstarted closure must be dropped");
    });
}

#[test]
fn never_started_fibers_from_outside_are_dropped_and_join_err() {
    watchdog(60, || {
        let rt = runtime(1, "drop-unstarted");
        let (ready_tx, ready_rx) = mpsc::channel();
        let blocker = rt.spawn(move || block_worker_until_shutdown(ready_tx));
        ready_rx.recv().unwrap();
        // The only worker is blocked: these are queued and can never start.
        let drops = DropCounter::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let n = 500;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let guard = drops.guard();
                let ran = ran.clone();
                rt.spawn(move || {
                    let _guard = guard;
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        drop(rt);
        blocker.join().unwrap();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "a fiber started after shutdown began"
        );
        assert_eq!(drops.get(), n, "every unstarted closure must be dropped");
        for h in handles {
            let err = h
                .join()
                .expect_err("a never-started fiber's join must be Err");
            assert!(
                payload_text(&*err).contains(NEVER_RAN),
                "{}",
                payload_text(&*err)
            );
        }
    });
}

#[test]
fn never_started_fibers_spawned_by_a_fiber_are_dropped_and_join_err() {
    watchdog(60, || {
        let rt = runtime(1, "drop-unstarted-local");
        let drops = DropCounter::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let n = 500;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (handles_tx, handles_rx) = mpsc::channel();
        let (drops2, ran2) = (drops.clone(), ran.clone());
        let blocker = rt.spawn(move || {
            // Children go to this worker's own queue; none can start while we block the worker.
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let guard = drops2.guard();
                    let ran = ran2.clone();
                    fiber::spawn(move || {
                        let _guard = guard;
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            handles_tx.send(handles).unwrap();
            block_worker_until_shutdown(ready_tx);
        });
        ready_rx.recv().unwrap();
        let handles = handles_rx.recv().unwrap();
        drop(rt);
        blocker.join().unwrap();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "fibers started after shutdown began"
        );
        assert_eq!(drops.get(), n);
        for h in handles {
            assert!(h.join().is_err());
        }
    });
}

#[test]
fn a_yield_looping_fiber_is_unwound_on_drop() {
    watchdog(20, || {
        let rt = runtime(1, "drop-yielder");
        let drops = DropCounter::new();
        let guard = drops.guard();
        let started = Arc::new(AtomicBool::new(false));
        let s2 = started.clone();
        let h = rt.spawn(move || {
            let _guard = guard;
            s2.store(true, Ordering::SeqCst);
            loop {
                fiber::yield_now();
            }
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst)));
        drop(rt);
        assert_eq!(drops.get(), 1);
        assert!(h.join().is_err());
    });
}

#[test]
fn a_ping_pong_pair_is_unwound_on_drop() {
    watchdog(20, || {
        let rt = runtime(1, "drop-pair");
        let drops = DropCounter::new();
        let moves = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<fiber::Fiber>();
        let (g1, g2) = (drops.guard(), drops.guard());
        let m1 = moves.clone();
        let a = rt.spawn(move || {
            let _guard = g1;
            let b: fiber::Fiber = rx.recv().unwrap(); // B is spawned before A runs
            loop {
                m1.fetch_add(1, Ordering::Relaxed);
                b.unpark();
                fiber::park();
            }
        });
        let a_fiber = a.fiber().clone();
        let m2 = moves.clone();
        let b = rt.spawn(move || {
            let _guard = g2;
            loop {
                m2.fetch_add(1, Ordering::Relaxed);
                a_fiber.unpark();
                fiber::park();
            }
        });
        tx.send(b.fiber().clone()).unwrap();
        assert!(support::eventually(20, || moves.load(Ordering::Relaxed) > 1000));
        drop(rt);
        assert_eq!(drops.get(), 2);
        assert!(a.join().is_err());
        assert!(b.join().is_err());
    });
}

#[test]
fn a_fiber_that_catches_the_cancellation_is_still_unwound_when_it_parks_again() {
    watchdog(60, || {
        let rt = runtime(1, "drop-catch-once");
        let drops = DropCounter::new();
        let caught = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicBool::new(false));
        let (guard, c2, s2) = (drops.guard(), caught.clone(), started.clone());
        let h = rt.spawn(move || {
            let _guard = guard;
            s2.store(true, Ordering::SeqCst);
            let r = std::panic::catch_unwind(|| loop {
                fiber::park();
            });
            assert!(r.is_err());
            c2.fetch_add(1, Ordering::SeqCst);
            // A second wait is cancelled too.
            loop {
                fiber::park();
            }
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst)));
        drop(rt);
        assert_eq!(caught.load(Ordering::SeqCst), 1);
        assert_eq!(drops.get(), 1);
        assert!(h.join().is_err());
    });
}

#[test]
fn drop_returns_even_if_a_fiber_swallows_every_cancellation() {
    watchdog(60, || {
        let rt = runtime(1, "drop-stubborn");
        let attempts = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicBool::new(false));
        let (a2, s2) = (attempts.clone(), started.clone());
        let _h = rt.spawn(move || {
            s2.store(true, Ordering::SeqCst);
            loop {
                let _ = std::panic::catch_unwind(fiber::park);
                a2.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst)));
        // The runtime gives up on it (leaking its stack) rather than hang.
        drop(rt);
        assert!(attempts.load(Ordering::SeqCst) >= 1);
    });
}

/// Runs fiber-API calls in its destructor, which runs while its fiber is being cancelled.
struct UsesFibersInDrop {
    spawn_error: mpsc::Sender<(std::io::ErrorKind, String)>,
}

impl Drop for UsesFibersInDrop {
    fn drop(&mut self) {
        // Sleeping during cancellation returns (it must not hang or abort).
        fiber::sleep(Duration::from_secs(3600));
        fiber::yield_now();
        fiber::park_timeout(Duration::from_secs(3600));
        // Spawning on a runtime that is shutting down fails with an error.
        let err = fiber::Builder::new()
            .spawn(|| ())
            .expect_err("spawn during shutdown must fail");
        let _ = self.spawn_error.send((err.kind(), err.to_string()));
    }
}

#[test]
fn destructors_may_use_the_fiber_api_while_cancelled() {
    watchdog(60, || {
        let rt = runtime(2, "drop-api");
        let (tx, rx) = mpsc::channel();
        let started = Arc::new(AtomicUsize::new(0));
        let n = 10;
        for _ in 0..n {
            let guard = UsesFibersInDrop {
                spawn_error: tx.clone(),
            };
            let started = started.clone();
            rt.spawn(move || {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    fiber::park();
                }
            });
        }
        drop(tx);
        wait_started(&started, n);
        drop(rt);
        let errors: Vec<_> = rx.iter().collect();
        assert_eq!(errors.len(), n);
        for (kind, msg) in errors {
            assert_eq!(kind, std::io::ErrorKind::Other);
            assert!(msg.contains("shutting down"), "{msg}");
        }
    });
}

#[test]
fn dropping_a_runtime_from_one_of_its_own_fibers() {
    watchdog(60, || {
        let rt = Arc::new(runtime(2, "drop-self"));
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let n = 20;
        let _handles = spawn_waiting(&rt, n, &drops, &started, || loop {
            fiber::park();
        });
        wait_started(&started, n);
        let (tx, rx) = mpsc::channel();
        let rt2 = rt.clone();
        rt.spawn(move || {
            // Wait until the test has let go of its reference: ours is the last.
            while Arc::strong_count(&rt2) > 1 {
                fiber::sleep(Duration::from_millis(1));
            }
            drop(rt2);
            tx.send(()).unwrap();
        });
        drop(rt);
        rx.recv_timeout(Duration::from_secs(30))
            .expect("dropping the runtime inside its own fiber did not return");
        // The workers finish the shutdown on their own.
        assert!(
            support::eventually(30, || drops.get() == n),
            "{} of {n} fibers unwound",
            drops.get()
        );
    });
}

#[test]
fn finished_results_survive_the_runtime() {
    watchdog(60, || {
        let rt = runtime(2, "drop-results");
        let handles: Vec<_> = (0..100u32).map(|i| rt.spawn(move || i * 3)).collect();
        assert!(support::eventually(30, || handles
            .iter()
            .all(|h| h.is_finished())));
        drop(rt);
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u32 * 3);
        }
    });
}

#[test]
fn dropping_an_idle_runtime_and_building_many() {
    watchdog(60, || {
        for i in 0..50 {
            let rt = runtime(1 + i % 3, "churn");
            if i % 2 == 0 {
                assert_eq!(rt.block_on(|| i), i);
            }
            drop(rt);
        }
    });
}

#[test]
fn a_runtime_built_used_and_dropped_inside_a_fiber() {
    watchdog(60, || {
        let outer = runtime(1, "drop-outer");
        let drops = DropCounter::new();
        let d2 = drops.clone();
        let v = outer.block_on(move || {
            let inner = runtime(2, "drop-inner");
            // block_on of the inner runtime parks this (outer) fiber.
            let v = inner.block_on(|| fiber::spawn(|| 21).join().unwrap() * 2);
            let started = Arc::new(AtomicUsize::new(0));
            let _parked = spawn_waiting(&inner, 10, &d2, &started, || loop {
                fiber::park();
            });
            wait_started(&started, 10);
            // Dropping it from a fiber of another runtime joins its workers.
            drop(inner);
            assert_eq!(d2.get(), 10);
            v
        });
        assert_eq!(v, 42);
        assert_eq!(drops.get(), 10);
    });
}
