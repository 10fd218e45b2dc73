//! Groups (`fiber::group`, issue 15): a fail-fast group returns its first failure with every
//! member's outcome, a first-success group its first `Ok`; either way the members still running
//! are cancelled (destructors run), and nothing a group spawned outlives it.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fiber::group::{self, GroupError, Outcome};
use support::{payload_text, runtime, watchdog, DropCounter};

/// What a member waits for unless it is cancelled; every test ends in well under this.
const LONG: Duration = Duration::from_secs(10);

/// Ok, Err, panicked and cancelled members among `outcomes`.
fn tally<T, E>(outcomes: &[Outcome<T, E>]) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for outcome in outcomes {
        match outcome {
            Outcome::Ok(_) => counts.0 += 1,
            Outcome::Err(_) => counts.1 += 1,
            Outcome::Panicked(_) => counts.2 += 1,
            Outcome::Cancelled => counts.3 += 1,
        }
    }
    counts
}

/// 1,000 members: the first `early` return at once, member 500 fails after `fail_after`, the
/// rest sleep `LONG`. Returns the error, the time from the failure to the group's return, and the
/// guards dropped.
fn thousand_with_one_failure(
    early: usize,
    fail_after: Duration,
) -> (GroupError<usize, String>, Duration, usize) {
    let drops = DropCounter::new();
    let failed_at = Mutex::new(None);
    let result = group::fail_fast(|g| {
        for i in 0..1000 {
            let (guard, failed_at) = (drops.guard(), &failed_at);
            g.spawn(move || {
                let _guard = guard;
                if i < early {
                    return Ok(i);
                }
                if i == 500 {
                    fiber::sleep(fail_after);
                    *failed_at.lock().unwrap() = Some(Instant::now());
                    return Err(format!("member {i} failed"));
                }
                fiber::sleep(LONG);
                Ok(i)
            });
        }
    });
    let ended = Instant::now();
    let err = result.expect_err("member 500 failed");
    let failed_at = failed_at.into_inner().unwrap().expect("the failure ran");
    (err, ended - failed_at, drops.get())
}

fn check_thousand(early: usize) {
    let start = Instant::now();
    let (err, after_failure, drops) = thousand_with_one_failure(early, Duration::from_millis(200));
    let total = start.elapsed();
    assert_eq!(err.index(), 500);
    assert_eq!(err.error().map(String::as_str), Some("member 500 failed"));
    assert!(!err.is_panic());
    let (ok, errors, panics, cancelled) = tally(err.outcomes());
    assert_eq!((ok, errors, panics, cancelled), (early, 1, 0, 999 - early));
    for (i, outcome) in err.outcomes().iter().enumerate() {
        match outcome {
            Outcome::Ok(v) => assert!(*v == i && i < early, "member {i} returned {v}"),
            Outcome::Cancelled => assert!(i >= early && i != 500, "member {i} cancelled"),
            Outcome::Err(_) => assert_eq!(i, 500),
            Outcome::Panicked(_) => panic!("member {i} panicked"),
        }
    }
    assert_eq!(drops, 1000, "every member's destructors ran");
    assert!(total < Duration::from_secs(5), "the group took {total:?}");
    eprintln!("1,000-member fail-fast group: ended {after_failure:?} after the failure ({total:?} in all)");
}

#[test]
fn fail_fast_thousand_members_one_failure_on_a_plain_thread() {
    watchdog(60, || check_thousand(0));
}

#[test]
fn fail_fast_thousand_members_some_finished_before_the_failure_in_a_fiber() {
    watchdog(60, || {
        let rt = runtime(2, "group");
        rt.block_on(|| check_thousand(100));
    });
}

#[test]
fn fail_fast_all_ok_returns_every_value_in_order_of_spawn() {
    watchdog(30, || {
        let values = group::fail_fast(|g| {
            for i in 0..100u64 {
                // Later members finish first: the order is the spawn order, not the end order.
                g.spawn(move || {
                    fiber::sleep(Duration::from_millis(100 - i));
                    Ok::<_, String>(i * i)
                });
            }
        });
        assert_eq!(
            values.unwrap(),
            (0..100u64).map(|i| i * i).collect::<Vec<_>>()
        );
        let empty = group::fail_fast::<u8, String, _>(|_| {});
        assert_eq!(empty.unwrap(), Vec::<u8>::new());
    });
}

