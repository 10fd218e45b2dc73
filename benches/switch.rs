//! Context-switch cost: two fibers alternating `yield_now` on one worker, vs may coroutines on one
//! worker, vs tokio `yield_now` on a current-thread runtime (without and with its drivers), vs a raw corosensei resume + suspend.
//!
//! One criterion iteration is one switch: for `iters` switches the two peers each yield
//! `iters / 2` times, so the reported time is total / (2N) as in the issue. The peers are
//! created inside the measured span, but their cost is spread over millions of switches.

mod common;
use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::Coroutine;
use criterion::Criterion;

fn fiber_switch(rt: &fiber::Runtime, switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    rt.block_on(|| {
        let start = Instant::now();
        let partner = fiber::spawn(move || {
            for _ in 0..per_side {
                fiber::yield_now();
            }
        });
        for _ in 0..per_side {
            fiber::yield_now();
        }
        partner.join().unwrap();
        start.elapsed()
    })
}

fn tokio_switch(rt: &tokio::runtime::Runtime, switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    rt.block_on(async move {
        let start = Instant::now();
        let a = tokio::spawn(async move {
            for _ in 0..per_side {
                tokio::task::yield_now().await;
            }
        });
        let b = tokio::spawn(async move {
            for _ in 0..per_side {
                tokio::task::yield_now().await;
            }
        });
        a.await.unwrap();
        b.await.unwrap();
        start.elapsed()
    })
}

fn may_switch(switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    let outer = common::may_go(move || {
        let start = Instant::now();
        let partner = common::may_go(move || {
            for _ in 0..per_side {
                may::coroutine::yield_now();
            }
        });
        for _ in 0..per_side {
            may::coroutine::yield_now();
        }
        partner.join().unwrap();
        start.elapsed()
    });
    outer.join().unwrap()
}

fn corosensei_switch(switches: u64) -> Duration {
    let mut co = Coroutine::new(|yielder, mut x: u64| loop {
        x = yielder.suspend(black_box(x));
    });
    let start = Instant::now();
    for i in 0..switches {
        black_box(co.resume(i));
    }
    let elapsed = start.elapsed();
    // Unwinds the suspended coroutine (it never returns on its own).
    drop(co);
    elapsed
}

fn bench(c: &mut Criterion) {
    let fiber_rt = common::fiber_rt(1);
    // tokio's fastest configuration (no I/O or time driver), and the usual one: with drivers
    // enabled, a current-thread runtime whose tasks all yielded polls the I/O driver each round.
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokio_rt_all = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    may::config().set_workers(1);

    let mut group = c.benchmark_group("switch");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fiber_yield_now", |b| {
        b.iter_custom(|iters| fiber_switch(&fiber_rt, iters))
    });
    group.bench_function("tokio_yield_now", |b| {
        b.iter_custom(|iters| tokio_switch(&tokio_rt, iters))
    });
    group.bench_function("tokio_yield_now_enable_all", |b| {
        b.iter_custom(|iters| tokio_switch(&tokio_rt_all, iters))
    });
    group.bench_function("may_yield_now", |b| b.iter_custom(may_switch));
    group.bench_function("corosensei_resume_suspend", |b| {
        b.iter_custom(corosensei_switch)
    });
    group.finish();
}

fn main() {
    common::main_with(bench);
}
