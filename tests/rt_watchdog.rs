//! The watchdog (docs/observability.md, "Watchdog"): a fiber that holds its worker past the
//! threshold is reported once per episode, by name; unstarted work still runs on the other
//! workers while one is stuck. Reports are captured with `on_watchdog_report`.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fiber::{CarrierState, WatchdogReport};
use support::watchdog;

const THRESHOLD: Duration = Duration::from_millis(40);

type Reports = Arc<Mutex<Vec<WatchdogReport>>>;

fn runtime_with_reports(workers: usize, name: &str) -> (fiber::Runtime, Reports) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .thread_name(name)
        .watchdog(Some(THRESHOLD))
        .on_watchdog_report(move |r| sink.lock().unwrap().push(r.clone()))
        .build()
        .unwrap();
    (rt, reports)
}

fn count_named(reports: &Reports, name: &str) -> usize {
    reports
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.fiber_name.as_deref() == Some(name))
        .count()
}

/// Spins (no yield point) until `reports` holds `n` reports of `name`, then keeps spinning for
/// `extra` more: the episode goes on across many samples.
fn spin_until_reported(reports: &Reports, name: &str, n: usize, extra: Duration) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while count_named(reports, name) < n {
        assert!(Instant::now() < give_up, "no report of {name} after 30 s");
        std::hint::spin_loop();
    }
    let until = Instant::now() + extra;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[test]
fn a_stuck_fiber_is_reported_by_name_once_per_episode() {
    watchdog(60, || {
        let (rt, reports) = runtime_with_reports(2, "wd-name");
        let r = reports.clone();
        let spawned_on_line = line!() + 3;
        let id = fiber::Builder::new()
            .name("spinner".into())
            .spawn_on(&rt, move || {
                // Episode 1: held until reported, then for 10 more thresholds.
                spin_until_reported(&r, "spinner", 1, THRESHOLD * 10);
                assert_eq!(count_named(&r, "spinner"), 1, "one episode, one report");
                // A yield ends the episode; the next spin is a new one.
                fiber::yield_now();
                spin_until_reported(&r, "spinner", 2, THRESHOLD * 10);
                fiber::current().id().as_u64()
            })
            .unwrap()
            .join()
            .unwrap();
        let reports = reports.lock().unwrap().clone();
        let mine: Vec<_> = reports
            .iter()
            .filter(|r| r.fiber_name.as_deref() == Some("spinner"))
            .collect();
        assert_eq!(mine.len(), 2, "{reports:#?}");
        for report in mine {
            assert_eq!(report.fiber_id, id);
            assert!(report.held >= THRESHOLD, "{report:?}");
            assert!(report.worker < 2);
            // /proc may be unreadable in a sandbox.
            assert!(
                matches!(
                    report.carrier,
                    CarrierState::Running | CarrierState::Unknown
                ),
                "{report:?}"
            );
            let text = report.to_string();
            assert!(text.contains("\"spinner\" has held worker"), "{text}");
            // The spawn site is the `spawn_on` call above; it is read with the name, which was.
            let site = report.spawn_site.as_deref().expect("read with the name");
            let expected = format!("rt_watchdog.rs:{spawned_on_line}:");
            assert!(site.contains(&expected), "{site} is not {expected}");
            assert!(text.contains(&format!("spawned at {site}")), "{text}");
        }
        assert_eq!(rt.metrics().watchdog_reports, reports.len() as u64);
    });
}