#[test]
fn fail_fast_a_panicking_member_is_reported_and_into_error_resumes_it() {
    watchdog(30, || {
        let drops = DropCounter::new();
        let result = group::fail_fast(|g| {
            for i in 0..10 {
                let guard = drops.guard();
                g.spawn(move || {
                    let _guard = guard;
                    if i == 3 {
                        fiber::sleep(Duration::from_millis(20));
                        panic!("member 3 broke");
                    }
                    fiber::sleep(LONG);
                    Ok::<u32, String>(i)
                });
            }
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 3);
        assert!(err.is_panic());
        assert_eq!(err.error(), None);
        assert_eq!(tally(err.outcomes()), (0, 0, 1, 9));
        assert_eq!(drops.get(), 10);
        let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| err.into_error()));
        assert_eq!(payload_text(&*resumed.unwrap_err()), "member 3 broke");
    });
}

#[test]
fn first_ok_returns_the_fast_success_and_cancels_the_slow() {
    watchdog(30, || {
        let drops = DropCounter::new();
        let finished_slow = AtomicUsize::new(0);
        let start = Instant::now();
        let winner = group::first_ok(|g| {
            for i in 0..50 {
                let (guard, finished_slow) = (drops.guard(), &finished_slow);
                g.spawn(move || {
                    let _guard = guard;
                    if i == 17 {
                        fiber::sleep(Duration::from_millis(20));
                        return Ok(i);
                    }
                    if i % 2 == 0 {
                        return Err(format!("member {i} failed"));
                    }
                    fiber::sleep(LONG);
                    finished_slow.fetch_add(1, Ordering::SeqCst);
                    Ok(i)
                });
            }
        });
        assert_eq!(winner, Ok(17));
        assert_eq!(
            finished_slow.load(Ordering::SeqCst),
            0,
            "no slow member finished"
        );
        assert_eq!(drops.get(), 50);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn first_ok_all_failing_returns_every_error_in_order_of_spawn() {
    watchdog(30, || {
        let result = group::first_ok(|g| {
            for i in 0..20u64 {
                g.spawn(move || {
                    fiber::sleep(Duration::from_millis(20 - i));
                    Err::<(), _>(i)
                });
            }
        });
        assert_eq!(result, Err((0..20).collect::<Vec<_>>()));
        assert_eq!(group::first_ok::<(), u8, _>(|_| {}), Err(vec![]));
    });
}

#[test]
fn first_ok_with_no_success_resumes_a_panic() {
    watchdog(30, || {
        let result = std::panic::catch_unwind(|| {
            group::first_ok(|g| {
                g.spawn(|| Err::<(), _>("refused"));
                g.spawn(|| panic!("member 1 broke"));
            })
        });
        assert_eq!(payload_text(&*result.unwrap_err()), "member 1 broke");
    });
}

#[test]
fn members_borrow_from_the_callers_stack() {
    watchdog(30, || {
        let numbers: Vec<u64> = (1..=100).collect();
        let mut sums = [0u64; 4];
        let result = group::fail_fast(|g| {
            for (i, slot) in sums.iter_mut().enumerate() {
                let numbers = &numbers;
                g.spawn(move || {
                    *slot = numbers[i * 25..(i + 1) * 25].iter().sum();
                    Ok::<_, ()>(i)
                });
            }
        });
        assert_eq!(result.unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(sums.iter().sum::<u64>(), 5050);
        let text = String::from("borrowed");
        let len = group::first_ok(|g| {
            g.spawn(|| Ok::<_, ()>(text.len()));
        });
        assert_eq!(len, Ok(8));
    });
}

#[test]
fn nested_groups_a_cancelled_member_passes_the_cancel_on_to_its_own_group() {
    watchdog(30, || {
        let drops = DropCounter::new();
        let start = Instant::now();
        let result = group::fail_fast(|outer| {
            for _ in 0..3 {
                let drops = &drops;
                // Each of these owns a group of slow members; the cancel from the outer group
                // must reach them, or this test waits 10 s.
                outer.spawn(move || {
                    let inner = group::fail_fast(|inner| {
                        for j in 0..10u32 {
                            let guard = drops.guard();
                            inner.spawn(move || {
                                let _guard = guard;
                                fiber::sleep(LONG);
                                Ok::<_, String>(j)
                            });
                        }
                    });
                    Ok(inner.map_err(|e| e.to_string())?.len())
                });
            }
            outer.spawn(|| {
                fiber::sleep(Duration::from_millis(50));
                Err("outer failure".to_string())
            });
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 3);
        assert_eq!(tally(err.outcomes()), (0, 1, 0, 3));
        assert_eq!(drops.get(), 30);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );

        // And nested groups that succeed: a group of groups.
        let sums = group::fail_fast(|outer| {
            for i in 0..5u64 {
                outer.spawn(move || {
                    let parts = group::fail_fast(|inner| {
                        for j in 0..4u64 {
                            inner.spawn(move || Ok::<_, String>(i * 10 + j));
                        }
                    });
                    Ok::<_, String>(parts.map_err(|e| e.to_string())?.iter().sum::<u64>())
                });
            }
        });
        let expected: Vec<u64> = (0..5).map(|i| (0..4).map(|j| i * 10 + j).sum()).collect();
        assert_eq!(sums.unwrap(), expected);
    });
}

#[test]
fn a_member_cancelled_through_its_handle_is_the_first_failure() {
    watchdog(30, || {
        let result = group::fail_fast(|g| {
            let slow = g.spawn(|| {
                fiber::sleep(LONG);
                Ok::<u8, String>(1)
            });
            g.spawn(|| {
                fiber::sleep(LONG);
                Ok(2)
            });
            assert_eq!(slow.index(), 0);
            slow.cancel();
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 0);
        assert!(err.first().is_cancelled());
        assert_eq!(tally(err.outcomes()), (0, 0, 0, 2));
    });
}

#[test]
fn a_member_spawned_after_the_decision_is_cancelled() {
    watchdog(30, || {
        let ran_past_sleep = AtomicUsize::new(0);
        let result = group::fail_fast(|g| {
            g.spawn(|| Err::<(), _>("first"));
            // Wait until the failure has decided the group.
            fiber::sleep(Duration::from_millis(50));
            let ran_past_sleep = &ran_past_sleep;
            g.spawn(move || {
                fiber::sleep(LONG);
                ran_past_sleep.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 0);
        assert!(err.outcomes()[1].is_cancelled());
        assert_eq!(ran_past_sleep.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_panic_in_the_body_cancels_the_members_and_is_resumed() {
    watchdog(30, || {
        let drops = DropCounter::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group::fail_fast(|g| {
                for _ in 0..10 {
                    let guard = drops.guard();
                    g.spawn(move || {
                        let _guard = guard;
                        fiber::sleep(LONG);
                        Ok::<(), ()>(())
                    });
                }
                panic!("the body broke");
            })
        }));
        assert_eq!(payload_text(&*result.unwrap_err()), "the body broke");
        assert_eq!(
            drops.get(),
            10,
            "the members ended before the panic was resumed"
        );
    });
}

#[test]
fn cancelling_the_fiber_that_owns_a_group_cancels_its_members() {
    watchdog(30, || {
        let rt = runtime(2, "group-owner");
        let drops = DropCounter::new();
        let counter = drops.clone();
        let owner = rt.spawn(move || {
            group::first_ok(|g| {
                for _ in 0..10 {
                    let guard = counter.guard();
                    g.spawn(move || {
                        let _guard = guard;
                        fiber::sleep(LONG);
                        Ok::<(), ()>(())
                    });
                }
            })
        });
        fiber::sleep(Duration::from_millis(50));
        let start = Instant::now();
        owner.cancel();
        let joined = owner.join();
        assert!(joined.unwrap_err().is::<fiber::Cancelled>());
        assert_eq!(drops.get(), 10);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn a_shielded_group_is_not_cancelled_by_a_cancel_of_its_owner() {
    watchdog(30, || {
        let rt = runtime(2, "group-shield");
        let (started_tx, started_rx) = fiber::sync::mpsc::channel();
        let owner = rt.spawn(move || {
            let values = fiber::uncancellable(|| {
                group::fail_fast(|g| {
                    for i in 0..10u32 {
                        let started = started_tx.clone();
                        g.spawn(move || {
                            started.send(()).unwrap();
                            fiber::sleep(Duration::from_millis(100));
                            Ok::<u32, ()>(i)
                        });
                    }
                })
            });
            // The shield has ended: the cancel lands at this wait.
            let after = std::panic::catch_unwind(|| fiber::sleep(LONG));
            (values, after.is_err())
        });
        for _ in 0..10 {
            started_rx.recv().unwrap();
        }
        owner.cancel();
        let (values, landed_after) = owner.join().unwrap();
        let values = values
            .unwrap_or_else(|e| panic!("member {} failed: {:?}", e.index(), tally(e.outcomes())));
        assert_eq!(values, (0..10).collect::<Vec<_>>());
        assert!(landed_after, "the deferred cancel landed after the shield");
    });
}

#[test]
fn a_member_cancelled_past_the_group_before_it_ran_is_still_the_failure() {
    watchdog(30, || {
        // One worker: the members cannot start before this fiber parks.
        let rt = runtime(1, "group-bypass");
        let result = rt.block_on(|| {
            group::fail_fast(|g| {
                let first = g.spawn(|| Ok::<_, String>(1));
                g.spawn(|| Ok(2));
                first.fiber().cancel();
            })
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 0);
        assert!(err.first().is_cancelled());
        assert_eq!(tally(err.outcomes()), (1, 0, 0, 1));
    });
}

#[test]
fn a_group_run_by_a_destructor_of_a_cancelled_fiber_works_as_usual() {
    watchdog(30, || {
        struct RunsAGroup(std::sync::Arc<Mutex<Option<Vec<u32>>>>);
        impl Drop for RunsAGroup {
            fn drop(&mut self) {
                let values = group::fail_fast(|g| {
                    for i in 0..3 {
                        g.spawn(move || {
                            fiber::sleep(Duration::from_millis(5));
                            Ok::<_, String>(i)
                        });
                    }
                });
                *self.0.lock().unwrap() = values.ok();
            }
        }
        let rt = runtime(2, "group-drop");
        let seen = std::sync::Arc::new(Mutex::new(None));
        let guard = RunsAGroup(seen.clone());
        let handle = rt.spawn(move || {
            let _guard = guard;
            fiber::sleep(LONG);
        });
        std::thread::sleep(Duration::from_millis(50));
        handle.cancel();
        assert!(handle.join().unwrap_err().is::<fiber::Cancelled>());
        assert_eq!(*seen.lock().unwrap(), Some(vec![0, 1, 2]));
    });
}

#[test]
fn racing_decisions_have_exactly_one_winner() {
    watchdog(60, || {
        for round in 0..support::scaled(200, 50) {
            // Every member fails at once: one of them is the failure, the rest failed or were
            // cancelled, and nothing is lost.
            let err = group::fail_fast(|g| {
                for i in 0..100u32 {
                    g.spawn(move || Err::<(), _>(i));
                }
            })
            .unwrap_err();
            assert_eq!(err.error(), Some(&(err.index() as u32)), "round {round}");
            let (ok, errors, panics, cancelled) = tally(err.outcomes());
            assert_eq!(
                (ok, panics, errors + cancelled),
                (0, 0, 100),
                "round {round}"
            );
            // Every member succeeds at once: one value wins.
            let winner = group::first_ok(|g| {
                for i in 0..100u32 {
                    g.spawn(move || Ok::<_, ()>(i));
                }
            });
            assert!(winner.unwrap() < 100);
        }
    });
}
