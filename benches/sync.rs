//! fiber::sync against its peers, in one run: parking_lot / std for uncontended locking,
//! tokio::sync for contended locking and channels, std::sync::mpsc between threads and may's
//! coroutine channels for ping-pong. Run: `cargo bench --bench sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, BenchmarkId, Criterion};

use fiber_support::rt;
use fiber_support::workloads::{channel, mutex};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    if workers == 1 {
        rt::tokio_current_thread()
    } else {
        rt::tokio_rt(workers)
    }
}

/// Uncontended lock + unlock on one thread.
fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let m = fiber::sync::Mutex::new(0u64);
    g.bench_function("fiber::sync::Mutex", |b| {
        b.iter(|| *black_box(&m).lock().unwrap() += 1)
    });
    let m = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot::Mutex", |b| {
        b.iter(|| *black_box(&m).lock() += 1)
    });
    let m = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&m).lock().unwrap() += 1)
    });
    g.finish();
}

const TASKS: usize = 1_000;
const INCREMENTS: usize = 100;

/// 1,000 fibers (tasks) each incrementing one shared counter 100 times under the mutex, on two
/// workers. One iteration = 100,000 lock/unlock pairs.
fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_contended_1000x100");
    g.throughput(criterion::Throughput::Elements((TASKS * INCREMENTS) as u64));
    let rt = rt::fiber_rt(2);
    g.bench_function("fiber::sync::Mutex (2 workers)", |b| {
        b.iter(|| mutex::fiber(&rt, TASKS, INCREMENTS))
    });
    drop(rt);
    let rt = tokio_rt(2);
    g.bench_function("tokio::sync::Mutex (2 workers)", |b| {
        b.iter(|| mutex::tokio(&rt, TASKS, INCREMENTS))
    });
    g.finish();
}

/// One round trip = a message there and one back, between two fibers / tasks / threads.
fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel_ping_pong_round_trip");
    for workers in [1, 2] {
        let rt = rt::fiber_rt(workers);
        g.bench_function(
            BenchmarkId::new("fiber::sync::mpsc", format!("{workers}w")),
            |b| b.iter_custom(|iters| channel::fiber(&rt, iters)),
        );
        drop(rt);
        let rt = tokio_rt(workers);
        g.bench_function(
            BenchmarkId::new("tokio::sync::mpsc", format!("{workers}w")),
            |b| b.iter_custom(|iters| channel::tokio(&rt, iters)),
        );
    }
    // The one-worker reference figure is tokio's current-thread scheduler.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    g.bench_function(
        BenchmarkId::new("tokio::sync::mpsc", "current_thread"),
        |b| b.iter_custom(|iters| channel::tokio(&rt, iters)),
    );
    g.bench_function("std::sync::mpsc (2 threads)", |b| {
        b.iter_custom(channel::std)
    });
    may::config().set_workers(2);
    g.bench_function("may::sync::mpsc (2 workers)", |b| {
        b.iter_custom(channel::may)
    });
    g.finish();
}

const PRODUCERS: usize = 100;
const CONSUMERS: usize = 100;
const PER_PRODUCER: usize = 1_000;

