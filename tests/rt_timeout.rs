//! Deadlines and shields (issue 15, docs/cancellation.md): `fiber::timeout` cancels its closure
//! back up to the call and returns `Err(Elapsed)`, scoped (code after it runs normally, nothing is
//! left behind), nested, never swallowing a real `cancel()`; `fiber::uncancellable` defers every
//! kind of cancellation; `Scope::cancel` cancels a scope's fibers.
mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{mpmc, Mutex};
use fiber::Elapsed;
use support::{payload_text, runtime, watchdog, DropCounter};

const HOUR: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_millis(20);
/// Generous: "promptly" means nowhere near the hour the waits ask for.
const PROMPT: Duration = Duration::from_secs(5);

/// Runs `body` in a fiber of a fresh two-worker runtime.
fn in_runtime<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    let rt = runtime(2, "timeout");
    rt.block_on(body)
}

/// Asserts that `wait` (holding a drop guard) under a short timeout gives `Err(Elapsed)`
/// promptly, that its destructors ran, and that the fiber's next waits work as usual.
fn times_out(what: &str, wait: impl FnOnce()) {
    let drops = DropCounter::new();
    let guard = drops.guard();
    let start = Instant::now();
    let result = fiber::timeout(SHORT, move || {
        let _guard = guard;
        wait();
    });
    assert_eq!(result, Err(Elapsed), "{what}: not timed out");
    assert!(
        start.elapsed() >= SHORT,
        "{what}: returned before the deadline"
    );
    assert!(
        start.elapsed() < PROMPT,
        "{what}: took {:?}",
        start.elapsed()
    );
    assert_eq!(drops.get(), 1, "{what}: destructors did not run");
    assert_clean(what);
}

/// The fiber has no cancellation left: a yield and sleeps return normally (a park could return
/// at once on a token an earlier unpark left, so it proves nothing here).
fn assert_clean(what: &str) {
    let start = Instant::now();
    fiber::yield_now();
    fiber::sleep(Duration::from_millis(2));
    fiber::sleep(Duration::from_millis(2));
    assert!(
        start.elapsed() >= Duration::from_millis(4),
        "{what}: a later wait was cut short"
    );
}

#[test]
fn timeout_unwinds_sleep_recv_lock_and_read() {
    watchdog(60, || {
        in_runtime(|| {
            times_out("sleep", || fiber::sleep(HOUR));
            times_out("sleep_until", || fiber::sleep_until(Instant::now() + HOUR));
            times_out("park", || loop {
                fiber::park()
            });

            let (tx, rx) = mpmc::unbounded::<u32>();
            times_out("recv", || {
                rx.recv().unwrap();
            });
            tx.send(7).unwrap();
            assert_eq!(rx.recv().unwrap(), 7, "the channel works after the timeout");

            let mutex = Arc::new(Mutex::new(0u32));
            let held = Arc::new(AtomicBool::new(false));
            let release = Arc::new(AtomicBool::new(false));
            let holder = fiber::spawn({
                let (mutex, held, release) = (mutex.clone(), held.clone(), release.clone());
                move || {
                    let mut guard = mutex.lock().unwrap();
                    held.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        fiber::sleep(Duration::from_millis(1));
                    }
                    *guard += 1;
                }
            });
            while !held.load(Ordering::SeqCst) {
                fiber::sleep(Duration::from_millis(1));
            }
            times_out("Mutex::lock", || {
                let _ = mutex.lock();
            });
            release.store(true, Ordering::SeqCst);
            holder.join().unwrap();
            assert_eq!(
                *mutex.lock().expect("a timed-out lock does not poison"),
                1,
                "the lock works after the timeout"
            );

            let listener = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client =
                fiber::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            times_out("TcpStream::read", || {
                let _ = server.read(&mut [0u8; 16]);
            });
            client.write_all(b"hi").unwrap();
            let mut buf = [0u8; 2];
            server.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi", "the stream works after the timeout");
        });
    });
}

