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
        assert_eq!(num(&r, "deadlines"), 0.0);
    });
}

/// The overall deadline cuts an item off mid-attempt. Timeout 1.5 s, deadline 2.25 s: items
/// with i % 5 of 0, 1, 2 finish by about 1.5 s; 3 and 4 are in their third attempt (a hang,
/// which would time out at about 3 s) when the deadline passes, 0.75 s from either edge.
#[test]
fn retry_deadline_cuts_items_off_mid_attempt() {
    support::watchdog(120, || {
        let args = [
            "--items",
            "10",
            "--max-attempts",
            "4",
            "--timeout-ms",
            "1500",
            "--backoff-ms",
            "5",
            "--deadline-ms",
            "2250",
        ];
        let r = run_ok("retry", &args, 110).result();
        assert_eq!(num(&r, "ok"), 6.0);
        assert_eq!(num(&r, "gave_up"), 4.0);
        // Per 5 items: 1 + 2 + 3 + 3 + 3 attempts, the last two items' third one cut off.
        assert_eq!(num(&r, "attempts"), 24.0);
        assert_eq!(num(&r, "server_attempts"), 24.0);
        assert_eq!(num(&r, "deadlines"), 4.0);
        assert_eq!(num(&r, "timeouts"), 8.0);
        assert_eq!(num(&r, "http503"), 6.0);
    });
}

#[test]
fn retry_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("retry", 110));
}
