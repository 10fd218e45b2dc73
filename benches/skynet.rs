//! Skynet: a 10-ary tree of workers, 1M leaves (1,111,111 workers in all), each leaf returning its
//! number and each inner node summing its children. fiber vs tokio tasks (2 workers each) vs may
//! coroutines. may cannot run the 1M tree here, nor the 100k one (it runs the tree breadth first,
//! so nearly every coroutine is live at once, and its guarded stacks fail to map: "failed to alloc
//! sys stack: Cannot allocate memory"), so it runs the 10k tree, which every peer also runs.

mod common;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

const WORKERS: usize = 2;

fn fiber_skynet(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let step = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| fiber::spawn(move || fiber_skynet(num + i * step, step)))
        .collect();
    children.into_iter().map(|h| h.join().unwrap()).sum()
}

fn tokio_skynet(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let step = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| tokio::spawn(tokio_skynet(num + i * step, step)))
            .collect();
        let mut sum = 0;
        for h in children {
            sum += h.await.unwrap();
        }
        sum
    })
}

fn may_skynet(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let step = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| common::may_go(move || may_skynet(num + i * step, step)))
        .collect();
    children.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Total number of workers in a tree of `leaves` leaves.
fn workers(leaves: u64) -> u64 {
    let mut total = 0;
    let mut level = leaves;
    while level >= 1 {
        total += level;
        level /= 10;
    }
    total
}

fn bench(c: &mut Criterion) {
    let fiber_rt = common::fiber_rt(WORKERS);
    let tokio_rt = common::tokio_rt(WORKERS);
    may::config().set_workers(WORKERS);

    let mut group = c.benchmark_group("skynet");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for leaves in [10_000u64, 1_000_000] {
        let expect = leaves * (leaves - 1) / 2;
        group.throughput(Throughput::Elements(workers(leaves)));
        group.bench_with_input(BenchmarkId::new("fiber", leaves), &leaves, |b, &n| {
            b.iter(|| assert_eq!(fiber_rt.block_on(|| fiber_skynet(0, n)), expect))
        });
        group.bench_with_input(BenchmarkId::new("tokio", leaves), &leaves, |b, &n| {
            b.iter(|| {
                let sum = tokio_rt.block_on(async move { tokio::spawn(tokio_skynet(0, n)).await });
                assert_eq!(sum.unwrap(), expect)
            })
        });
        if leaves <= 10_000 {
            group.bench_with_input(BenchmarkId::new("may", leaves), &leaves, |b, &n| {
                b.iter(|| {
                    let root = common::may_go(move || may_skynet(0, n));
                    assert_eq!(root.join().unwrap(), expect)
                })
            });
        }
    }
    group.finish();
}

fn main() {
    common::main_with(bench);
}
