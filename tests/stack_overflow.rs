//! Stack overflow in a fiber prints `fiber '<name>' has overflowed its stack` (or `fiber '#<id>'`
//! when unnamed) and aborts the process. Each test re-runs this test binary as a child process
//! with an environment variable selecting the crashing path, and checks that the child died of
//! SIGABRT with the message on stderr.
mod support;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const CHILD_ENV: &str = "FIBER_STACK_OVERFLOW_CHILD";

/// True in the child process started for `test`.
fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// Runs test `test` of this binary in a child process (with core dumps off) and returns its
/// output.
fn run_child(test: &str) -> Output {
    run_child_with(test, false)
}

/// As [`run_child`]; `fallback` forces the stack layout of kernels without guard markers
/// (`FIBER_NO_GUARD_MARKERS`): separately mapped guard pages within a map budget, then unguarded
/// slab stacks with a canary.
fn run_child_with(test: &str, fallback: bool) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env("RUST_BACKTRACE", "0");
    if fallback {
        cmd.env("FIBER_NO_GUARD_MARKERS", "1");
    } else {
        cmd.env_remove("FIBER_NO_GUARD_MARKERS");
    }
    let no_core_dump = || {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit only reads the initialised `rlimit` we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which is
    // async-signal-safe; it touches no memory shared with the parent.
    unsafe { cmd.pre_exec(no_core_dump) };
    // The watchdog bounds a child that hangs instead of crashing.
    support::watchdog(120, move || cmd.output().expect("could not run the child"))
}

/// Asserts the child was killed by `signal` and its stderr contains `needle`.
fn assert_died(out: &Output, signal: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "child status {:?}, expected signal {signal}\n--- stderr ---\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains(needle),
        "child stderr lacks {needle:?}\n--- stderr ---\n{stderr}"
    );
    stderr
}

/// Recurses forever, 1 KiB of stack per frame.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_forever(n: u64) -> u64 {
    let mut buf = [n as u8; 1024];
    std::hint::black_box(&mut buf);
    recurse_forever(n + 1) + u64::from(buf[n as usize % 1024])
}

/// Recurses until a frame's buffer lies at or below `limit`, then returns; 512 bytes per frame,
/// all written.
#[inline(never)]
fn recurse_to(limit: usize, depth: u64) -> u64 {
    let mut buf = [0xA5u8; 512];
    std::hint::black_box(&mut buf);
    if (buf.as_ptr() as usize) <= limit {
        return depth;
    }
    recurse_to(limit, depth + 1) + u64::from(buf[depth as usize % 512] & 1)
}

#[test]
fn overflow_of_a_named_fiber_names_it_and_aborts() {
    const TEST: &str = "overflow_of_a_named_fiber_names_it_and_aborts";
    if is_child(TEST) {
        let rt = support::runtime(2, "ovf");
        let h = fiber::Builder::new()
            .name("deep-diver".into())
            .spawn_on(&rt, || recurse_forever(0))
            .unwrap();
        let _ = h.join();
        unreachable!("the overflow did not abort the process");
    }
    let out = run_child(TEST);
    let stderr = assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'deep-diver' has overflowed its stack",
    );
    assert!(!stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn overflow_of_an_unnamed_fiber_gives_its_id_and_aborts() {
    const TEST: &str = "overflow_of_an_unnamed_fiber_gives_its_id_and_aborts";
    if is_child(TEST) {
        let rt = support::runtime(1, "ovf");
        let h = rt.spawn(|| {
            eprintln!("CHILD-FIBER-ID={}", fiber::current().id().as_u64());
            recurse_forever(0)
        });
        let _ = h.join();
        unreachable!("the overflow did not abort the process");
    }
    let out = run_child(TEST);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("CHILD-FIBER-ID="))
        .unwrap_or_else(|| panic!("the child did not print its fiber id\n{stderr}"))
        .trim()
        .to_owned();
    assert_died(
        &out,
        libc::SIGABRT,
        &format!("fiber '#{id}' has overflowed its stack"),
    );
}

#[test]
fn overflow_of_a_small_custom_stack_aborts() {
    const TEST: &str = "overflow_of_a_small_custom_stack_aborts";
    if is_child(TEST) {
        let rt = support::runtime(1, "ovf");
        // Other fibers are alive and parked on the same worker.
        let parked: Vec<_> = (0..100)
            .map(|_| rt.spawn(|| fiber::park_timeout(std::time::Duration::from_secs(600))))
            .collect();
        let h = fiber::Builder::new()
            .name("small".into())
            .stack_size(fiber::MIN_STACK_SIZE)
            .spawn_on(&rt, || recurse_forever(0))
            .unwrap();
        let _ = h.join();
        drop(parked);
        unreachable!("the overflow did not abort the process");
    }
    let out = run_child(TEST);
    assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'small' has overflowed its stack",
    );
}

/// In the child: keeps `live` fibers parked (all started, holding their stacks) on a one-worker
/// runtime, then runs `dive` in a fiber named `name`; never returns.
fn park_many_then_dive(live: usize, name: &str, dive: fn() -> u64) -> ! {
    let rt = support::runtime(1, "ovf");
    let started = Arc::new(AtomicUsize::new(0));
    let parked: Vec<_> = (0..live)
        .map(|_| {
            let started = started.clone();
            rt.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    fiber::park();
                }
            })
        })
        .collect();
    assert!(support::eventually(60, || started.load(Ordering::SeqCst) == live));
    let h = fiber::Builder::new()
        .name(name.into())
        .spawn_on(&rt, dive)
        .unwrap();
    let _ = h.join();
    drop(parked);
    unreachable!("the overflow did not abort the process");
}

