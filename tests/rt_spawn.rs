//! Spawning and joining fibers: results, panics, many fibers, nesting, and where spawns come
//! from (plain OS threads, fibers, the default runtime, an explicit runtime).
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use support::{payload_text, runtime, scaled, watchdog};

#[test]
fn join_returns_the_value() {
    watchdog(30, || {
        assert_eq!(fiber::spawn(|| 42).join().unwrap(), 42);
        let text = fiber::spawn(|| "hello".repeat(3)).join().unwrap();
        assert_eq!(text, "hellohellohello");
        let v: Vec<u64> = fiber::spawn(|| (0..1000).collect()).join().unwrap();
        assert_eq!(v.len(), 1000);
        assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
        // A unit-returning fiber, and a fiber whose result owns heap data moved in.
        fiber::spawn(|| {}).join().unwrap();
        let owned = vec![String::from("a"), String::from("b")];
        let back = fiber::spawn(move || owned).join().unwrap();
        assert_eq!(back, ["a", "b"]);
    });
}

#[test]
fn panic_comes_back_as_err_with_the_payload() {
    watchdog(30, || {
        let err = fiber::spawn(|| panic!("static message"))
            .join()
            .unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"static message"));

        let n = 7;
        let err = fiber::spawn(move || -> u32 { panic!("formatted {n}") })
            .join()
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<String>().map(String::as_str),
            Some("formatted 7")
        );

        #[derive(Debug, PartialEq)]
        struct Custom(u32);
        let err = fiber::spawn(|| std::panic::panic_any(Custom(99)))
            .join()
            .unwrap_err();
        assert_eq!(err.downcast_ref::<Custom>(), Some(&Custom(99)));
    });
}

#[test]
fn a_worker_survives_panicking_fibers() {
    watchdog(30, || {
        // One worker: if a panic killed it, nothing after the first panic would run.
        let rt = runtime(1, "survive");
        for round in 0..20u32 {
            let err = rt
                .spawn(move || -> u32 { panic!("round {round}") })
                .join()
                .unwrap_err();
            assert_eq!(payload_text(&*err), format!("round {round}"));
            assert_eq!(rt.spawn(move || round * 2).join().unwrap(), round * 2);
        }
        // Panics in fibers that others wait for, interleaved with healthy fibers.
        let handles: Vec<_> = (0..50u32)
            .map(|i| {
                rt.spawn(move || {
                    fiber::yield_now();
                    if i % 5 == 0 {
                        panic!("fiber {i}");
                    }
                    i
                })
            })
            .collect();
        let mut ok = 0;
        let mut failed = 0;
        for (i, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(v) => {
                    assert_eq!(v as usize, i);
                    ok += 1;
                }
                Err(p) => {
                    assert_eq!(payload_text(&*p), format!("fiber {i}"));
                    failed += 1;
                }
            }
        }
        assert_eq!((ok, failed), (40, 10));
    });
}

#[test]
fn is_finished_and_fiber_handle() {
    watchdog(30, || {
        let rt = runtime(2, "finished");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (id_tx, id_rx) = mpsc::channel();
        let h = fiber::Builder::new()
            .name("worker-a".into())
            .spawn_on(&rt, move || {
                let me = fiber::current();
                id_tx.send((me.id(), me.name().map(str::to_owned))).unwrap();
                // Wait (parking only this fiber) until the test lets us finish.
                while go_rx.try_recv().is_err() {
                    fiber::sleep(Duration::from_millis(1));
                }
                5
            })
            .unwrap();
        let (id, name) = id_rx.recv().unwrap();
        assert_eq!(h.fiber().id(), id);
        assert_eq!(name.as_deref(), Some("worker-a"));
        assert_eq!(h.fiber().name(), Some("worker-a"));
        assert!(!h.is_finished());
        go_tx.send(()).unwrap();
        assert!(support::eventually(20, || h.is_finished()));
        assert_eq!(h.join().unwrap(), 5);

        // An unnamed fiber has no name; its handle is Debug-printable.
        let h = rt.spawn(|| fiber::current().name().map(str::to_owned));
        assert!(format!("{h:?}").contains("JoinHandle"));
        assert_eq!(h.join().unwrap(), None);
    });
}

