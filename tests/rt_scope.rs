//! Scoped fibers (`fiber::scope`): borrowing from the caller's stack, joining, panics, and
//! waiting for every fiber before the scope returns.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use support::{payload_text, runtime, watchdog};

#[test]
fn scoped_fibers_borrow_the_callers_data() {
    watchdog(30, || {
        let numbers: Vec<u64> = (1..=100).collect();
        let mut output = [0u64; 4];
        let counter = AtomicUsize::new(0);
        fiber::scope(|s| {
            for (i, slot) in output.iter_mut().enumerate() {
                let (numbers, counter) = (&numbers, &counter);
                s.spawn(move || {
                    // Shared borrow of `numbers`, exclusive borrow of one slot.
                    *slot = numbers.iter().skip(i * 25).take(25).sum();
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(counter.into_inner(), 4);
        assert_eq!(output.iter().sum::<u64>(), 5050);
        assert_eq!(output[0], (1..=25).sum::<u64>());
    });
}

#[test]
fn scope_returns_the_closures_value_and_handles_return_theirs() {
    watchdog(30, || {
        let text = String::from("scoped");
        let (a, b) = fiber::scope(|s| {
            let h1 = s.spawn(|| text.len());
            let h2 = s.spawn(|| text.to_uppercase());
            (h1.join().unwrap(), h2.join().unwrap())
        });
        assert_eq!(a, 6);
        assert_eq!(b, "SCOPED");
    });
}

#[test]
fn scope_waits_for_unjoined_fibers() {
    watchdog(30, || {
        let done = AtomicUsize::new(0);
        fiber::scope(|s| {
            for i in 0..20u64 {
                let done = &done;
                s.spawn(move || {
                    fiber::sleep(Duration::from_millis(5 + i));
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Not joined here: the scope joins them before it returns.
        });
        assert_eq!(done.load(Ordering::SeqCst), 20);
    });
}

#[test]
fn a_thousand_scoped_fibers_mutating_shared_state() {
    watchdog(60, || {
        let total = AtomicUsize::new(0);
        let log = Mutex::new(Vec::new());
        fiber::scope(|s| {
            for i in 0..1000usize {
                let (total, log) = (&total, &log);
                s.spawn(move || {
                    total.fetch_add(i, Ordering::Relaxed);
                    if i % 100 == 0 {
                        fiber::yield_now();
                        log.lock().unwrap().push(i);
                    }
                });
            }
        });
        assert_eq!(total.into_inner(), 999 * 1000 / 2);
        let mut log = log.into_inner().unwrap();
        log.sort();
        assert_eq!(log, (0..10).map(|k| k * 100).collect::<Vec<_>>());
    });
}

#[test]
fn a_joined_panic_is_an_err_and_the_scope_does_not_panic() {
    watchdog(30, || {
        let value = fiber::scope(|s| {
            let h = s.spawn(|| -> u32 { panic!("joined panic") });
            let err = h.join().unwrap_err();
            assert_eq!(payload_text(&*err), "joined panic");
            11
        });
        assert_eq!(value, 11);
    });
}

#[test]
fn an_unjoined_panic_makes_the_scope_panic_after_all_fibers_finish() {
    watchdog(30, || {
        let finished = AtomicBool::new(false);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fiber::scope(|s| {
                s.spawn(|| panic!("unjoined panic"));
                s.spawn(|| {
                    fiber::sleep(Duration::from_millis(50));
                    finished.store(true, Ordering::SeqCst);
                });
            })
        }));
        let err = result.expect_err("the scope must panic");
        assert!(
            payload_text(&*err).contains("scoped fiber panicked"),
            "{}",
            payload_text(&*err)
        );
        assert!(
            finished.load(Ordering::SeqCst),
            "the scope returned before its fibers finished"
        );
    });
}

#[test]
fn a_panic_in_the_scope_closure_propagates_after_the_fibers_finish() {
    watchdog(30, || {
        let finished = AtomicBool::new(false);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fiber::scope(|s| {
                s.spawn(|| {
                    fiber::sleep(Duration::from_millis(50));
                    finished.store(true, Ordering::SeqCst);
                });
                panic!("closure panic");
            })
        }));
        let err = result.expect_err("the scope must re-raise the closure's panic");
        assert_eq!(payload_text(&*err), "closure panic");
        assert!(
            finished.load(Ordering::SeqCst),
            "the scope returned before its fibers finished"
        );
    });
}

#[test]
fn scoped_fibers_spawn_more_scoped_fibers_and_nested_scopes() {
    watchdog(30, || {
        let count = AtomicUsize::new(0);
        fiber::scope(|s| {
            for _ in 0..4 {
                let count = &count;
                s.spawn(move || {
                    count.fetch_add(1, Ordering::SeqCst);
                    // A scoped fiber spawns into the same scope.
                    for _ in 0..4 {
                        s.spawn(move || {
                            count.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    // And opens a scope of its own.
                    let inner = AtomicUsize::new(0);
                    fiber::scope(|s2| {
                        for _ in 0..3 {
                            s2.spawn(|| inner.fetch_add(1, Ordering::SeqCst));
                        }
                    });
                    assert_eq!(inner.into_inner(), 3);
                });
            }
        });
        assert_eq!(count.into_inner(), 4 + 16);
    });
}

#[test]
fn scope_inside_a_fiber_runs_on_that_runtime() {
    watchdog(30, || {
        let rt = runtime(2, "scope-rt");
        let names = rt.block_on(|| {
            let names = Mutex::new(Vec::new());
            fiber::scope(|s| {
                for _ in 0..16 {
                    s.spawn(|| {
                        let name = std::thread::current().name().unwrap().to_owned();
                        names.lock().unwrap().push((fiber::is_fiber(), name));
                    });
                }
            });
            names.into_inner().unwrap()
        });
        assert_eq!(names.len(), 16);
        for (is_fiber, name) in names {
            assert!(is_fiber);
            assert!(name.starts_with("scope-rt-"), "scoped fiber ran on {name}");
        }
    });
}

#[test]
fn scope_on_one_worker_does_not_deadlock() {
    watchdog(30, || {
        // The scope owner is itself a fiber on the only worker: waiting must park, not block.
        let rt = runtime(1, "scope-one");
        let sum = rt.block_on(|| {
            let data: Vec<u32> = (0..100).collect();
            fiber::scope(|s| {
                let hs: Vec<_> = data
                    .chunks(10)
                    .map(|c| s.spawn(move || c.iter().sum::<u32>()))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
            })
        });
        assert_eq!(sum, 4950);
    });
}

#[test]
fn builder_spawn_scoped_and_scoped_handle_api() {
    watchdog(30, || {
        let value = 41;
        fiber::scope(|s| {
            let h = fiber::Builder::new()
                .name("scoped-named".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, || {
                    (fiber::current().name().map(str::to_owned), value + 1)
                })
                .unwrap();
            assert_eq!(h.fiber().name(), Some("scoped-named"));
            assert!(support::eventually(20, || h.is_finished()));
            let (name, v) = h.join().unwrap();
            assert_eq!(name.as_deref(), Some("scoped-named"));
            assert_eq!(v, 42);
            // A bad stack size is an error, and the scope still ends normally.
            // (ScopedJoinHandle is not Debug, so no unwrap_err.)
            let Err(err) = fiber::Builder::new().stack_size(1).spawn_scoped(s, || ()) else {
                panic!("a 1-byte stack was accepted");
            };
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        });
    });
}

#[test]
fn scoped_results_that_borrow_are_dropped_before_the_scope_ends() {
    watchdog(30, || {
        let drops = support::DropCounter::new();
        fiber::scope(|s| {
            for _ in 0..10 {
                let g = drops.guard();
                // The result (a guard) is never joined: it must be dropped inside the scope.
                s.spawn(move || g);
            }
        });
        assert_eq!(drops.get(), 10);
    });
}

#[test]
fn many_short_scopes_stress_the_owner_wake_up() {
    // The last scoped fiber to finish wakes the scope's owner; a lost wake-up hangs a scope.
    let rounds = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    watchdog(120, move || {
        let rt = runtime(2, "scope-stress");
        let total = AtomicUsize::new(0);
        // Owner on a plain thread (scoped fibers on the default runtime)...
        for _ in 0..rounds / 4 {
            fiber::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| total.fetch_add(1, Ordering::Relaxed));
                }
            });
        }
        // ...and owner in a fiber.
        let total_ref = &total;
        rt.block_on(|| {
            for _ in 0..rounds {
                fiber::scope(|s| {
                    for _ in 0..3 {
                        s.spawn(|| total_ref.fetch_add(1, Ordering::Relaxed));
                    }
                });
            }
        });
        assert_eq!(total.into_inner(), 3 * (rounds / 4 + rounds));
    });
}

/// Pushes its label to a shared log when dropped.
struct Logged {
    label: &'static str,
    log: std::sync::Arc<Mutex<Vec<&'static str>>>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.log.lock().unwrap().push(self.label);
    }
}

