//! Bad input: invalid worker counts and stack sizes, and spawning on a runtime that is shutting
//! down, give an `io::Error` whose message says what to change; the panicking forms panic with
//! that message, as `std::thread::spawn` does.
mod support;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use support::{payload_text, runtime, watchdog, DropCounter};

fn build_err(builder: fiber::RuntimeBuilder) -> std::io::Error {
    match builder.build() {
        Ok(rt) => panic!("expected an error, got a runtime: {rt:?}"),
        Err(e) => e,
    }
}

// The constants are checked where the compiler can see them.
const _: () = {
    assert!(fiber::MIN_STACK_SIZE > 0);
    assert!(fiber::MIN_STACK_SIZE <= fiber::DEFAULT_STACK_SIZE);
    assert!(fiber::DEFAULT_STACK_SIZE <= fiber::MAX_STACK_SIZE);
    assert!(fiber::MAX_WORKER_THREADS >= 1);
};

#[test]
fn zero_or_too_many_workers_is_invalid_input() {
    for n in [0, fiber::MAX_WORKER_THREADS + 1, usize::MAX] {
        let err = build_err(fiber::Runtime::builder().worker_threads(n));
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "worker_threads({n})");
        let msg = err.to_string();
        assert!(
            msg.contains("worker_threads"),
            "message does not name the setting: {msg}"
        );
        assert!(
            msg.contains(&fiber::MAX_WORKER_THREADS.to_string()),
            "message does not give the limit: {msg}"
        );
    }
}

#[test]
fn one_and_many_workers_are_accepted() {
    watchdog(60, || {
        for n in [1, 2, 64] {
            let rt = fiber::Runtime::builder()
                .worker_threads(n)
                .stack_size(fiber::MIN_STACK_SIZE)
                .build()
                .unwrap_or_else(|e| panic!("worker_threads({n}) rejected: {e}"));
            let handles: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
            let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 4950);
        }
    });
}