/// A hooked `std::thread::sleep` fails with ECANCELED at the deadline; std asserts on that and
/// panics, and `timeout` still reports `Err(Elapsed)` (docs/cancellation.md, "Deadlines").
#[cfg(feature = "hook")]
#[test]
fn timeout_ends_a_hooked_std_sleep() {
    watchdog(60, || {
        in_runtime(|| {
            if !fiber::hook::is_active() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "the hook layer is not active (FIBER_HOOK?)"
                );
                return;
            }
            times_out("std::thread::sleep", || std::thread::sleep(HOUR));
        });
    });
}

#[test]
fn a_timeout_that_does_not_expire_leaves_nothing_behind() {
    watchdog(30, || {
        in_runtime(|| {
            let drops = DropCounter::new();
            let guard = drops.guard();
            let value = fiber::timeout(SHORT, move || {
                let _guard = guard;
                fiber::sleep(Duration::from_millis(1));
                42
            });
            assert_eq!(value, Ok(42));
            assert_eq!(drops.get(), 1);
            // Past the deadline: a timer left behind would cut this sleep short (and unwind).
            let start = Instant::now();
            fiber::sleep(SHORT * 3);
            assert!(start.elapsed() >= SHORT * 3);
            assert_clean("after Ok");
            // No closure waits at all.
            assert_eq!(fiber::timeout(Duration::ZERO, || 5), Ok(5));
            assert_clean("after a zero timeout");
        });
    });
}

#[test]
fn nested_deadlines_each_catch_their_own() {
    watchdog(60, || {
        in_runtime(|| {
            // Inner expires first: it catches; the outer body goes on.
            let outer = fiber::timeout(HOUR, || {
                let inner = fiber::timeout(SHORT, || fiber::sleep(HOUR));
                assert_eq!(inner, Err(Elapsed));
                assert_clean("between");
                7
            });
            assert_eq!(outer, Ok(7));

            // Outer expires first: it unwinds through the inner call, which does not catch.
            let after_inner = AtomicBool::new(false);
            let outer = fiber::timeout(SHORT, || {
                let inner = fiber::timeout(HOUR, || fiber::sleep(HOUR));
                after_inner.store(true, Ordering::SeqCst);
                inner
            });
            assert_eq!(outer, Err(Elapsed));
            assert!(
                !after_inner.load(Ordering::SeqCst),
                "the inner timeout caught the outer's unwind"
            );
            assert_clean("outer first");

            // Both expire (while the body is shielded): the inner catches its own, the outer's
            // lands at the next wait after it.
            let (inner_result, after_next_wait) =
                (std::sync::Mutex::new(None), AtomicBool::new(false));
            let outer = fiber::timeout(SHORT, || {
                let inner = fiber::timeout(SHORT / 2, || {
                    fiber::uncancellable(|| fiber::sleep(SHORT * 2));
                    fiber::sleep(HOUR);
                });
                *inner_result.lock().unwrap() = Some(inner);
                fiber::sleep(HOUR);
                after_next_wait.store(true, Ordering::SeqCst);
            });
            assert_eq!(outer, Err(Elapsed));
            assert_eq!(*inner_result.lock().unwrap(), Some(Err(Elapsed)));
            assert!(!after_next_wait.load(Ordering::SeqCst));
            assert_clean("both");

            // The inner one ends later than the outer; the outer catches.
            let outer = fiber::timeout(SHORT, || fiber::timeout(HOUR, || fiber::sleep(HOUR)));
            assert_eq!(outer, Err(Elapsed));
            assert_clean("later inner");
        });
    });
}

