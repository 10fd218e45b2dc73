//! Smoke test of `examples/fan_out.rs` (ureq, unchanged): 200 requests of 100 ms finish in well
//! under 10 latencies with fibers (and with threads); every request succeeds. Without the hooks,
//! ureq would block the two carriers and fibers would take about 100 latencies.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn fan_out_200_requests_take_about_one_latency() {
    support::watchdog(120, || {
        let run = run_ok(
            "fan_out",
            &["--n", "200", "--latency-ms", "100", "--seq-sample", "2"],
            110,
        );
        let results = run.results();
        let mode = |m: &str| {
            results
                .iter()
                .find(|r| r["mode"] == m)
                .unwrap_or_else(|| panic!("no RESULT for {m}"))
                .clone()
        };
        let seq = mode("sequential");
        assert_eq!((num(&seq, "requests"), num(&seq, "ok")), (2.0, 2.0));
        assert!(
            num(&seq, "latencies") >= 2.0,
            "sequential cannot beat 2 latencies"
        );
        for m in ["os-threads", "fibers"] {
            let r = mode(m);
            assert_eq!((num(&r, "requests"), num(&r, "ok")), (200.0, 200.0), "{m}");
            assert!(
                num(&r, "latencies") >= 1.0,
                "{m}: faster than the server latency?"
            );
        }
        let fibers = num(&mode("fibers"), "latencies");
        assert!(
            fibers < 10.0,
            "fibers took {fibers} latencies for 200 requests"
        );
    });
}

#[test]
fn fan_out_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("fan_out", 110));
}