#[test]
fn fiber_ids_are_unique() {
    watchdog(30, || {
        let rt = runtime(2, "ids");
        let handles: Vec<_> = (0..2000)
            .map(|_| rt.spawn(|| fiber::current().id()))
            .collect();
        let mut ids = HashSet::new();
        for h in handles {
            let from_handle = h.fiber().id();
            let from_inside = h.join().unwrap();
            assert_eq!(from_handle, from_inside);
            assert!(
                ids.insert(from_inside.as_u64()),
                "duplicate id {from_inside:?}"
            );
        }
        // OS threads get ids from the same space, distinct from every fiber's.
        let main_id = fiber::current().id();
        assert_eq!(main_id, fiber::current().id(), "a thread's id is stable");
        assert!(!ids.contains(&main_id.as_u64()));
    });
}

#[test]
fn hundred_thousand_spawns_from_a_plain_thread() {
    watchdog(120, || {
        let rt = runtime(2, "spawn100k");
        let n: u64 = 100_000;
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let ran = ran.clone();
                rt.spawn(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                    i
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        assert_eq!(ran.load(Ordering::Relaxed), n as usize);
    });
}

#[test]
fn hundred_thousand_spawns_from_a_fiber_all_alive_at_once() {
    watchdog(120, || {
        let rt = runtime(2, "alive100k");
        let n = 100_000;
        let total = rt.block_on(|| {
            // Every fiber parks until all have started: 100k live fibers (and stacks) at once.
            let started = Arc::new(AtomicUsize::new(0));
            let released = Arc::new(AtomicBool::new(false));
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let started = started.clone();
                    let released = released.clone();
                    fiber::spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        while !released.load(Ordering::SeqCst) {
                            fiber::park();
                        }
                        i as u64
                    })
                })
                .collect();
            while started.load(Ordering::SeqCst) < n {
                fiber::yield_now();
            }
            released.store(true, Ordering::SeqCst);
            for h in &handles {
                h.fiber().unpark();
            }
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(total, (n as u64) * (n as u64 - 1) / 2);
    });
}

/// Spawns a binary tree of fibers `depth` levels deep; returns the number of leaves.
fn tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let left = fiber::spawn(move || tree(depth - 1));
    let right = fiber::spawn(move || tree(depth - 1));
    left.join().unwrap() + right.join().unwrap()
}

#[test]
fn nested_spawns_form_a_tree() {
    watchdog(60, || {
        let rt = runtime(2, "tree");
        let depth = scaled(13, 11) as u32;
        let leaves = rt.block_on(|| tree(depth));
        assert_eq!(leaves, 1 << depth);
        // A chain: each fiber spawns the next and waits for it.
        fn chain(n: u32) -> u32 {
            if n == 0 {
                0
            } else {
                fiber::spawn(move || chain(n - 1)).join().unwrap() + 1
            }
        }
        assert_eq!(rt.block_on(|| chain(500)), 500);
    });
}