#[test]
fn the_maximum_number_of_workers_is_accepted() {
    watchdog(20, || {
        let rt = fiber::Runtime::builder()
            .worker_threads(fiber::MAX_WORKER_THREADS)
            .stack_size(fiber::MIN_STACK_SIZE)
            .build()
            .expect("MAX_WORKER_THREADS workers must be accepted");
        let handles: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
        let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn runtime_stack_size_out_of_range_is_invalid_input() {
    let below = [0, 1, fiber::MIN_STACK_SIZE - 1];
    let above = [fiber::MAX_STACK_SIZE + 1, usize::MAX / 2, usize::MAX];
    for (sizes, word) in [(&below[..], "minimum"), (&above[..], "maximum")] {
        for &size in sizes {
            let err = build_err(fiber::Runtime::builder().stack_size(size));
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "stack_size({size})");
            let msg = err.to_string();
            assert!(msg.contains(word), "stack_size({size}): {msg}");
            assert!(
                msg.contains("STACK_SIZE"),
                "message does not name the limit: {msg}"
            );
            assert!(
                msg.contains(&size.to_string()),
                "message does not echo the input: {msg}"
            );
        }
    }
}

#[test]
fn runtime_stack_size_at_the_limits_is_accepted() {
    watchdog(60, || {
        for size in [
            fiber::MIN_STACK_SIZE,
            fiber::MIN_STACK_SIZE + 1,
            fiber::MAX_STACK_SIZE,
        ] {
            let rt = fiber::Runtime::builder()
                .worker_threads(1)
                .stack_size(size)
                .build()
                .unwrap_or_else(|e| panic!("stack_size({size}) rejected: {e}"));
            let handles: Vec<_> = (0..10u32).map(|i| rt.spawn(move || i)).collect();
            let sum: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 45);
        }
    });
}

#[test]
fn fiber_stack_size_out_of_range_is_invalid_input_and_drops_the_closure() {
    watchdog(30, || {
        let rt = runtime(1, "bad-fiber-stack");
        let drops = DropCounter::new();
        let sizes = [
            0,
            fiber::MIN_STACK_SIZE - 1,
            fiber::MAX_STACK_SIZE + 1,
            usize::MAX,
        ];
        for &size in &sizes {
            let ran = Arc::new(AtomicBool::new(false));
            let check = |res: std::io::Result<fiber::JoinHandle<()>>| {
                let err = res.expect_err("a bad stack size was accepted");
                assert_eq!(err.kind(), ErrorKind::InvalidInput);
                assert!(err.to_string().contains("STACK_SIZE"), "{err}");
            };
            let (g, r) = (drops.guard(), ran.clone());
            check(
                fiber::Builder::new()
                    .stack_size(size)
                    .spawn_on(&rt, move || {
                        let _g = g;
                        r.store(true, Ordering::SeqCst);
                    }),
            );
            let (g, r) = (drops.guard(), ran.clone());
            check(fiber::Builder::new().stack_size(size).spawn(move || {
                let _g = g;
                r.store(true, Ordering::SeqCst);
            }));
            // From inside a fiber, too.
            let err = rt
                .spawn(move || {
                    fiber::Builder::new()
                        .stack_size(size)
                        .spawn(|| ())
                        .unwrap_err()
                        .kind()
                })
                .join()
                .unwrap();
            assert_eq!(err, ErrorKind::InvalidInput);
            assert!(!ran.load(Ordering::SeqCst));
        }
        assert_eq!(
            drops.get(),
            2 * sizes.len(),
            "a rejected closure must be dropped"
        );
    });
}

#[test]
fn a_fiber_with_the_maximum_stack_size_runs() {
    watchdog(30, || {
        let rt = runtime(1, "max-stack");
        let h = fiber::Builder::new()
            .stack_size(fiber::MAX_STACK_SIZE)
            .spawn_on(&rt, || {
                // Touch a good part of it: recursion 4 MiB deep.
                fn deep(n: u32) -> u32 {
                    let buf = [n as u8; 1024];
                    std::hint::black_box(&buf);
                    if n == 0 {
                        0
                    } else {
                        deep(n - 1) + 1
                    }
                }
                deep(4096)
            })
            .unwrap();
        assert_eq!(h.join().unwrap(), 4096);
    });
}

#[test]
fn spawning_on_a_runtime_that_is_shutting_down() {
    watchdog(30, || {
        // The only code that runs while a runtime shuts down is a cancelled fiber's: it catches
        // the cancellation and tries to spawn.
        let rt = runtime(1, "spawn-at-shutdown");
        let (tx, rx) = mpsc::channel();
        let started = Arc::new(AtomicBool::new(false));
        let s2 = started.clone();
        rt.spawn(move || {
            s2.store(true, Ordering::SeqCst);
            let cancelled = std::panic::catch_unwind(|| loop {
                fiber::park();
            });
            assert!(cancelled.is_err());
            // The fallible form: an error of kind Other.
            let err = fiber::Builder::new().spawn(|| ()).unwrap_err();
            // The panicking forms panic with that message.
            let spawn_panic = std::panic::catch_unwind(|| fiber::spawn(|| ()))
                .map(|_| ())
                .unwrap_err();
            let scope_panic =
                std::panic::catch_unwind(|| fiber::scope(|s| drop(s.spawn(|| ())))).unwrap_err();
            tx.send((
                err.kind(),
                err.to_string(),
                payload_text(&*spawn_panic),
                payload_text(&*scope_panic),
            ))
            .unwrap();
        });
        assert!(support::eventually(20, || started.load(Ordering::SeqCst)));
        drop(rt);
        let (kind, msg, spawn_panic, scope_panic) = rx.recv().unwrap();
        assert_eq!(kind, ErrorKind::Other);
        assert!(msg.contains("shutting down"), "{msg}");
        assert_eq!(spawn_panic, format!("failed to spawn fiber: {msg}"));
        assert_eq!(scope_panic, format!("failed to spawn fiber: {msg}"));
    });
}

#[test]
fn a_thread_name_with_a_nul_byte_is_an_error() {
    watchdog(30, || {
        let result = std::panic::catch_unwind(|| {
            fiber::Runtime::builder()
                .worker_threads(1)
                .thread_name("bad\0name")
                .build()
                .map(drop)
        });
        let err = result
            .expect("build() panicked")
            .expect_err("a NUL in the thread name was accepted");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

/// Each worker needs a reactor (three fds). Under a low `ulimit -n`, building a large runtime must
/// fail with an error that says which reactor could not be made, not panic or hang. Runs in a
/// child process, since lowering the fd limit would break the other tests of this binary.
#[test]
fn running_out_of_fds_for_the_reactors_is_an_error() {
    const CHILD_ENV: &str = "FIBER_RT_ERRORS_NOFILE_CHILD";
    if std::env::var_os(CHILD_ENV).is_some() {
        let limit = libc::rlimit {
            rlim_cur: 64,
            rlim_max: 64,
        };
        // SAFETY: setrlimit with a valid, initialised struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let err = fiber::Runtime::builder()
            .worker_threads(100)
            .build()
            .expect_err("100 workers cannot fit in 64 fds");
        println!("ERROR: {err}");
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "running_out_of_fds_for_the_reactors_is_an_error",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1");
    let out = support::watchdog(60, move || cmd.output().expect("could not run the child"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(
        stdout.contains("ERROR: fiber: could not create the reactor of worker"),
        "unexpected output: {stdout}"
    );
}
