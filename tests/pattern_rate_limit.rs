//! Smoke test of `examples/rate_limit.rs`: every call is made, and the limiter never grants more
//! than K calls in any window (hence 100 calls at 20 per 200 ms take at least 800 ms).
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn rate_limit_never_exceeds_k_per_window() {
    support::watchdog(120, || {
        let args = [
            "--fibers",
            "100",
            "--calls",
            "1",
            "--rate",
            "20",
            "--window-ms",
            "200",
        ];
        let r = run_ok("rate_limit", &args, 110).result();
        assert_eq!(num(&r, "calls"), 100.0);
        assert_eq!(num(&r, "failed"), 0.0);
        assert_eq!(num(&r, "busiest"), 20.0);
        assert!(num(&r, "elapsed_ms") >= 790.0, "too fast: {r:?}");
    });
}

#[test]
fn rate_limit_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("rate_limit", 110));
}