/// Three hundred nested deadlines that all expired: each frame returns `Elapsed`, the outer ones
/// too (a one-byte count of expired deadlines saturated at 255 and let the outer 45 sleep on).
#[test]
fn three_hundred_nested_expired_deadlines_each_return_elapsed() {
    const LEVELS: usize = 300;
    fn nest(level: usize, deadline: Instant, elapsed: &AtomicUsize) {
        if level == LEVELS {
            // Shielded past the deadline, so that every level has expired when it lands.
            fiber::uncancellable(|| fiber::sleep(SHORT * 2));
            fiber::sleep(HOUR);
            return;
        }
        let result = fiber::timeout_at(deadline, || {
            nest(level + 1, deadline, elapsed);
            // Reached once the inner level returned `Elapsed`: this level's deadline has
            // expired too, so this wait unwinds at once.
            fiber::sleep(HOUR);
        });
        assert_eq!(result, Err(Elapsed), "level {level}");
        elapsed.fetch_add(1, Ordering::SeqCst);
    }
    watchdog(60, || {
        let elapsed = AtomicUsize::new(0);
        fiber::Runtime::builder()
            .worker_threads(1)
            .stack_size(4 << 20)
            .build()
            .unwrap()
            .block_on(|| {
                nest(0, Instant::now() + SHORT, &elapsed);
                assert_clean("after all levels");
            });
        assert_eq!(elapsed.load(Ordering::SeqCst), LEVELS);
    });
}

/// A `cancel()` of the fiber during a `timeout` unwinds through it (not turned into `Elapsed`),
/// also when the deadline expired as well.
#[test]
fn a_real_cancel_is_not_swallowed_by_a_timeout() {
    watchdog(60, || {
        let rt = runtime(2, "timeout-cancel");
        for deadline_too in [false, true] {
            let after = Arc::new(AtomicBool::new(false));
            let inside = Arc::new(AtomicBool::new(false));
            let handle = rt.spawn({
                let (after, inside) = (after.clone(), inside.clone());
                move || {
                    let limit = if deadline_too { SHORT } else { HOUR };
                    let r = fiber::timeout(limit, || {
                        inside.store(true, Ordering::SeqCst);
                        // The cancel (and the deadline) arrive while shielded: both pending.
                        fiber::uncancellable(|| fiber::sleep(SHORT * 3));
                        fiber::sleep(HOUR);
                    });
                    after.store(true, Ordering::SeqCst);
                    let _ = r;
                    fiber::sleep(HOUR);
                }
            });
            while !inside.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            handle.cancel();
            let err = handle.join().unwrap_err();
            assert!(
                err.is::<fiber::Cancelled>(),
                "payload {:?}",
                payload_text(&*err)
            );
            assert!(
                !after.load(Ordering::SeqCst),
                "the timeout swallowed the cancel (deadline too: {deadline_too})"
            );
        }
    });
}

#[test]
fn a_timeout_cancels_the_fibers_of_a_scope_inside_it() {
    watchdog(60, || {
        in_runtime(|| {
            let drops = DropCounter::new();
            let borrowed = vec![1, 2, 3];
            let after_scope = AtomicBool::new(false);
            let result = fiber::timeout(SHORT, || {
                fiber::scope(|s| {
                    for _ in 0..8 {
                        let guard = drops.guard();
                        let borrowed = &borrowed;
                        s.spawn(move || {
                            let _guard = guard;
                            assert_eq!(borrowed.len(), 3);
                            fiber::sleep(HOUR);
                        });
                    }
                });
                after_scope.store(true, Ordering::SeqCst);
            });
            assert_eq!(result, Err(Elapsed));
            assert_eq!(drops.get(), 8, "the scoped fibers were not all unwound");
            assert!(
                !after_scope.load(Ordering::SeqCst),
                "the body went on after its scope"
            );
            assert_clean("after the scope");
        });
    });
}

