//! Smoke test of `examples/crawler.rs` (ureq, unchanged, on fibers): every page of the site is
//! visited, and fetched exactly once (counted by the server), with never more fetches in flight
//! than the semaphore allows, over no more connections than that (ureq's pool reuses them).
mod pattern_support;
mod support;

use pattern_support::{num, rejects_bad_flags, run_ok};

#[test]
fn crawler_visits_every_page_exactly_once() {
    support::watchdog(120, || {
        let args = ["--pages", "300", "--concurrency", "10", "--latency-ms", "2"];
        let r = run_ok("crawler", &args, 110).result();
        for key in ["visited", "fetched", "distinct"] {
            assert_eq!(num(&r, key), 300.0, "{key}");
        }
        assert_eq!(num(&r, "duplicates"), 0.0);
        assert_eq!(num(&r, "errors"), 0.0);
        let peak = num(&r, "peak");
        assert!(
            (1.0..=10.0).contains(&peak),
            "peak in flight {peak} > limit 10"
        );
        // A fetch opens a connection only when every pooled one is busy with another fetch.
        let connections = num(&r, "connections");
        assert!(
            (1.0..=10.0).contains(&connections),
            "{connections} connections for at most 10 fetches in flight"
        );
    });
}

/// A time budget stops the crawl: every fetch in flight is cancelled, at most one per fetch in
/// flight was cut off mid-answer, nothing was fetched twice, and the crawl ends soon after the
/// budget (2,000 pages at 20 ms, 10 at a time, would take about 4 s).
#[test]
fn crawler_time_budget_stops_every_fetch() {
    support::watchdog(120, || {
        let args = [
            "--pages",
            "2000",
            "--concurrency",
            "10",
            "--latency-ms",
            "20",
            "--budget-ms",
            "300",
        ];
        let r = run_ok("crawler", &args, 110).result();
        assert_eq!(num(&r, "stopped"), 1.0);
        let (fetched, complete) = (num(&r, "fetched"), num(&r, "complete"));
        assert!(
            (1.0..2000.0).contains(&complete),
            "{complete} pages complete"
        );
        assert!(
            (0.0..=10.0).contains(&(fetched - complete)),
            "{fetched} requests served, {complete} read in full: more cut off than in flight"
        );
        assert_eq!(num(&r, "duplicates"), 0.0);
        assert_eq!(num(&r, "errors"), 0.0);
        let ms = num(&r, "elapsed_ms");
        assert!((300.0..2000.0).contains(&ms), "stopped after {ms} ms");
    });
}

#[test]
fn crawler_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("crawler", 110));
}