/// More live fibers than the fallback layout can give separately mapped guard pages: a quarter
/// of `vm.max_map_count` (the runtime's budget), plus some.
fn beyond_the_map_budget() -> usize {
    let max_maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530);
    max_maps / 4 + 500
}

#[test]
fn overflow_with_many_live_fibers_is_reported() {
    const TEST: &str = "overflow_with_many_live_fibers_is_reported";
    if is_child(TEST) {
        park_many_then_dive(beyond_the_map_budget(), "crowded-diver", || {
            recurse_forever(0)
        });
    }
    let out = run_child(TEST);
    assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'crowded-diver' has overflowed its stack",
    );
}

#[test]
fn fallback_layout_overflow_with_few_fibers_is_reported() {
    const TEST: &str = "fallback_layout_overflow_with_few_fibers_is_reported";
    if is_child(TEST) {
        park_many_then_dive(10, "mapped-diver", || recurse_forever(0));
    }
    let out = run_child_with(TEST, true);
    assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'mapped-diver' has overflowed its stack",
    );
}

#[test]
fn fallback_layout_unbounded_overflow_of_an_unguarded_stack_is_reported() {
    // Beyond the map budget the fallback gives unguarded slab stacks; an unbounded recursion runs
    // through the stacks below until it faults, and the fault handler must still blame the fiber
    // whose stack pointer is below its stack. One worker, so no other fiber runs meanwhile.
    const TEST: &str = "fallback_layout_unbounded_overflow_of_an_unguarded_stack_is_reported";
    if is_child(TEST) {
        park_many_then_dive(beyond_the_map_budget(), "unguarded-diver", || {
            recurse_forever(0)
        });
    }
    let out = run_child_with(TEST, true);
    assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'unguarded-diver' has overflowed its stack",
    );
}

#[test]
fn fallback_layout_canary_catches_an_overflow_at_the_switch() {
    const TEST: &str = "fallback_layout_canary_catches_an_overflow_at_the_switch";
    if is_child(TEST) {
        // Beyond the map budget the fallback gives unguarded slab stacks. This fiber recurses
        // just past the bottom of its (default-sized) stack, through the canary, returns, and
        // switches out: the check at the switch must catch it. The stack top is a little above
        // `local`, so the recursion overshoots the bottom by at most that much plus one frame
        // (into a neighbouring parked fiber's stack, which never runs again).
        park_many_then_dive(beyond_the_map_budget(), "slab-diver", || {
            let local = 0u8;
            let top = std::hint::black_box(&local) as *const u8 as usize;
            let limit = top - fiber::DEFAULT_STACK_SIZE + 64;
            let depth = recurse_to(limit, 0);
            eprintln!("CHILD-DEPTH={depth}");
            fiber::yield_now();
            depth
        });
    }
    let out = run_child_with(TEST, true);
    let stderr = assert_died(
        &out,
        libc::SIGABRT,
        "fiber 'slab-diver' has overflowed its stack",
    );
    // The recursion returned, so it was the canary check at the switch-out that reported the
    // overflow (a guard page would have stopped the recursion itself).
    assert!(
        stderr.contains("CHILD-DEPTH="),
        "the canary path was not taken:\n{stderr}"
    );
}

#[test]
fn overflow_of_a_plain_thread_is_still_reported_by_std() {
    const TEST: &str = "overflow_of_a_plain_thread_is_still_reported_by_std";
    if is_child(TEST) {
        // The runtime's signal handler is installed; a fault that is not a fiber's goes to std.
        let rt = support::runtime(1, "ovf");
        assert_eq!(rt.block_on(|| 1), 1);
        let t = std::thread::Builder::new()
            .name("plain-diver".into())
            .stack_size(256 * 1024)
            .spawn(|| recurse_forever(0))
            .unwrap();
        let _ = t.join();
        unreachable!("the overflow did not abort the process");
    }
    let out = run_child(TEST);
    // std prints `thread '<name>' (<tid>) has overflowed its stack`.
    let stderr = assert_died(&out, libc::SIGABRT, "has overflowed its stack");
    assert!(stderr.contains("thread 'plain-diver'"), "{stderr}");
    assert!(!stderr.contains("fiber '"), "{stderr}");
}

#[test]
fn a_wild_pointer_in_a_fiber_is_a_segfault_not_an_overflow() {
    const TEST: &str = "a_wild_pointer_in_a_fiber_is_a_segfault_not_an_overflow";
    if is_child(TEST) {
        let rt = support::runtime(1, "ovf");
        let h = fiber::Builder::new()
            .name("wild".into())
            .spawn_on(&rt, || {
                let p = std::hint::black_box(16usize) as *mut u8;
                // SAFETY: not safe at all: this deliberately writes to an unmapped address to
                // check that the runtime's SIGSEGV handler passes a non-overflow fault on.
                unsafe { p.write_volatile(1) };
            })
            .unwrap();
        let _ = h.join();
        unreachable!("the fault did not kill the process");
    }
    let out = run_child(TEST);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "status {:?}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("overflowed"),
        "misreported as an overflow:\n{stderr}"
    );
}
