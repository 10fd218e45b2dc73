//! Smoke test of `examples/retry.rs`: item i fails its first i % 5 attempts (alternately a hang
//! past the timeout and a 503), so with 4 attempts items 4 and 9 give up and the attempt counts
//! are exact.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn retry_recovers_from_timeouts_and_errors() {
    support::watchdog(120, || {
        // A generous timeout: a loaded machine must not turn a quick answer into a timeout.
        let args = [
            "--items",
            "10",
            "--max-attempts",
            "4",
            "--timeout-ms",
            "1500",
            "--backoff-ms",
            "5",
        ];
        let r = run_ok("retry", &args, 110).result();
        assert_eq!(num(&r, "ok"), 8.0);
        assert_eq!(num(&r, "gave_up"), 2.0);
        // Per 5 items: 1 + 2 + 3 + 4 + 4 attempts.
        assert_eq!(num(&r, "attempts"), 28.0);
        assert_eq!(num(&r, "server_attempts"), 28.0);
        // Failed attempts 0, 2 of an item hang; 1, 3 get 503.
        assert_eq!(num(&r, "timeouts"), 12.0);
        assert_eq!(num(&r, "http503"), 8.0);
    });
}

#[test]
fn retry_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("retry", 110));
}
