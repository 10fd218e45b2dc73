//! Spawn + join throughput: fiber vs tokio tasks vs may coroutines vs std threads.
//!
//! One iteration spawns `n` trivial workers from inside a worker of the same kind and then joins
//! them all (all `n` are live at once; bodies in support/src/workloads/spawn.rs). Criterion
//! reports time per iteration and elements/s; the per-task figure is time / n. Sizes: 100k for fiber and tokio; may
//! cannot map stacks for 100k live coroutines here ("failed to alloc sys stack: Cannot allocate
//! memory", `vm.max_map_count`) and std threads cannot hold 100k live threads either (`ulimit -u`,
//! `vm.max_map_count`), so every kind also runs at 10k.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

use fiber_support::workloads::spawn;
use fiber_support::{bench, rt};

const WORKERS: usize = 2;

fn bench(c: &mut Criterion) {
    let fiber_rt = rt::fiber_rt(WORKERS);
    let tokio_rt = rt::tokio_rt(WORKERS);
    may::config().set_workers(WORKERS);

    let mut group = c.benchmark_group("spawn_join");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in [10_000u64, 100_000] {
        let expect = n * (n - 1) / 2;
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("fiber", n), &n, |b, &n| {
            b.iter(|| assert_eq!(spawn::fiber(&fiber_rt, n), expect))
        });
        group.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
            b.iter(|| assert_eq!(spawn::tokio(&tokio_rt, n), expect))
        });
        if n <= 10_000 {
            group.bench_with_input(BenchmarkId::new("may", n), &n, |b, &n| {
                b.iter(|| assert_eq!(spawn::may(n), expect))
            });
            group.bench_with_input(BenchmarkId::new("std_thread", n), &n, |b, &n| {
                b.iter(|| assert_eq!(spawn::std(n), expect))
            });
        }
    }
    group.finish();
}

fn main() {
    bench::main_with(bench);
}
