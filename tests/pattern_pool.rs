//! Smoke test of `examples/pool.rs`: many fibers share at most `--size` connections (the server
//! agrees), and a short checkout timeout turns waits into `TimedOut` errors, none lost.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn pool_serves_every_fiber_with_bounded_connections() {
    support::watchdog(120, || {
        let args = [
            "--fibers",
            "500",
            "--size",
            "8",
            "--latency-ms",
            "1",
            "--checkout-timeout-ms",
            "60000",
        ];
        let r = run_ok("pool", &args, 110).result();
        assert_eq!(num(&r, "ok"), 500.0);
        assert_eq!(num(&r, "timed_out") + num(&r, "failed"), 0.0);
        let opened = num(&r, "opened");
        assert!((1.0..=8.0).contains(&opened), "opened {opened}");
        assert_eq!(
            num(&r, "accepted"),
            opened,
            "the server saw other connections"
        );
    });
}

#[test]
fn pool_checkout_times_out_instead_of_waiting_forever() {
    support::watchdog(120, || {
        // 200 requests of 20 ms over 2 connections need 2 s; each fiber waits at most 50 ms.
        let args = [
            "--fibers",
            "200",
            "--size",
            "2",
            "--latency-ms",
            "20",
            "--checkout-timeout-ms",
            "50",
        ];
        let r = run_ok("pool", &args, 110).result();
        let (ok, timed_out) = (num(&r, "ok"), num(&r, "timed_out"));
        assert_eq!(ok + timed_out, 200.0, "{r:?}");
        assert_eq!(num(&r, "failed"), 0.0);
        assert!(ok >= 2.0 && timed_out > 0.0, "{r:?}");
        assert!(num(&r, "opened") <= 2.0);
    });
}

#[test]
fn pool_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("pool", 110));
}