/// 100 producers, 100 consumers, one bounded channel of 1,024; one iteration = 100,000 messages.
fn producer_consumer(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_100p_100c_bounded_1024");
    g.throughput(criterion::Throughput::Elements(
        (PRODUCERS * PER_PRODUCER) as u64,
    ));
    let rt = rt::fiber_rt(2);
    g.bench_function("fiber::sync::mpmc (fibers, 2 workers)", |b| {
        b.iter(|| {
            let sum = AtomicU64::new(0);
            rt.block_on(|| {
                let (tx, rx) = fiber::sync::mpmc::bounded::<u64>(1_024);
                fiber::scope(|s| {
                    for _ in 0..PRODUCERS {
                        let tx = tx.clone();
                        s.spawn(move || {
                            for i in 0..PER_PRODUCER as u64 {
                                tx.send(i).unwrap();
                            }
                        });
                    }
                    for _ in 0..CONSUMERS {
                        let rx = rx.clone();
                        let sum = &sum;
                        s.spawn(move || {
                            let mut local = 0;
                            for v in rx.iter() {
                                local += v;
                            }
                            sum.fetch_add(local, Ordering::Relaxed);
                        });
                    }
                    drop((tx, rx));
                });
            });
            assert_eq!(sum.into_inner(), PRODUCERS as u64 * 499_500);
        })
    });
    drop(rt);
    g.bench_function("fiber::sync::mpmc (200 OS threads)", |b| {
        b.iter(|| {
            let sum = AtomicU64::new(0);
            let (tx, rx) = fiber::sync::mpmc::bounded::<u64>(1_024);
            std::thread::scope(|s| {
                for _ in 0..PRODUCERS {
                    let tx = tx.clone();
                    s.spawn(move || {
                        for i in 0..PER_PRODUCER as u64 {
                            tx.send(i).unwrap();
                        }
                    });
                }
                for _ in 0..CONSUMERS {
                    let rx = rx.clone();
                    let sum = &sum;
                    s.spawn(move || {
                        let mut local = 0;
                        for v in rx.iter() {
                            local += v;
                        }
                        sum.fetch_add(local, Ordering::Relaxed);
                    });
                }
                drop((tx, rx));
            });
            assert_eq!(sum.into_inner(), PRODUCERS as u64 * 499_500);
        })
    });
    let rt = tokio_rt(2);
    g.bench_function(
        "tokio::sync::mpsc + shared receiver (tasks, 2 workers)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1_024);
                    let rx = Arc::new(tokio::sync::Mutex::new(rx));
                    let mut hs = Vec::new();
                    for _ in 0..PRODUCERS {
                        let tx = tx.clone();
                        hs.push(tokio::spawn(async move {
                            for i in 0..PER_PRODUCER as u64 {
                                tx.send(i).await.unwrap();
                            }
                            0
                        }));
                    }
                    drop(tx);
                    for _ in 0..CONSUMERS {
                        let rx = rx.clone();
                        hs.push(tokio::spawn(async move {
                            let mut local = 0;
                            while let Some(v) = rx.lock().await.recv().await {
                                local += v;
                            }
                            local
                        }));
                    }
                    let mut sum = 0;
                    for h in hs {
                        sum += h.await.unwrap();
                    }
                    assert_eq!(sum, PRODUCERS as u64 * 499_500);
                })
            })
        },
    );
    g.finish();
}

/// Not a criterion measurement: the worst single `lock()` wait seen among 1,000 fibers on two
/// workers hammering one mutex (fairness), next to tokio's FIFO mutex.
fn worst_case_wait() {
    let rt = rt::fiber_rt(2);
    // Two rounds; the first warms the runtime (stack pool) and is not reported.
    for round in 0..2 {
        let m = fiber::sync::Mutex::new(0usize);
        let worst = AtomicU64::new(0);
        let t = Instant::now();
        rt.block_on(|| {
            fiber::scope(|s| {
                for _ in 0..TASKS {
                    s.spawn(|| {
                        for _ in 0..INCREMENTS {
                            let t = Instant::now();
                            let mut g = m.lock().unwrap();
                            worst.fetch_max(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            *g += 1;
                        }
                    });
                }
            })
        });
        if round == 1 {
            println!(
                "worst-case lock wait, fiber::sync::Mutex, 1000 fibers x 100 on 2 workers: {:?} \
                 (run {:?})",
                Duration::from_nanos(worst.load(Ordering::Relaxed)),
                t.elapsed()
            );
        }
    }
    let rt = tokio_rt(2);
    for round in 0..2 {
        let m = Arc::new(tokio::sync::Mutex::new(0usize));
        let worst = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        rt.block_on(async {
            let hs: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (m, worst) = (m.clone(), worst.clone());
                    tokio::spawn(async move {
                        for _ in 0..INCREMENTS {
                            let t = Instant::now();
                            let mut g = m.lock().await;
                            worst.fetch_max(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            *g += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        if round == 1 {
            println!(
                "worst-case lock wait, tokio::sync::Mutex, 1000 tasks x 100 on 2 workers: {:?} \
                 (run {:?})",
                Duration::from_nanos(worst.load(Ordering::Relaxed)),
                t.elapsed()
            );
        }
    }
}

fn main() {
    let mut c = config();
    worst_case_wait();
    uncontended(&mut c);
    contended(&mut c);
    ping_pong(&mut c);
    producer_consumer(&mut c);
    c.final_summary();
}
