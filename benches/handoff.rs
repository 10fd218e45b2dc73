//! Park/unpark handoff between two fibers on different workers, vs tokio tasks ping-ponging
//! through two `Notify`s on a 2-worker runtime, vs std threads ping-ponging with park/unpark.
//! (may is left out: its coroutine park/unpark ping-pong hung once here, one of its threads
//! spinning in `sched_yield` for minutes, which would stall the whole `cargo bench`.)
//!
//! Two more pairs run the same ping-pong within one thread (one-worker fiber runtime, tokio
//! current-thread runtime), to separate the park/unpark cost from the cross-thread wake-up.
//!
//! One criterion iteration is one handoff (A wakes B and waits; B wakes A is the next handoff), so
//! a round trip is two iterations. The two fibers are pinned to different workers: the first
//! spins (without yielding) until the second has started, which can then only have been started by
//! the other worker, and started fibers never migrate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;

use fiber_support::{bench, rt};

/// The shared turn counter: side 0 runs on even values, side 1 on odd ones; both stop once it
/// reaches the limit.
struct Turn(AtomicU64);

impl Turn {
    /// Parks until it is `side`'s turn or the run is over; returns the counter.
    fn wait_for(&self, side: u64, limit: u64, park: impl Fn()) -> u64 {
        loop {
            let t = self.0.load(Ordering::Acquire);
            if t % 2 == side || t >= limit {
                return t;
            }
            park();
        }
    }
}

/// With `pin`, the partner is held off this worker until another worker has started it; without,
/// on a one-worker runtime, both fibers share the worker.
fn fiber_handoff(rt: &fiber::Runtime, handoffs: u64, pin: bool) -> Duration {
    rt.block_on(|| {
        let turn = Arc::new(Turn(AtomicU64::new(0)));
        let started = Arc::new(AtomicBool::new(false));
        let me = fiber::current();
        let (turn2, started2) = (turn.clone(), started.clone());
        let partner = fiber::spawn(move || {
            let a = me;
            started2.store(true, Ordering::Release);
            loop {
                let t = turn2.wait_for(1, handoffs, fiber::park);
                if t >= handoffs {
                    return;
                }
                turn2.0.store(t + 1, Ordering::Release);
                a.unpark();
            }
        });
        let b = partner.fiber().clone();
        // Hold this worker until the other one has taken the partner (see module docs).
        while pin && !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let start = Instant::now();
        loop {
            let t = turn.wait_for(0, handoffs, fiber::park);
            if t >= handoffs {
                break;
            }
            turn.0.store(t + 1, Ordering::Release);
            b.unpark();
        }
        let elapsed = start.elapsed();
        partner.join().unwrap();
        elapsed
    })
}

fn tokio_handoff(rt: &tokio::runtime::Runtime, handoffs: u64) -> Duration {
    use tokio::sync::Notify;
    rt.block_on(async move {
        let to_a = Arc::new(Notify::new());
        let to_b = Arc::new(Notify::new());
        let (to_a2, to_b2) = (to_a.clone(), to_b.clone());
        let b = tokio::spawn(async move {
            for _ in 0..handoffs.div_ceil(2) {
                to_b2.notified().await;
                to_a2.notify_one();
            }
        });
        let a = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..handoffs.div_ceil(2) {
                to_b.notify_one();
                to_a.notified().await;
            }
            start.elapsed()
        });
        let elapsed = a.await.unwrap();
        b.await.unwrap();
        elapsed
    })
}

fn thread_handoff(handoffs: u64) -> Duration {
    let turn = Arc::new(Turn(AtomicU64::new(0)));
    let me = std::thread::current();
    let turn2 = turn.clone();
    let partner = std::thread::spawn(move || loop {
        let t = turn2.wait_for(1, handoffs, std::thread::park);
        if t >= handoffs {
            return;
        }
        turn2.0.store(t + 1, Ordering::Release);
        me.unpark();
    });
    let b = partner.thread().clone();
    let start = Instant::now();
    loop {
        let t = turn.wait_for(0, handoffs, std::thread::park);
        if t >= handoffs {
            break;
        }
        turn.0.store(t + 1, Ordering::Release);
        b.unpark();
    }
    let elapsed = start.elapsed();
    partner.join().unwrap();
    elapsed
}

fn bench(c: &mut Criterion) {
    let fiber_rt = rt::fiber_rt(2);
    let fiber_rt1 = rt::fiber_rt(1);
    let tokio_rt1 = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokio_rt = rt::tokio_rt(2);

    let mut group = c.benchmark_group("handoff");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fiber_park_unpark", |b| {
        b.iter_custom(|iters| fiber_handoff(&fiber_rt, iters, true))
    });
    group.bench_function("tokio_notify", |b| {
        b.iter_custom(|iters| tokio_handoff(&tokio_rt, iters))
    });
    group.bench_function("std_thread_park_unpark", |b| b.iter_custom(thread_handoff));
    // The same ping-pong without crossing threads: both fibers on one worker, both tokio tasks on
    // a current-thread runtime. The difference to the pairs above is the cost of the cross-thread
    // wake-up.
    group.bench_function("fiber_park_unpark_one_worker", |b| {
        b.iter_custom(|iters| fiber_handoff(&fiber_rt1, iters, false))
    });
    group.bench_function("tokio_notify_current_thread", |b| {
        b.iter_custom(|iters| tokio_handoff(&tokio_rt1, iters))
    });
    group.finish();
}

fn main() {
    bench::main_with(bench);
}
