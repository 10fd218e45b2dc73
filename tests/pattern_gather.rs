//! Smoke test of `examples/gather.rs`: every outcome is collected — values, errors and panics —
//! and they add up to the number of jobs; with `--fail-fast`, the first failure cancels the jobs
//! still waiting on the server, and every job is still accounted for.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn gather_returns_every_value_error_and_panic() {
    support::watchdog(120, || {
        let r = run_ok("gather", &["--jobs", "200", "--latency-ms", "10"], 110).result();
        let panics = (0..200u64).filter(|i| i % 25 == 7).count();
        let errors = (0..200u64).filter(|i| i % 10 == 3 && i % 25 != 7).count();
        let ok: Vec<u64> = (0..200).filter(|i| i % 25 != 7 && i % 10 != 3).collect();
        assert_eq!(num(&r, "panics"), panics as f64);
        assert_eq!(num(&r, "errors"), errors as f64);
        assert_eq!(num(&r, "ok"), ok.len() as f64);
        assert_eq!(num(&r, "accounted"), 200.0);
        assert_eq!(r["sum"], ok.iter().map(|i| 2 * i).sum::<u64>().to_string());
    });
}

#[test]
fn gather_fail_fast_stops_at_the_first_panic_and_cancels_every_request_in_flight() {
    support::watchdog(120, || {
        // The server takes 2 s; jobs 7, 32, 57, ... panic at once, before any answer can arrive.
        // Which of them runs first is the scheduler's choice (job 57 did once, on 2 workers).
        let args = ["--jobs", "200", "--latency-ms", "2000", "--fail-fast"];
        let r = run_ok("gather", &args, 110).result();
        assert_eq!(r["mode"], "fail_fast");
        assert_eq!(
            num(&r, "first") as u64 % 25,
            7,
            "the first failure is a panicking job"
        );
        assert_eq!(r["first_kind"], "panic");
        // A job already running on another worker may panic too before its cancel lands: at
        // most one per worker (a cancelled job that has not started never runs).
        let panics = num(&r, "panics");
        let workers = std::thread::available_parallelism().unwrap().get() as f64;
        assert!((1.0..=workers).contains(&panics), "{panics} panics");
        assert_eq!(num(&r, "ok"), 0.0);
        assert_eq!(num(&r, "errors"), 0.0);
        assert_eq!(num(&r, "cancelled"), 200.0 - panics);
        assert_eq!(num(&r, "accounted"), 200.0);
        assert!(
            num(&r, "elapsed_ms") < 1500.0,
            "waited for the server: {r:?}"
        );
    });
}

#[test]
fn gather_fail_fast_stops_at_the_first_error_and_accounts_for_every_job() {
    support::watchdog(120, || {
        let args = [
            "--jobs",
            "200",
            "--latency-ms",
            "20",
            "--panic-every",
            "0",
            "--fail-fast",
        ];
        let r = run_ok("gather", &args, 110).result();
        assert_eq!(r["first_kind"], "error");
        assert_eq!(
            num(&r, "first") as u64 % 10,
            3,
            "the first failure is a failing job"
        );
        assert_eq!(num(&r, "panics"), 0.0);
        assert!(num(&r, "errors") >= 1.0);
        let (ok, errors, cancelled) = (num(&r, "ok"), num(&r, "errors"), num(&r, "cancelled"));
        // Every job either finished before the failure landed, or was cancelled.
        assert_eq!(ok + errors + cancelled, 200.0);
        assert_eq!(num(&r, "accounted"), 200.0);
        // All ok: every value, in order.
        let args = ["--jobs", "3", "--latency-ms", "5", "--fail-fast"];
        let r = run_ok("gather", &args, 110).result();
        assert_eq!(
            (num(&r, "first"), num(&r, "ok"), num(&r, "sum")),
            (-1.0, 3.0, 6.0)
        );
    });
}

#[test]
fn gather_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("gather", 110));
}
