//! Skynet: a 10-ary tree of workers, 1M leaves (1,111,111 workers in all), each leaf returning its
//! number and each inner node summing its children (bodies in support/src/workloads/skynet.rs).
//! fiber vs tokio tasks (2 workers each) vs may coroutines. may cannot run the 1M tree here, nor the 100k
//! one (it runs the tree breadth first, so nearly every coroutine is live at once, and its guarded
//! stacks fail to map: "failed to alloc sys stack: Cannot allocate memory"), so it runs the 10k
//! tree, which every peer also runs.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

use fiber_support::workloads::skynet;
use fiber_support::{bench, rt};

const WORKERS: usize = 2;

fn bench(c: &mut Criterion) {
    let fiber_rt = rt::fiber_rt(WORKERS);
    let tokio_rt = rt::tokio_rt(WORKERS);
    may::config().set_workers(WORKERS);

    let mut group = c.benchmark_group("skynet");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for leaves in [10_000u64, 1_000_000] {
        let expect = leaves * (leaves - 1) / 2;
        group.throughput(Throughput::Elements(skynet::workers(leaves)));
        group.bench_with_input(BenchmarkId::new("fiber", leaves), &leaves, |b, &n| {
            b.iter(|| assert_eq!(skynet::fiber(&fiber_rt, n), expect))
        });
        group.bench_with_input(BenchmarkId::new("tokio", leaves), &leaves, |b, &n| {
            b.iter(|| assert_eq!(skynet::tokio(&tokio_rt, n), expect))
        });
        if leaves <= 10_000 {
            group.bench_with_input(BenchmarkId::new("may", leaves), &leaves, |b, &n| {
                b.iter(|| assert_eq!(skynet::may(n), expect))
            });
        }
    }
    group.finish();
}

fn main() {
    bench::main_with(bench);
}
