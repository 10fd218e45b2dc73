//! `Runtime::block_on` and `fiber::run`: borrowing from the caller, panics propagating to the
//! caller, and nested calls from inside fibers (which park only the calling fiber).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use support::{payload_text, runtime, watchdog};

#[test]
fn block_on_returns_the_value_and_runs_in_a_fiber() {
    watchdog(30, || {
        let rt = runtime(2, "bo-value");
        let (v, is_fiber, thread) = rt.block_on(|| {
            (
                6 * 7,
                fiber::is_fiber(),
                std::thread::current().name().unwrap().to_owned(),
            )
        });
        assert_eq!(v, 42);
        assert!(is_fiber);
        assert!(thread.starts_with("bo-value-"), "{thread}");
        assert!(!fiber::is_fiber());
    });
}

#[test]
fn block_on_borrows_from_the_caller() {
    watchdog(30, || {
        let rt = runtime(2, "bo-borrow");
        let input = [1u64, 2, 3];
        let mut output = Vec::new();
        let mut counter = 0u32;
        rt.block_on(|| {
            output.extend(input.iter().map(|x| x * 10));
            counter += 1;
        });
        assert_eq!(output, [10, 20, 30]);
        assert_eq!(counter, 1);
        // A borrowed slice handed to child fibers through a scope inside block_on.
        let sum = rt.block_on(|| {
            fiber::scope(|s| {
                let hs: Vec<_> = output.chunks(1).map(|c| s.spawn(move || c[0])).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            })
        });
        assert_eq!(sum, 60);
    });
}

#[test]
fn a_panic_in_block_on_resumes_in_the_caller() {
    watchdog(30, || {
        let rt = runtime(1, "bo-panic");
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(|| -> u32 { panic!("inside block_on") })
        }))
        .unwrap_err();
        assert_eq!(payload_text(&*err), "inside block_on");
        // The runtime is still usable.
        assert_eq!(rt.block_on(|| 1), 1);

        let err =
            std::panic::catch_unwind(|| fiber::run(|| std::panic::panic_any(17u8))).unwrap_err();
        assert_eq!(err.downcast_ref::<u8>(), Some(&17));
    });
}

#[test]
fn nested_block_on_from_a_fiber_on_one_worker() {
    watchdog(30, || {
        // From inside a fiber, block_on must park the fiber, not the worker: with one worker,
        // blocking would deadlock.
        let rt = runtime(1, "bo-nested");
        let rt_ref = &rt;
        let v = rt.block_on(|| {
            let inner = rt_ref.block_on(|| rt_ref.block_on(|| 5) + 1);
            inner + 1
        });
        assert_eq!(v, 7);
        // fiber::run nested inside a fiber uses the caller's runtime.
        let name = rt.block_on(|| fiber::run(|| std::thread::current().name().unwrap().to_owned()));
        assert_eq!(name, "bo-nested-0");
    });
}

#[test]
fn block_on_another_runtime_from_a_fiber() {
    watchdog(30, || {
        let a = runtime(1, "bo-a");
        let b = runtime(1, "bo-b");
        let b_ref = &b;
        let (outer, inner) = a.block_on(|| {
            let inner = b_ref.block_on(|| std::thread::current().name().unwrap().to_owned());
            (std::thread::current().name().unwrap().to_owned(), inner)
        });
        assert_eq!(outer, "bo-a-0");
        assert_eq!(inner, "bo-b-0");
        // A panic crosses both runtimes back to the caller.
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.block_on(|| b_ref.block_on(|| -> () { panic!("from b") }))
        }))
        .unwrap_err();
        assert_eq!(payload_text(&*err), "from b");
    });
}

#[test]
fn a_panic_in_nested_block_on_can_be_caught_in_the_fiber() {
    watchdog(30, || {
        let rt = runtime(2, "bo-catch");
        let rt_ref = &rt;
        let caught = rt.block_on(|| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt_ref.block_on(|| -> u8 { panic!("inner") })
            }));
            payload_text(&*r.unwrap_err())
        });
        assert_eq!(caught, "inner");
    });
}

#[test]
fn block_on_from_many_threads_at_once() {
    watchdog(60, || {
        let rt = runtime(2, "bo-threads");
        let threads = 8;
        let barrier = Barrier::new(threads);
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (rt, barrier, total) = (&rt, &barrier, &total);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..200 {
                        let v = rt.block_on(|| {
                            fiber::yield_now();
                            t * 1000 + i
                        });
                        assert_eq!(v, t * 1000 + i);
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(total.into_inner(), threads * 200);
    });
}

#[test]
fn block_on_spawning_and_joining_many() {
    watchdog(60, || {
        let rt = runtime(1, "bo-many");
        let counter = Arc::new(AtomicUsize::new(0));
        let n = rt.block_on(|| {
            let hs: Vec<_> = (0..10_000)
                .map(|_| {
                    let c = counter.clone();
                    fiber::spawn(move || c.fetch_add(1, Ordering::Relaxed))
                })
                .collect();
            hs.len()
        });
        // Detached fibers still run after block_on returned.
        assert!(support::eventually(30, || counter.load(Ordering::Relaxed) == n));
    });
}

#[test]
fn run_uses_the_default_runtime_from_a_plain_thread() {
    watchdog(30, || {
        let data = [3, 4, 5];
        let (sum, thread) = fiber::run(|| {
            (
                data.iter().sum::<i32>(),
                std::thread::current().name().unwrap().to_owned(),
            )
        });
        assert_eq!(sum, 12);
        assert!(thread.starts_with("fiber-default-"), "{thread}");
    });
}

#[test]
fn a_block_on_caller_cancelled_by_shutdown_outlives_the_borrowing_fiber() {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// Sets its flag when the block_on caller's frame is torn down.
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    watchdog(60, || {
        let a = runtime(1, "bo-cancel-a");
        let b = Arc::new(runtime(1, "bo-cancel-b"));
        let caller_gone = Arc::new(AtomicBool::new(false));
        let ran_after_caller_gone = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let inner_done = Arc::new(AtomicBool::new(false));
        let (b2, gone2, after2, started2, done2) = (
            b.clone(),
            caller_gone.clone(),
            ran_after_caller_gone.clone(),
            started.clone(),
            inner_done.clone(),
        );
        let _caller = a.spawn(move || {
            let _gone = SetOnDrop(gone2.clone());
            let borrowed = vec![1u8; 64];
            let borrowed = &borrowed;
            b2.block_on(move || {
                // The borrow is used only here, while the caller is certainly alive.
                let first = borrowed[0];
                started2.store(true, Ordering::SeqCst);
                // Runs for 3 s at most, or until it sees the caller's frame gone.
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                while std::time::Instant::now() < deadline {
                    if gone2.load(Ordering::SeqCst) {
                        // Still running, holding `borrowed`, after the caller's frame is gone.
                        after2.store(true, Ordering::SeqCst);
                        break;
                    }
                    fiber::sleep(Duration::from_millis(1));
                }
                done2.store(true, Ordering::SeqCst);
                first
            })
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst)));
        // Dropping runtime a cancels the caller, parked in b.block_on. It must not unwind past
        // block_on while the fiber on b still runs with borrows of its stack.
        drop(a);
        assert!(support::eventually(20, || inner_done.load(Ordering::SeqCst)));
        let dangling = ran_after_caller_gone.load(Ordering::SeqCst);
        drop(b);
        assert!(
            !dangling,
            "the block_on fiber on runtime b ran on after its caller (on runtime a) was unwound"
        );
    });
}
