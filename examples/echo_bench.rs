//! Echo benchmark: the same load generator (`echo_common::run_load`, fibers) against echo servers on
//! fiber, tokio, may and std threads (one thread per connection), at 100 and 1,000 connections with
//! 64-byte messages; prints a table with ratios to tokio.
//!
//! `cargo run --release --example echo_bench -- [--duration 5] [--warmup 1] [--size 64]
//!  [--conns 100,1000] [--servers fiber,tokio,may,std] [--workers 2] [--client-workers 2]
//!  [--client fiber|tokio]`
//!
//! `srv CPU/rt` is the server process's CPU time (user + system, from `/proc`) per round trip over
//! the whole run, in microseconds: less sensitive than throughput to other load on the machine.
//!
//! Each server runs in a child process (this program re-executed with `--serve <kind>`), so they
//! do not share threads, allocator state or fds; the client and server share the machine's cores.
mod demo;
mod echo_common;

use std::time::Duration;

fn main() {
    if let Some(kind) = std::env::args().skip_while(|a| a != "--serve").nth(1) {
        let workers: usize = echo_common::arg("--workers", 2);
        echo_common::serve(&kind, workers);
    }
    let duration = Duration::from_secs_f64(echo_common::arg("--duration", 5.0));
    let warmup = Duration::from_secs_f64(echo_common::arg("--warmup", 1.0));
    let size: usize = echo_common::arg("--size", 64);
    let workers: usize = echo_common::arg("--workers", 2);
    let client_workers: usize = echo_common::arg("--client-workers", 2);
    let client: String = echo_common::arg("--client", "fiber".to_string());
    let conns: Vec<usize> = echo_common::arg("--conns", "100,1000".to_string())
        .split(',')
        .map(|s| s.parse().expect("--conns"))
        .collect();
    let servers: Vec<String> = echo_common::arg("--servers", "fiber,tokio,may,std".to_string())
        .split(',')
        .map(str::to_string)
        .collect();
    println!(
        "echo bench: {size} B messages, {:?} per run after {:?} warm-up, server workers {workers}, {client} client with {client_workers} workers",
        duration, warmup
    );
    println!(
        "{:>6} {:>6} {:>12} {:>10} {:>10} {:>10} {:>8} {:>9} {:>11}",
        "server",
        "conns",
        "round trips/s",
        "p50",
        "p99",
        "p999",
        "errors",
        "vs tokio",
        "srv CPU/rt"
    );
    for &c in &conns {
        let mut results = Vec::new();
        for kind in &servers {
            let (mut child, addr) = echo_common::spawn_server(kind, workers);
            let cpu0 = demo::cpu_time(child.id());
            let r = match client.as_str() {
                "tokio" => {
                    echo_common::run_load_tokio(addr, c, duration, warmup, size, client_workers)
                }
                _ => echo_common::run_load(addr, c, duration, warmup, size, client_workers),
            };
            let cpu = demo::cpu_time(child.id()) - cpu0;
            let _ = child.kill();
            let _ = child.wait();
            let cpu_per_rt = cpu.as_secs_f64() * 1e6 / r.total_round_trips.max(1) as f64;
            results.push((kind.clone(), r, cpu_per_rt));
        }
        let tokio = results
            .iter()
            .find(|(k, _, _)| k == "tokio")
            .map(|(_, r, _)| r.per_sec());
        for (kind, r, cpu_per_rt) in &results {
            let ratio = tokio.map_or(String::from("-"), |t| format!("{:.2}x", r.per_sec() / t));
            println!(
                "{:>6} {:>6} {:>12.0} {:>10} {:>10} {:>10} {:>8} {:>9} {:>11.2}",
                kind,
                c,
                r.per_sec(),
                fmt(r.p50),
                fmt(r.p99),
                fmt(r.p999),
                r.errors,
                ratio,
                cpu_per_rt
            );
        }
    }
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}us", d.as_micros())
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    }
}