#[test]
fn uncancellable_defers_a_cancel_until_it_returns() {
    watchdog(60, || {
        let rt = runtime(2, "shield");
        let shielded_done = Arc::new(AtomicBool::new(false));
        let inside = Arc::new(AtomicBool::new(false));
        let handle = rt.spawn({
            let (done, inside) = (shielded_done.clone(), inside.clone());
            move || {
                fiber::uncancellable(|| {
                    inside.store(true, Ordering::SeqCst);
                    let start = Instant::now();
                    fiber::sleep(SHORT * 2);
                    assert!(
                        start.elapsed() >= SHORT * 2,
                        "the shielded sleep was cut short"
                    );
                    let (tx, rx) = mpmc::unbounded::<u32>();
                    tx.send(1).unwrap();
                    assert_eq!(rx.recv().unwrap(), 1);
                    fiber::yield_now();
                    done.store(true, Ordering::SeqCst);
                });
                fiber::sleep(HOUR);
            }
        });
        while !inside.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        handle.cancel();
        let err = handle.join().unwrap_err();
        assert!(err.is::<fiber::Cancelled>());
        assert!(
            shielded_done.load(Ordering::SeqCst),
            "the shielded work did not finish"
        );

        // A deadline too: the shielded sleep completes, the timeout lands after it.
        rt.block_on(|| {
            let after_shield = AtomicBool::new(false);
            let r = fiber::timeout(SHORT / 2, || {
                let start = Instant::now();
                fiber::uncancellable(|| fiber::sleep(SHORT * 2));
                assert!(start.elapsed() >= SHORT * 2);
                after_shield.store(true, Ordering::SeqCst);
                fiber::sleep(HOUR);
            });
            assert_eq!(r, Err(Elapsed));
            assert!(after_shield.load(Ordering::SeqCst));
            assert_clean("after the shield");
        });
        // On a plain thread it just runs.
        assert_eq!(fiber::uncancellable(|| 3), 3);
    });
}

