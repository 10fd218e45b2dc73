//! Smoke test of `examples/pipeline.rs`: every item comes out exactly once, as a value or as an
//! error; the failing items do not stop the pipeline; every worker exits.
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn pipeline_reports_every_item_and_shuts_down() {
    support::watchdog(120, || {
        let args = [
            "--items",
            "300",
            "--workers",
            "8",
            "--capacity",
            "4",
            "--fail-every",
            "7",
            "--latency-ms",
            "1",
        ];
        let r = run_ok("pipeline", &args, 110).result();
        let good = (1..=300u128).filter(|i| i % 7 != 0);
        assert_eq!(num(&r, "processed"), 300.0);
        assert_eq!(num(&r, "ok"), good.clone().count() as f64);
        assert_eq!(num(&r, "failed"), (300 / 7) as f64);
        assert_eq!(r["sum"], good.map(|i| i * i).sum::<u128>().to_string());
        assert_eq!(num(&r, "exited"), 8.0);
    });
}

#[test]
fn pipeline_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("pipeline", 110));
}
