//! Stack overflow is reported by fiber name in every stack layout: guard markers (Linux 6.13+),
//! and the fallback for older kernels (separately mapped guard pages within the map budget). The
//! fallback's unguarded slab stacks are tested in stack_overflow.rs on one worker: with two, an
//! overflow may trample a neighbouring stack that the other worker runs before the report (the
//! documented limit of that layout). Each case runs in a
//! child process (this test binary re-run with `--ignored --exact child_overflows`), since an
//! overflow aborts the process.
mod support;

use std::process::Command;
use std::time::Duration;

const SCENARIO: &str = "FIBER_TEST_OVERFLOW_SCENARIO";

fn recurse(depth: u64) -> u64 {
    let frame = [depth; 32];
    if depth == u64::MAX {
        return 0;
    }
    std::hint::black_box(&frame)[1] + recurse(depth + 1)
}

/// Runs in the child: keeps `live` fibers parked, then overflows a fiber named `deep`.
#[test]
#[ignore = "child-process entry point, run by the other tests in this file"]
fn child_overflows() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let live: usize = scenario
        .parse()
        .expect("scenario is a number of live fibers");
    let rt = fiber::Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(|| {
        let sleepers: Vec<_> = (0..live)
            .map(|_| fiber::spawn(|| fiber::sleep(Duration::from_secs(60))))
            .collect();
        // Let them all start (and take their stacks) before the overflow.
        fiber::sleep(Duration::from_millis(300));
        let h = fiber::Builder::new()
            .name("deep".into())
            .spawn(|| recurse(0))
            .expect("spawn");
        let _ = h.join();
        drop(sleepers);
    });
    unreachable!("the overflowing fiber returned");
}

fn run_child(live: usize, no_markers: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--ignored",
        "--exact",
        "child_overflows",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(SCENARIO, live.to_string());
    if no_markers {
        cmd.env("FIBER_NO_GUARD_MARKERS", "1");
    } else {
        cmd.env_remove("FIBER_NO_GUARD_MARKERS");
    }
    let out = cmd.output().expect("run child");
    use std::os::unix::process::ExitStatusExt;
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_reported(live: usize, no_markers: bool) {
    let (signal, stderr) = support::watchdog(120, move || run_child(live, no_markers));
    assert_eq!(
        signal,
        Some(SIGABRT),
        "child should abort (live={live}, no_markers={no_markers}); stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("fiber 'deep' has overflowed its stack"),
        "missing overflow report (live={live}, no_markers={no_markers}); stderr:\n{stderr}"
    );
}

/// SIGABRT on Linux.
const SIGABRT: i32 = 6;

#[test]
fn overflow_is_reported_with_guard_markers() {
    assert_reported(0, false);
}

#[test]
fn overflow_is_reported_with_many_live_fibers() {
    // Beyond the ~16k budget of separately guarded stacks: still a guard page per stack.
    assert_reported(20_000, false);
}

#[test]
fn fallback_guard_page_reports_overflow() {
    assert_reported(0, true);
}
