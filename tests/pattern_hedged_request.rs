//! Smoke test of `examples/hedged_request.rs`: the first good answer wins, and every attempt
//! still waiting — for its turn, or for its reply — is cancelled rather than waited for.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn the_fastest_late_attempt_wins_and_the_slow_one_is_cancelled_mid_request() {
    support::watchdog(120, || {
        // Attempt 0 waits 2 s for its reply; attempt 2 (sent at 100 ms) answers at about 120 ms.
        let args = ["--latencies-ms", "2000,400,20", "--hedge-ms", "50"];
        let r = run_ok("hedged_request", &args, 110).result();
        assert_eq!(num(&r, "winner"), 2.0);
        assert_eq!(num(&r, "attempts"), 3.0);
        assert_eq!(num(&r, "cancelled_waiting"), 2.0);
        assert_eq!(num(&r, "cancelled"), 2.0);
        assert!(
            num(&r, "elapsed_ms") < 1500.0,
            "the group waited for a loser: {r:?}"
        );
    });
}

#[test]
fn a_quick_first_answer_cancels_the_hedges_before_they_are_sent() {
    support::watchdog(120, || {
        let args = ["--latencies-ms", "10,10,10", "--hedge-ms", "1000"];
        let r = run_ok("hedged_request", &args, 110).result();
        assert_eq!(num(&r, "winner"), 0.0);
        assert_eq!(num(&r, "cancelled_before_sending"), 2.0);
        assert!(
            num(&r, "elapsed_ms") < 900.0,
            "a hedge was waited for: {r:?}"
        );
    });
}

#[test]
fn failing_replicas_are_skipped_and_all_failing_reports_every_error() {
    support::watchdog(120, || {
        let args = [
            "--latencies-ms",
            "10,30,500",
            "--failing",
            "0",
            "--hedge-ms",
            "20",
        ];
        let r = run_ok("hedged_request", &args, 110).result();
        assert_eq!(num(&r, "winner"), 1.0);
        assert_eq!(num(&r, "failed"), 1.0);
        assert_eq!(num(&r, "cancelled"), 1.0);
        let args = [
            "--latencies-ms",
            "10,20",
            "--failing",
            "0",
            "--failing",
            "1",
        ];
        let r = run_ok("hedged_request", &args, 110).result();
        assert_eq!(num(&r, "winner"), -1.0);
        assert_eq!(num(&r, "failed"), 2.0);
        assert_eq!(num(&r, "cancelled"), 0.0);
    });
}

#[test]
fn hedged_request_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("hedged_request", 110));
}