/// Holds a borrow of the scope owner's data; logs when dropped (it never reads the borrow).
struct Borrower<'a> {
    _data: &'a Logged,
    _log: Logged,
}

#[test]
fn a_scope_owner_cancelled_by_shutdown_outlives_its_borrowers() {
    watchdog(60, || {
        let rt = runtime(1, "scope-cancel");
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let started = std::sync::Arc::new(AtomicUsize::new(0));
        let (log2, started2) = (log.clone(), started.clone());
        let _owner = rt.spawn(move || {
            let data = Logged {
                label: "owner data dropped",
                log: log2.clone(),
            };
            fiber::scope(|s| {
                for _ in 0..3 {
                    let (data, log, started) = (&data, log2.clone(), started2.clone());
                    s.spawn(move || {
                        let _b = Borrower {
                            _data: data,
                            _log: Logged {
                                label: "borrower dropped",
                                log,
                            },
                        };
                        started.fetch_add(1, Ordering::SeqCst);
                        loop {
                            fiber::park();
                        }
                    });
                }
            });
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst) == 3));
        // Shutdown unwinds the owner (parked in the scope's wait) and the scoped fibers; the
        // scope must not end, and `data` must not be dropped, while they still hold `&data`.
        drop(rt);
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(
            log.last(),
            Some(&"owner data dropped"),
            "the scope's owner freed data that scoped fibers still borrowed: {log:?}"
        );
    });
}