#[test]
fn scope_cancel_cancels_every_fiber_of_the_scope() {
    watchdog(60, || {
        in_runtime(|| {
            let drops = DropCounter::new();
            let (cancelled, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
            fiber::scope(|s| {
                let mut handles = Vec::new();
                for _ in 0..16 {
                    let guard = drops.guard();
                    handles.push(s.spawn(move || {
                        let _guard = guard;
                        fiber::sleep(HOUR);
                    }));
                }
                handles.push(s.spawn(|| ())); // finishes first, or is cancelled unrun
                fiber::sleep(Duration::from_millis(5));
                s.cancel();
                let late = s.spawn(|| fiber::sleep(HOUR));
                handles.push(late);
                for h in handles {
                    match h.join() {
                        Ok(()) => finished.fetch_add(1, Ordering::SeqCst),
                        Err(e) if e.is::<fiber::Cancelled>() => {
                            cancelled.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(e) => std::panic::resume_unwind(e),
                    };
                }
            });
            assert_eq!(drops.get(), 16);
            assert_eq!(finished.load(Ordering::SeqCst), 1);
            assert_eq!(cancelled.load(Ordering::SeqCst), 17);
            assert_clean("the owner is not cancelled");
        });
    });
}

#[test]
fn scope_cancel_from_another_worker_and_from_a_plain_thread() {
    watchdog(60, || {
        let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        for from_thread in [false, true] {
            let drops = DropCounter::new();
            let cancelled = AtomicUsize::new(0);
            rt.block_on(|| {
                fiber::scope(|s| {
                    let sleepers: Vec<_> = (0..100)
                        .map(|_| {
                            let guard = drops.guard();
                            s.spawn(move || {
                                let _guard = guard;
                                fiber::sleep(HOUR);
                            })
                        })
                        .collect();
                    // The canceller is a scoped fiber itself (it may run on the other worker),
                    // or a plain OS thread that it starts and waits for.
                    let canceller = s.spawn(|| {
                        fiber::sleep(Duration::from_millis(5));
                        if from_thread {
                            std::thread::scope(|t| {
                                t.spawn(|| s.cancel());
                            });
                        } else {
                            s.cancel();
                        }
                    });
                    for h in sleepers {
                        if h.join().unwrap_err().is::<fiber::Cancelled>() {
                            cancelled.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // The canceller was spawned before the cancel: it is cancelled too, at its
                    // next wait, or it finished first.
                    let _ = canceller.join();
                });
            });
            assert_eq!(
                cancelled.load(Ordering::SeqCst),
                100,
                "from a thread: {from_thread}"
            );
            assert_eq!(drops.get(), 100);
        }
    });
}

#[test]
fn timeout_on_a_plain_thread_panics_with_the_reason() {
    let err = std::panic::catch_unwind(|| fiber::timeout(SHORT, || ())).unwrap_err();
    assert!(
        payload_text(&*err).contains("plain OS thread"),
        "{:?}",
        payload_text(&*err)
    );
}

#[test]
fn ten_thousand_timeouts_expire_and_ten_thousand_do_not() {
    watchdog(120, || {
        let rt = runtime(2, "timeout-many");
        const N: usize = 10_000;
        let (elapsed, ok) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let handles: Vec<_> = (0..2 * N)
            .map(|i| {
                let (elapsed, ok) = (elapsed.clone(), ok.clone());
                rt.spawn(move || {
                    let limit = if i % 2 == 0 { SHORT } else { HOUR };
                    match fiber::timeout(limit, || {
                        if i % 2 == 0 {
                            fiber::sleep(HOUR)
                        } else {
                            fiber::sleep(Duration::from_millis(1))
                        }
                    }) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(Elapsed) => elapsed.fetch_add(1, Ordering::Relaxed),
                    };
                    fiber::yield_now(); // no cancellation left
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(elapsed.load(Ordering::Relaxed), N);
        assert_eq!(ok.load(Ordering::Relaxed), N);
    });
}

/// A deadline racing the completion of the work: exactly one outcome each time, `Ok` only if the
/// work completed, `Err` only if it did not, and nothing left behind either way.
#[test]
fn a_deadline_racing_completion_has_one_outcome() {
    watchdog(120, || {
        let rt = runtime(2, "timeout-race");
        const FIBERS: usize = 100;
        const ROUNDS: usize = 100;
        let (ok, elapsed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let handles: Vec<_> = (0..FIBERS)
            .map(|f| {
                let (ok, elapsed) = (ok.clone(), elapsed.clone());
                rt.spawn(move || {
                    for r in 0..ROUNDS {
                        let completed = AtomicBool::new(false);
                        let jitter = ((f * 7 + r * 13) % 50) as u64;
                        let result = fiber::timeout(Duration::from_micros(50 + jitter), || {
                            fiber::sleep(Duration::from_micros(50 + (r as u64 % 50)));
                            completed.store(true, Ordering::SeqCst);
                        });
                        match result {
                            Ok(()) => {
                                assert!(completed.load(Ordering::SeqCst));
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Elapsed) => {
                                assert!(
                                    !completed.load(Ordering::SeqCst),
                                    "Err but the work completed"
                                );
                                elapsed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        fiber::yield_now(); // unwinds if a cancellation were left behind
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (ok, elapsed) = (ok.load(Ordering::Relaxed), elapsed.load(Ordering::Relaxed));
        assert_eq!(ok + elapsed, FIBERS * ROUNDS);
        eprintln!("race: {ok} Ok, {elapsed} Elapsed");
    });
}

/// A deadline around a group reaches its members: they are cancelled (destructors run), the
/// group ends, and the `timeout` returns `Err(Elapsed)`, promptly.
#[test]
fn a_timeout_around_a_group_cancels_its_members() {
    watchdog(60, || {
        let rt = runtime(2, "timeout-group");
        let drops = DropCounter::new();
        let d = drops.clone();
        let (r, took) = rt.block_on(move || {
            let t0 = Instant::now();
            let r = fiber::timeout(Duration::from_millis(50), || {
                fiber::group::fail_fast(|g| {
                    for _ in 0..100 {
                        let guard = d.guard();
                        g.spawn(move || -> Result<(), ()> {
                            let _guard = guard;
                            fiber::sleep(Duration::from_secs(10));
                            Ok(())
                        });
                    }
                })
            });
            (r.map(|_| ()), t0.elapsed())
        });
        assert_eq!(r, Err(Elapsed));
        assert_eq!(drops.get(), 100, "every member was unwound");
        assert!(took < Duration::from_secs(5), "the group ended in {took:?}");
    });
}
