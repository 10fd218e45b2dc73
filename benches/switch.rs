//! Context-switch cost: two fibers alternating `yield_now` on one worker, vs may coroutines on one
//! worker, vs tokio `yield_now` on a current-thread runtime (without and with its drivers), vs a
//! raw corosensei resume + suspend (bodies in support/src/workloads/switch.rs).
//!
//! One criterion iteration is one switch: for `iters` switches the two peers each yield
//! `iters / 2` times, so the reported time is total / (2N) as in the issue.

use std::time::Duration;

use criterion::Criterion;

use fiber_support::workloads::switch;
use fiber_support::{bench, rt};

fn bench(c: &mut Criterion) {
    let fiber_rt = rt::fiber_rt(1);
    // tokio's fastest configuration (no I/O or time driver), and the usual one: with drivers
    // enabled, a current-thread runtime whose tasks all yielded polls the I/O driver each round.
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokio_rt_all = rt::tokio_current_thread();
    may::config().set_workers(1);

    let mut group = c.benchmark_group("switch");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fiber_yield_now", |b| {
        b.iter_custom(|iters| switch::fiber(&fiber_rt, iters))
    });
    group.bench_function("tokio_yield_now", |b| {
        b.iter_custom(|iters| switch::tokio(&tokio_rt, iters))
    });
    group.bench_function("tokio_yield_now_enable_all", |b| {
        b.iter_custom(|iters| switch::tokio(&tokio_rt_all, iters))
    });
    group.bench_function("may_yield_now", |b| b.iter_custom(switch::may));
    group.bench_function("corosensei_resume_suspend", |b| {
        b.iter_custom(switch::corosensei)
    });
    group.finish();
}

fn main() {
    bench::main_with(bench);
}
