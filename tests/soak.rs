//! The soak (`examples/soak/main.rs`) as part of `cargo test`: a 20-second run of the random mix must
//! exit 0 with every total matched, and each of its failure checks (a wrong total, a leaked fd,
//! RSS growth, a hung round) must make it exit non-zero with a message naming the failure.
//!
//! The soak runs in a child process (`cargo run --example soak`), so its fd and RSS figures are
//! its own and its watchdog can end it; the test's watchdog bounds the whole run as well.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_example, run_ok};

#[test]
fn soak_20_seconds_all_totals_match() {
    support::watchdog(400, || {
        // Debug builds run the scenarios at a quarter of their release sizes (the soak's
        // default `--load`), so 20 s on a loaded 2-core machine still completes many rounds.
        let run = run_ok("soak", &["--seconds", "20", "--hang-secs", "90"], 390);
        let r = run.result();
        assert_eq!(r["status"], "ok");
        assert!(num(&r, "seconds") >= 20.0, "{r:?}");
        assert!(num(&r, "rounds") >= 2.0, "too few rounds: {r:?}");
        assert!(num(&r, "kinds_run") >= 3.0, "{r:?}");
        assert!(num(&r, "fibers") > 0.0 && num(&r, "checks") > 0.0, "{r:?}");
        assert!(num(&r, "samples") >= 15.0, "no RSS series: {r:?}");
        assert!(!run.stdout.contains("MISMATCH"), "{}", run.stdout);
        // Every check line is "expected X got X".
        let checks: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.contains(" expected ") && l.contains(" got "))
            .collect();
        assert_eq!(checks.len() as f64, num(&r, "checks"));
        for line in checks {
            let words: Vec<&str> = line.split_whitespace().collect();
            let n = words.len();
            assert_eq!(words[n - 3], words[n - 1], "{line}");
        }
    });
}

/// Runs the soak with `args` and asserts it failed with `code` and printed `message`.
fn must_fail(args: &[&str], code: i32, message: &str) {
    let run = run_example("soak", args, 170);
    assert_eq!(run.code, Some(code), "soak {args:?}:\n{}", run.stdout);
    assert!(
        run.stdout.contains(message),
        "soak {args:?} did not say `{message}`:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("RESULT status=ok"), "{}", run.stdout);
}

#[test]
fn soak_checks_fail_when_they_should() {
    support::watchdog(400, || {
        let base = ["--seconds", "20", "--seed", "7"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(extra).copied().collect()
        };
        must_fail(
            &with(&["--inject", "mismatch"]),
            1,
            "(--inject mismatch added 1 to this actual)",
        );
        must_fail(
            &with(&["--inject", "fd"]),
            1,
            "FD LEAK: 1 more fds open after round 2",
        );
        must_fail(
            &with(&["--inject", "hang", "--hang-secs", "2"]),
            3,
            "scenarios not finished: #0 injected hang)",
        );
        must_fail(
            &with(&[
                "--inject",
                "rss",
                "--warmup-secs",
                "2",
                "--rss-growth-mib",
                "40",
            ]),
            1,
            "RSS GROWTH: resident set",
        );
    });
}

#[test]
fn soak_rejects_bad_flags() {
    support::watchdog(120, || {
        rejects_bad_flags("soak", 110);
        // The flag that kept known defects apart is gone (they are fixed, their cases run in
        // the normal mix): asking for it is an error that says so, not a silent no-op.
        let run = run_example("soak", &["--with-known-bugs"], 110);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains("`--with-known-bugs` is gone"),
            "{}",
            run.stderr
        );
    });
}
