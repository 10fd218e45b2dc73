//! Pipeline: a producer feeds a bounded channel, N worker fibers take items from it and call a
//! local server, a collector gathers the results. A failing item is reported and the pipeline
//! goes on; shutdown is clean: the producer drops its sender, workers drain the queue and exit,
//! the results channel closes when the last worker is gone.
//!
//! `cargo run --release --example pipeline -- --items 2000 --workers 16 --capacity 32`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fiber::sync::{mpmc, mpsc};

use fiber_support::flags::{self, Flags};
use fiber_support::http_client;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str = "usage: pipeline [--items N] [--workers W] [--capacity C] [--fail-every K] \
[--latency-ms MS]
  --items       items to produce (default 2000)
  --workers     worker fibers (default 16)
  --capacity    bound of the work queue (default 32)
  --fail-every  the server rejects every item divisible by K (default 7; 0 = never)
  --latency-ms  server latency per item (default 10)";

/// One worker's verdict on one item.
struct Outcome {
    worker: usize,
    item: u64,
    result: Result<u64, String>,
}

/// The work: ask the server for the square of `item`. Any failure becomes an `Err` for this item.
fn process(addr: SocketAddr, item: u64) -> Result<u64, String> {
    let resp = http_client::get(
        addr,
        &format!("/square/{item}"),
        Some(Duration::from_secs(10)),
    )
    .map_err(|e| format!("item {item}: {e}"))?;
    if resp.status != 200 {
        return Err(format!("item {item}: HTTP {}: {}", resp.status, resp.body));
    }
    resp.body.parse().map_err(|e| format!("item {item}: {e}"))
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let items: u64 = args.get("--items", 2000);
    let workers: usize = args.get("--workers", 16);
    let capacity: usize = args.get("--capacity", 32);
    let fail_every: u64 = args.get("--fail-every", 7);
    let latency = Duration::from_millis(args.get("--latency-ms", 10));
    args.done();
    if workers == 0 {
        flags::fail(USAGE, "--workers must be at least 1");
    }
    let server = Server::new(2, move |path| {
        fiber::sleep(latency);
        match path
            .strip_prefix("/square/")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(i) if fail_every > 0 && i % fail_every == 0 => Reply::error(500, "rejected"),
            Some(i) => Reply::ok((i * i).to_string()),
            None => Reply::error(404, "bad path"),
        }
    });
    let addr = server.addr;
    println!("pipeline: {items} items, {workers} workers, queue capacity {capacity}");
    let start = Instant::now();

    // Stage 1: the producer. `send` parks while the queue is full (backpressure).
    let (jobs, queue) = mpmc::bounded::<u64>(capacity);
    let producer = fiber::spawn(move || {
        let mut waited = Duration::ZERO;
        for item in 1..=items {
            let t = Instant::now();
            jobs.send(item).expect("workers gone");
            waited += t.elapsed();
        }
        waited // `jobs` is dropped here: the queue closes once drained
    });

    // Stage 2: the workers. `recv` fails once the queue is closed and empty: that is shutdown.
    let (results, collected) = mpsc::channel::<Outcome>();
    let pool: Vec<_> = (0..workers)
        .map(|worker| {
            let (queue, results) = (queue.clone(), results.clone());
            fiber::spawn(move || {
                for item in queue.iter() {
                    let result = process(addr, item);
                    results
                        .send(Outcome {
                            worker,
                            item,
                            result,
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    drop((queue, results)); // only the workers hold them now

    // Stage 3: the collector (this thread). The loop ends when the last worker has exited.
    let (mut ok, mut sum, mut errors) = (0u64, 0u128, Vec::new());
    let mut per_worker = vec![0usize; workers];
    for outcome in collected {
        per_worker[outcome.worker] += 1;
        match outcome.result {
            Ok(square) => {
                ok += 1;
                sum += u128::from(square);
                assert_eq!(square, outcome.item * outcome.item);
            }
            Err(e) => errors.push(e),
        }
    }
    let producer_waited = producer.join().unwrap();
    let exited = pool
        .into_iter()
        .map(|w| w.join())
        .filter(Result::is_ok)
        .count();
    let elapsed = start.elapsed();

    println!("done in {elapsed:.2?}: {ok} ok, {} failed", errors.len());
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    if errors.len() > 5 {
        println!("  ... and {} more", errors.len() - 5);
    }
    println!("producer waited {producer_waited:.2?} on a full queue (backpressure)");
    let (min, max) = (per_worker.iter().min(), per_worker.iter().max());
    println!(
        "items per worker: min {} max {}",
        min.unwrap(),
        max.unwrap()
    );
    println!("shutdown: {exited}/{workers} workers exited cleanly");
    let failed = errors.len();
    println!(
        "RESULT items={items} ok={ok} failed={failed} processed={} sum={sum} exited={exited}",
        per_worker.iter().sum::<usize>()
    );
}