#[test]
fn a_runtime_without_watchdog_reports_nothing() {
    watchdog(60, || {
        let reports: Reports = Arc::default();
        let sink = reports.clone();
        let rt = fiber::Runtime::builder()
            .worker_threads(1)
            .watchdog(None)
            .on_watchdog_report(move |r| sink.lock().unwrap().push(r.clone()))
            .build()
            .unwrap();
        rt.block_on(|| {
            let until = Instant::now() + THRESHOLD * 5;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        assert!(reports.lock().unwrap().is_empty());
        assert_eq!(rt.metrics().watchdog_reports, 0);
    });
}

/// Two workers, one held by a CPU loop: the 1,000 fibers spawned (onto its own deque) by the fiber
/// that then loops all run on the other worker before the loop ends. The loop ends when they are
/// done, or after 30 s (then the test fails).
#[test]
fn unstarted_work_runs_while_a_worker_is_stuck() {
    watchdog(90, || {
        const N: usize = 1_000;
        let (rt, _reports) = runtime_with_reports(2, "wd-move");
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let (all_done_in_loop, spinner_worker_ran) = rt
            .spawn(move || {
                let me = std::thread::current().id();
                let ran_here = Arc::new(AtomicBool::new(false));
                // Set once the loop holds the worker (a spawn may spend the coop budget and let
                // a new fiber run here before that).
                let holding = Arc::new(AtomicBool::new(false));
                for _ in 0..N {
                    let d = d.clone();
                    let ran_here = ran_here.clone();
                    let holding = holding.clone();
                    fiber::spawn(move || {
                        if holding.load(Ordering::SeqCst) && std::thread::current().id() == me {
                            ran_here.store(true, Ordering::SeqCst);
                        }
                        d.fetch_add(1, Ordering::SeqCst);
                    });
                }
                // Hold the worker: no yield point in this loop.
                holding.store(true, Ordering::SeqCst);
                let give_up = Instant::now() + Duration::from_secs(30);
                while d.load(Ordering::SeqCst) < N && Instant::now() < give_up {
                    std::hint::spin_loop();
                }
                (
                    d.load(Ordering::SeqCst) == N,
                    ran_here.load(Ordering::SeqCst),
                )
            })
            .join()
            .unwrap();
        assert!(
            all_done_in_loop,
            "only {} of {N} fibers ran while a worker was stuck",
            done.load(Ordering::SeqCst)
        );
        assert!(!spinner_worker_ran, "the stuck worker cannot have run any");
    });
}

/// A std lock held across a hooked sleep, asked for by a second fiber on the same (only) worker:
/// the carrier blocks in `futex` for good (tests/hook_locks.rs), and the report says so.
#[cfg(feature = "hook")]
#[test]
fn a_std_lock_held_across_a_hooked_wait_is_reported_as_futex() {
    let (rt, reports) = watchdog(60, || {
        let (rt, reports) = runtime_with_reports(1, "wd-futex");
        let m = Arc::new(std::sync::Mutex::new(()));
        let locked = Arc::new(AtomicBool::new(false));
        let (m1, l1) = (m.clone(), locked.clone());
        rt.spawn(move || {
            let _g = m1.lock().unwrap();
            l1.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100)); // hooked: parks the fiber
        });
        fiber::Builder::new()
            .name("asks-std-lock".into())
            .spawn_on(&rt, move || {
                while !locked.load(Ordering::SeqCst) {
                    fiber::yield_now();
                }
                drop(m.lock().unwrap()); // blocks the carrier
            })
            .unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        while count_named(&reports, "asks-std-lock") == 0 {
            assert!(Instant::now() < give_up, "no report after 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        (rt, reports)
    });
    let report = reports
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.fiber_name.as_deref() == Some("asks-std-lock"))
        .cloned()
        .unwrap();
    if cfg!(target_arch = "x86_64") && report.carrier != CarrierState::Unknown {
        assert_eq!(
            report.carrier,
            CarrierState::Syscall {
                number: 202,
                name: Some("futex")
            },
            "{report}"
        );
        assert!(report.to_string().contains("std::sync or parking_lot"));
    }
    // The carrier can never run again: dropping the runtime would wait for it forever.
    std::mem::forget(rt);
}

/// Every worker held by a CPU loop: the watchdog starts a spare worker, and 100 fibers spawned
/// from outside run on it while both loops still hold their workers. The loops end when the
/// fibers are done, or after 30 s (then the test fails).
#[test]
fn when_every_worker_is_held_a_spare_worker_runs_new_fibers() {
    watchdog(90, || {
        const N: usize = 100;
        let (rt, _reports) = runtime_with_reports(2, "wd-spare");
        let done = Arc::new(AtomicUsize::new(0));
        let spinning = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..2)
            .map(|_| {
                let (d, s) = (done.clone(), spinning.clone());
                rt.spawn(move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    let give_up = Instant::now() + Duration::from_secs(30);
                    while d.load(Ordering::SeqCst) < N && Instant::now() < give_up {
                        std::hint::spin_loop();
                    }
                    (d.load(Ordering::SeqCst), std::thread::current().id())
                })
            })
            .collect();
        let give_up = Instant::now() + Duration::from_secs(30);
        while spinning.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < give_up, "the loops never both started");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(rt.metrics().spare_workers, 0);
        let fibers: Vec<_> = (0..N)
            .map(|_| {
                let d = done.clone();
                rt.spawn(move || {
                    d.fetch_add(1, Ordering::SeqCst);
                    std::thread::current().id()
                })
            })
            .collect();
        let loops: Vec<_> = loops.into_iter().map(|h| h.join().unwrap()).collect();
        for (ran, _) in &loops {
            assert_eq!(*ran, N, "fibers that ran while every worker was held");
        }
        assert_ne!(loops[0].1, loops[1].1, "the loops held two workers");
        for f in fibers {
            let carrier = f.join().unwrap();
            assert!(carrier != loops[0].1 && carrier != loops[1].1);
        }
        let m = rt.metrics();
        assert!(m.spare_workers >= 1 && m.spare_workers <= 2, "{m:#?}");
        assert_eq!(m.workers, 2 + m.spare_workers);
    });
}

const ENV_CHILD: &str = "FIBER_WATCHDOG_TEST_CHILD";

/// Runs `name` of this binary in a child with `FIBER_WATCHDOG_MS=ms`; returns its stderr.
fn child_with_env(name: &str, ms: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let (name, ms) = (name.to_owned(), ms.to_owned());
    let out = watchdog(60, move || {
        std::process::Command::new(exe)
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV_CHILD, "1")
            .env("FIBER_WATCHDOG_MS", ms)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {stdout}\n{stderr}"
    );
    stderr
}

/// In the child: a runtime whose builder does not set the watchdog, a fiber that spins for 300
/// ms; prints how many reports the runtime made.
#[test]
fn env_child() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return; // only meaningful in the child
    }
    let rt = fiber::Runtime::builder()
        .worker_threads(1)
        .thread_name("wd-env")
        .build()
        .unwrap();
    fiber::Builder::new()
        .name("env-spinner".into())
        .spawn_on(&rt, || {
            let until = Instant::now() + Duration::from_millis(300);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    eprintln!("REPORTS={}", rt.metrics().watchdog_reports);
}

#[test]
fn fiber_watchdog_ms_sets_the_default_threshold_and_0_turns_it_off() {
    let off = child_with_env("env_child", "0");
    assert!(off.contains("REPORTS=0"), "{off}");
    assert!(!off.contains("env-spinner"), "{off}");
    // 30 ms: the 300 ms spin is reported, on stderr (no handler set).
    let on = child_with_env("env_child", "30");
    assert!(on.contains("REPORTS=1"), "{on}");
    assert!(on.contains("fiber: watchdog: fiber"), "{on}");
    assert!(on.contains("\"env-spinner\" has held worker 0"), "{on}");
}