#[test]
fn fibers_spawned_in_a_fiber_stay_on_its_runtime() {
    watchdog(30, || {
        let rt = runtime(2, "ownrt");
        let names = rt
            .spawn(|| {
                let handles: Vec<_> = (0..64)
                    .map(|_| {
                        fiber::spawn(|| {
                            fiber::yield_now();
                            (
                                fiber::is_fiber(),
                                std::thread::current().name().unwrap().to_owned(),
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap();
        assert_eq!(names.len(), 64);
        for (is_fiber, name) in names {
            assert!(is_fiber);
            assert!(name.starts_with("ownrt-"), "child ran on thread {name}");
        }
    });
}

#[test]
fn runtime_spawn_from_a_fiber_of_another_runtime() {
    watchdog(30, || {
        let a = runtime(1, "rt-a");
        let b = Arc::new(runtime(1, "rt-b"));
        let b2 = b.clone();
        let name = a
            .spawn(move || {
                let h = b2.spawn(|| std::thread::current().name().unwrap().to_owned());
                // Joining a fiber of runtime b parks this fiber of runtime a.
                h.join().unwrap()
            })
            .join()
            .unwrap();
        assert_eq!(name, "rt-b-0");
    });
}

#[test]
fn spawn_from_plain_threads_uses_the_default_runtime() {
    watchdog(30, || {
        assert!(!fiber::is_fiber());
        let threads = 4;
        let per_thread = 500;
        let barrier = Arc::new(Barrier::new(threads));
        let joins: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let handles: Vec<_> = (0..per_thread)
                        .map(|i| {
                            fiber::spawn(move || {
                                let thread = std::thread::current();
                                assert!(fiber::is_fiber());
                                let name = thread.name().unwrap_or("").to_owned();
                                (t * per_thread + i, name)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for j in joins {
            for (value, thread) in j.join().unwrap() {
                assert!(
                    thread.starts_with("fiber-default-"),
                    "default-runtime fiber ran on {thread:?}"
                );
                assert!(seen.insert(value));
            }
        }
        assert_eq!(seen.len(), threads * per_thread);
    });
}

#[test]
fn join_from_another_os_thread_and_from_a_fiber() {
    watchdog(30, || {
        let rt = runtime(2, "joiners");
        // Handle moved to a plain thread, which joins it.
        let h = rt.spawn(|| {
            fiber::sleep(Duration::from_millis(20));
            1u8
        });
        assert_eq!(
            std::thread::spawn(move || h.join().unwrap())
                .join()
                .unwrap(),
            1
        );
        // Handle moved into another fiber, which joins it (parking, not blocking the worker).
        let h = rt.spawn(|| {
            fiber::sleep(Duration::from_millis(20));
            2u8
        });
        assert_eq!(rt.spawn(move || h.join().unwrap()).join().unwrap(), 2);
        // Joining an already-finished fiber returns at once.
        let h = rt.spawn(|| 3u8);
        assert!(support::eventually(20, || h.is_finished()));
        assert_eq!(h.join().unwrap(), 3);
    });
}

#[test]
fn a_detached_fiber_keeps_running() {
    watchdog(30, || {
        let rt = runtime(2, "detached");
        let (tx, rx) = mpsc::channel();
        drop(rt.spawn(move || {
            fiber::sleep(Duration::from_millis(20));
            tx.send(fiber::current().id()).unwrap();
        }));
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the detached fiber did not run to completion");
    });
}

#[test]
fn many_joiners_one_per_fiber_on_one_worker() {
    watchdog(60, || {
        // Fibers that join each other in a line, all on one worker: joins must park only the
        // fiber, or the first join would deadlock the worker.
        let rt = runtime(1, "line");
        let n = 2000;
        let result = rt.block_on(|| {
            let mut prev: Option<fiber::JoinHandle<u64>> = None;
            for i in 0..n {
                let before = prev.take();
                prev = Some(fiber::spawn(move || match before {
                    Some(h) => h.join().unwrap() + i,
                    None => i,
                }));
            }
            prev.unwrap().join().unwrap()
        });
        assert_eq!(result, n * (n - 1) / 2);
    });
}

#[test]
fn builder_stack_size_and_name() {
    watchdog(30, || {
        let rt = runtime(2, "builder");
        for size in [
            fiber::MIN_STACK_SIZE,
            64 * 1024,
            fiber::DEFAULT_STACK_SIZE,
            1 << 20,
        ] {
            let h = fiber::Builder::new()
                .name(format!("sized-{size}"))
                .stack_size(size)
                .spawn_on(&rt, move || {
                    // Use a little of the stack to show it is there.
                    let buf = [size as u8; 4096];
                    std::hint::black_box(&buf);
                    fiber::current().name().unwrap().to_owned()
                })
                .unwrap();
            assert_eq!(h.join().unwrap(), format!("sized-{size}"));
        }
        // Builder::spawn from a fiber uses the fiber's runtime.
        let on = rt
            .spawn(|| {
                fiber::Builder::new()
                    .name("inner".into())
                    .spawn(|| std::thread::current().name().unwrap().to_owned())
                    .unwrap()
                    .join()
                    .unwrap()
            })
            .join()
            .unwrap();
        assert!(on.starts_with("builder-"), "ran on {on}");
    });
}

#[test]
fn spawn_then_join_at_once_from_fibers() {
    // The child may be stolen by the other worker and finish while the parent is still on its
    // way to parking in join: the join protocol must not lose that wake-up.
    let n = scaled(200_000, 20_000) as u64;
    watchdog(120, move || {
        let rt = runtime(2, "spawn-join");
        let sums: Vec<_> = (0..2u64)
            .map(|k| {
                rt.spawn(move || {
                    let mut sum = 0;
                    for i in 0..n / 2 {
                        sum += fiber::spawn(move || i * 2 + k).join().unwrap();
                    }
                    sum
                })
            })
            .collect();
        let total: u64 = sums.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, (0..n).sum::<u64>());
    });
}

#[test]
fn unstarted_fibers_are_stolen_from_a_blocked_worker() {
    // A fiber that never yields holds its worker; the fibers it spawned have not started, so the
    // other worker must be woken to steal them. Each round the other worker has gone idle again,
    // so this also checks that a spawn wakes a sleeping worker every time.
    let rounds = scaled(2_000, 300);
    watchdog(120, move || {
        let rt = runtime(2, "steal");
        let stuck_round = rt
            .spawn(move || {
                for round in 0..rounds {
                    let done = Arc::new(AtomicBool::new(false));
                    let d2 = done.clone();
                    let _child = fiber::spawn(move || d2.store(true, Ordering::SeqCst));
                    // Spin without yielding (this worker runs nothing else meanwhile).
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    while !done.load(Ordering::SeqCst) {
                        if std::time::Instant::now() > deadline {
                            return Some(round);
                        }
                        std::hint::spin_loop();
                    }
                    // Let the other worker fall asleep before the next round (most rounds).
                    if round % 8 != 0 {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
                None
            })
            .join()
            .unwrap();
        assert_eq!(stuck_round, None, "no worker stole the child");
    });
}

#[test]
fn fiber_handles_print_id_and_name() {
    watchdog(30, || {
        let rt = runtime(1, "debug-fmt");
        let h = fiber::Builder::new()
            .name("printable".into())
            .spawn_on(&rt, || format!("{:?}", fiber::current()))
            .unwrap();
        let id = h.fiber().id();
        let inside = h.join().unwrap();
        assert!(inside.contains("printable"), "{inside}");
        assert!(inside.contains(&format!("{id:?}")), "{inside}");
        assert_eq!(format!("{id:?}"), format!("FiberId({})", id.as_u64()));
    });
}

// The handle types can cross threads, as their std counterparts can (checked at compile time).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<fiber::JoinHandle<u32>>();
    send_sync::<fiber::Fiber>();
    send_sync::<fiber::FiberId>();
    send_sync::<fiber::Runtime>();
    send_sync::<fiber::Builder>();
    send_sync::<fiber::ScopedJoinHandle<'static, u32>>();
};

#[test]
fn a_panicked_fiber_is_finished() {
    watchdog(30, || {
        let rt = runtime(1, "panic-finished");
        let h = rt.spawn(|| panic!("done for"));
        assert!(support::eventually(20, || h.is_finished()));
        assert!(h.join().is_err());
    });
}

/// Spawns from outside the runtime while a worker searches: two fibers that spin, with no fiber
/// operation, until both run. The second can only run if the other worker, asleep, is woken for
/// it; a searcher that took the first and left the second in the injector must do that.
#[test]
fn a_spawn_during_a_search_is_not_left_to_a_busy_worker() {
    support::watchdog(60, || {
        let rt = support::runtime(2, "idle-spin");
        for _ in 0..support::scaled(200, 50) {
            // Let both workers go to sleep, so the spawns below find one searcher at most.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let spinners: Vec<_> = (0..2)
                .map(|_| {
                    let started = started.clone();
                    rt.spawn(move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        started.fetch_add(1, SeqCst);
                        while started.load(SeqCst) < 2 {
                            std::hint::spin_loop();
                        }
                        std::thread::current().name().map(str::to_owned)
                    })
                })
                .collect();
            let names: Vec<_> = spinners.into_iter().map(|h| h.join().unwrap()).collect();
            assert_ne!(
                names[0], names[1],
                "the two spinners ran at once, on both workers"
            );
        }
    });
}
