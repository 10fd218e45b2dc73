//! Smoke test of `examples/gather.rs`: every outcome is collected — values, errors and panics —
//! and they add up to the number of jobs.
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
fn gather_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("gather", 110));
}
