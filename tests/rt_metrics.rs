//! `Runtime::metrics` (docs/observability.md, "Metrics"): after a workload of many fibers, at
//! quiescence, the counts add up exactly.
mod support;

use std::time::{Duration, Instant};

use support::{scaled, watchdog};

/// Waits until no fiber is started or queued (the last fibers' workers may still be finishing
/// them after their results were delivered), then returns the snapshot.
fn quiescent(rt: &fiber::Runtime) -> fiber::Metrics {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let m = rt.metrics();
        if m.fibers_started_live == 0 && m.fibers_queued == 0 && m.fibers_live == 0 {
            return m;
        }
        assert!(Instant::now() < give_up, "never quiescent: {m:#?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn metrics_add_up_after_many_fibers() {
    watchdog(120, || {
        let outer = scaled(2_000, 300);
        const CHILDREN: usize = 4;
        let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        let before = rt.metrics();
        assert_eq!(before.fibers_spawned, 0);
        assert_eq!(before.workers, 2);
        // From outside (injector) and from fibers (deques); each fiber sleeps once and yields
        // once; half the children are joined, half detached.
        let handles: Vec<_> = (0..outer)
            .map(|i| {
                rt.spawn(move || {
                    let kids: Vec<_> = (0..CHILDREN)
                        .map(|k| {
                            fiber::spawn(move || {
                                fiber::yield_now();
                                fiber::sleep(Duration::from_micros(((i + k) % 50) as u64));
                            })
                        })
                        .collect();
                    fiber::sleep(Duration::from_micros((i % 100) as u64));
                    fiber::yield_now();
                    for (k, kid) in kids.into_iter().enumerate() {
                        if k % 2 == 0 {
                            kid.join().unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let m = quiescent(&rt);
        let fibers = (outer * (1 + CHILDREN)) as u64;
        assert_eq!(m.fibers_spawned, fibers, "{m:#?}");
        assert_eq!(m.fibers_finished, fibers, "{m:#?}");
        assert_eq!(m.fibers_spawned, m.fibers_finished + m.fibers_live);
        assert_eq!(m.fibers_live, m.fibers_started_live + m.fibers_queued);
        // Each fiber slept once and yielded once, and was resumed at least three times.
        assert!(m.parks >= fibers, "{m:#?}");
        assert!(m.yields >= fibers, "{m:#?}");
        assert!(m.switches >= 3 * fibers, "{m:#?}");
        // Parks by reason add up to the parks, and name what these fibers waited in.
        let by_reason: u64 = m.parks_by_reason.iter().map(|(_, n)| n).sum();
        assert_eq!(by_reason, m.parks, "{m:#?}");
        let count = |reason: &str| {
            m.parks_by_reason
                .iter()
                .find(|(r, _)| *r == reason)
                .map_or(0, |(_, n)| *n)
        };
        assert!(count("sleep") > 0 && count("join") > 0, "{m:#?}");
        assert!(m
            .to_prometheus()
            .contains("fiber_parks_by_reason_total{reason=\"sleep\"}"));
        assert_eq!(m.per_worker.len(), 2);
        let per_worker_switches: u64 = m.per_worker.iter().map(|w| w.switches).sum();
        assert_eq!(per_worker_switches, m.switches);
        for w in &m.per_worker {
            assert!(w.busy + w.idle <= m.uptime + Duration::from_millis(1));
        }
        assert_eq!(m.watchdog_reports, 0, "{m:#?}");
        // One more round from inside a fiber, counted by the same runtime.
        let again = rt.block_on(|| {
            fiber::spawn(|| ()).join().unwrap();
            fiber::metrics().fibers_spawned
        });
        assert!(again >= fibers + 2);
        let m = quiescent(&rt);
        assert_eq!(m.fibers_spawned, fibers + 2);
        assert_eq!(m.fibers_finished, fibers + 2);
        assert!(m.to_string().contains("spawned"));
    });
}

#[test]
fn the_blocking_pool_and_reactor_are_counted() {
    watchdog(60, || {
        let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
        rt.block_on(|| {
            fiber::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)));
            let listener = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = fiber::spawn(move || {
                use std::io::Write;
                let mut s = fiber::net::TcpStream::connect(addr).unwrap();
                fiber::sleep(Duration::from_millis(5));
                s.write_all(b"x").unwrap();
            });
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1];
            use std::io::Read;
            s.read_exact(&mut buf).unwrap();
            client.join().unwrap();
        });
        let m = rt.metrics();
        // The pool is the process's: other tests may use it too; its idle threads stay 10 s.
        assert!(m.blocking_threads >= 1, "{m:#?}");
        assert!(m.reactor_polls >= 1 && m.reactor_events >= 1, "{m:#?}");
    });
}
