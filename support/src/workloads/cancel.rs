//! Cancellation: `n` units wait in a sleep of an hour; once all are asleep the clock starts, every
//! one is cancelled and then joined. Time / n is the cost of one cancel, from the request to the
//! joiner seeing the outcome (for n = 1: the latency of one cancel). fiber: `JoinHandle::cancel`
//! of fibers in `fiber::sleep`; tokio: `JoinHandle::abort` of tasks in `tokio::time::sleep`. Both
//! from inside a worker of a 2-worker runtime. A std thread cannot be cancelled.
//!
//! Also the cost of a deadline that does not expire: `fiber::timeout` and `tokio::time::timeout`
//! around a call that returns at once, per call, on one worker.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// The fiber body: time to cancel and join `n` sleeping fibers.
pub fn fiber(rt: &fiber::Runtime, n: u64) -> Duration {
    rt.block_on(|| {
        let asleep = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let asleep = asleep.clone();
                fiber::spawn(move || {
                    asleep.fetch_add(1, Ordering::Relaxed);
                    fiber::sleep(HOUR);
                })
            })
            .collect();
        while asleep.load(Ordering::Relaxed) < n {
            fiber::sleep(Duration::from_millis(1));
        }
        // The last one counted itself just before its sleep: let it get there.
        fiber::sleep(Duration::from_millis(5));
        let start = Instant::now();
        for h in &handles {
            h.cancel();
        }
        for h in handles {
            let err = h.join().expect_err("a cancelled sleeper cannot finish");
            assert!(err.is::<fiber::Cancelled>(), "unwound by a cancel");
        }
        start.elapsed()
    })
}

/// The tokio body: time to abort and await `n` sleeping tasks.
pub fn tokio(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let asleep = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let asleep = asleep.clone();
                tokio::spawn(async move {
                    asleep.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(HOUR).await;
                })
            })
            .collect();
        while asleep.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let start = Instant::now();
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let err = h.await.expect_err("an aborted sleeper cannot finish");
            assert!(err.is_cancelled(), "ended by the abort");
        }
        start.elapsed()
    })
}

/// `fiber::timeout` around a call that returns at once, `calls` times, on one worker.
pub fn fiber_timeout(rt: &fiber::Runtime, calls: u64) -> Duration {
    rt.block_on(|| {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..calls {
            sum += fiber::timeout(HOUR, || black_box(i)).expect("an hour does not pass");
        }
        black_box(sum);
        start.elapsed()
    })
}

/// `tokio::time::timeout` around a future that is ready at once, `calls` times.
pub fn tokio_timeout(rt: &tokio::runtime::Runtime, calls: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..calls {
            sum += tokio::time::timeout(HOUR, async { black_box(i) })
                .await
                .expect("an hour does not pass");
        }
        black_box(sum);
        start.elapsed()
    })
}
