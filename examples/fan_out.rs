//! Fan-out: N independent requests to a server that answers after a fixed latency, done three
//! ways — one after another, one OS thread per request, one fiber per request — with the same
//! blocking client code: the `ureq` HTTP client, unchanged (with fibers, the hooks park the fiber
//! while ureq waits, not the thread). Fibers finish N requests in about one latency, plus the CPU time the
//! machine needs to open, serve and close N connections (the `cpu time` column: client and server
//! processes together; on a machine with few cores that dominates once N is in the thousands).
//!
//! `cargo run --release --example fan_out -- --n 10000 --latency-ms 100`

use std::time::{Duration, Instant};

use fiber_support::flags::{self, Flags};
use fiber_support::http_server::ChildServer;
use fiber_support::{cpu, fdlimit, fmt};

const USAGE: &str = "usage: fan_out [--n REQUESTS] [--latency-ms MS] [--seq-sample REQUESTS]
  --n           requests per mode (default 10000)
  --latency-ms  server latency per request (default 100)
  --seq-sample  requests actually run in the sequential mode, the rest is extrapolated
                (default 10; sequential 10000 x 100 ms would take 17 minutes)";

/// The request every mode makes: plain blocking ureq, true if the server answered 200 `done`.
/// Each request is a one-shot connection, and `Connection: close` asks the server to close
/// first, so the TIME_WAIT state stays on its side instead of holding N ephemeral ports here.
fn fetch(base: &str, i: usize) -> bool {
    let request = ureq::get(&format!("{base}/item/{i}"))
        .set("Connection", "close")
        .timeout(Duration::from_secs(30));
    match request.call().map(|resp| resp.into_string()) {
        Ok(Ok(body)) => body == "done",
        Ok(Err(e)) => {
            eprintln!("request {i}: reading the body: {e}");
            false
        }
        Err(e) => {
            eprintln!("request {i}: {e}");
            false
        }
    }
}

/// One after another.
fn sequential(base: &'static str, n: usize) -> usize {
    (0..n).filter(|&i| fetch(base, i)).count()
}

/// One OS thread per request (small stacks, so that 10,000 of them fit).
fn os_threads(base: &'static str, n: usize) -> usize {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || fetch(base, i))
                .expect("spawn thread")
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&ok| ok)
        .count()
}

/// One fiber per request: the same code as with threads, `fiber::spawn` instead of
/// `thread::spawn`.
fn fibers(base: &'static str, n: usize) -> usize {
    let handles: Vec<_> = (0..n)
        .map(|i| fiber::spawn(move || fetch(base, i)))
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&ok| ok)
        .count()
}

fn main() {
    ChildServer::serve_if_child();
    let mut args = Flags::parse(USAGE, &[]);
    let n: usize = args.get("--n", 10_000);
    let latency_ms: u64 = args.get("--latency-ms", 100);
    let seq_sample: usize = args.get("--seq-sample", 10);
    args.done();
    if n == 0 || seq_sample == 0 {
        flags::fail(USAGE, "--n and --seq-sample must be at least 1");
    }
    let seq_sample = seq_sample.min(n);
    // One fd per request in flight (the server, in a child process, has its own budget).
    let fds = fdlimit::raise_fd_limit(n as u64 + 64);
    if fds < n as u64 + 64 {
        flags::fail(USAGE, &format!("open-file limit {fds} too low for --n {n}"));
    }

    // A slow backend: answers every request after `latency`.
    let latency = Duration::from_millis(latency_ms);
    let server = ChildServer::start(latency);
    println!("fan_out: {n} requests per mode, server latency {latency_ms} ms");
    println!(
        "{:<11} {:>8} {:>8} {:>11} {:>11} {:>9} {:>11}",
        "mode", "requests", "ok", "wall time", "latencies", "speed-up", "cpu time"
    );
    let cpu = || cpu::cpu_time(std::process::id()) + server.cpu_time();

    let mut rows = Vec::new();
    // Shared by every request of every mode (threads need `'static`).
    let base: &'static str = format!("http://{}", server.addr).leak();
    type Mode = fn(&'static str, usize) -> usize;
    let modes = [
        ("sequential", sequential as Mode, seq_sample),
        ("os-threads", os_threads, n),
        ("fibers", fibers, n),
    ];
    for (name, run, requests) in modes {
        let (t, cpu0) = (Instant::now(), cpu());
        let ok = run(base, requests);
        rows.push((name, requests, ok, t.elapsed(), cpu() - cpu0));
    }
    let seq_all = rows[0].3.mul_f64(n as f64 / seq_sample as f64); // extrapolated to n

    for &(name, requests, ok, time, cpu) in &rows {
        let latencies = time.as_secs_f64() / latency.as_secs_f64().max(1e-9);
        let speed_up = seq_all.as_secs_f64() / time.as_secs_f64() * requests as f64 / n as f64;
        println!(
            "{name:<11} {requests:>8} {ok:>8} {:>11} {latencies:>11.1} {speed_up:>8.1}x {:>11}",
            fmt::ms(time),
            fmt::ms(cpu)
        );
    }
    if seq_sample < n {
        println!(
            "(sequential: {seq_sample} of {n} run; all {n} would take about {:.1} s)",
            seq_all.as_secs_f64()
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("(cpu time: client and server processes together, {cores} cores available)");
    for (name, requests, ok, time, cpu) in rows {
        println!(
            "RESULT mode={name} requests={requests} ok={ok} elapsed_ms={} latencies={:.2} cpu_ms={}",
            time.as_millis(),
            time.as_secs_f64() / latency.as_secs_f64().max(1e-9),
            cpu.as_millis()
        );
    }
}
