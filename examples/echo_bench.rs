//! Echo benchmark: the same load generator (`fiber_support::echo_load::run_load`, fibers) against echo servers on
//! fiber, tokio, may and std threads (one thread per connection), at 100 and 1,000 connections with
//! 64-byte messages; prints a table with ratios to tokio.
//!
//! `cargo run --release --example echo_bench -- [--duration 5] [--warmup 1] [--size 64]
//!  [--conns 100,1000] [--servers fiber,tokio,may,std] [--workers 2] [--client-workers 2]
//!  [--client fiber|tokio] [--rounds 3]`
//!
//! Each size is measured `--rounds` times, the server order rotated every round (the first server
//! measured after a 1,000-connection run was seen to be up to 15% slower than the same server
//! measured later), and the table shows each column's median over the rounds.
//!
//! `srv CPU/rt` is the server process's CPU time (user + system, from `/proc`) per round trip over
//! the whole run, in microseconds: less sensitive than throughput to other load on the machine.
//!
//! Each server runs in a child process (this program re-executed with `--serve <kind>`), so they
//! do not share threads, allocator state or fds; the client and server share the machine's cores.

use std::time::Duration;

use fiber_support::flags::{self, Flags};
use fiber_support::{cpu, echo, echo_load, fmt};

const USAGE: &str = "usage: echo_bench [--duration S] [--warmup S] [--size B] [--conns N,...]
                  [--servers KIND,...] [--workers N] [--client-workers N] [--client fiber|tokio]
                  [--rounds N]
  --duration        measured seconds per run (default 5)
  --warmup          seconds before measuring (default 1)
  --size            bytes per message (default 64)
  --conns           connection counts to measure (default 100,1000)
  --servers         servers to measure (default fiber,tokio,may,std)
  --workers         worker threads of each server (default 2)
  --client-workers  worker threads of the client (default 2)
  --client          the load generator: fiber or tokio (default fiber)
  --rounds          rounds per connection count; the table shows medians (default 3)";

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    echo::serve_if_asked(&mut flags);
    let duration = Duration::from_secs_f64(flags.get("--duration", 5.0));
    let warmup = Duration::from_secs_f64(flags.get("--warmup", 1.0));
    let size: usize = flags.get("--size", 64);
    let workers: usize = flags.get("--workers", 2);
    let client_workers: usize = flags.get("--client-workers", 2);
    let client: String = flags.get("--client", "fiber".to_string());
    let rounds: usize = flags.get("--rounds", 3);
    let conns: Vec<usize> = flags.list("--conns", "100,1000");
    let servers: Vec<String> = flags.list("--servers", "fiber,tokio,may,std");
    flags.done();
    if rounds == 0 {
        flags::fail(USAGE, "--rounds must be at least 1");
    }
    println!(
        "echo bench: {size} B messages, {:?} per run after {:?} warm-up, server workers {workers}, {client} client with {client_workers} workers; medians of {rounds} rounds, server order rotated each round",
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
    let load = Load {
        duration,
        warmup,
        size,
        client,
        client_workers,
    };
    for &c in &conns {
        // samples[i]: one (round trips/s, p50, p99, p999, errors, CPU per round trip) per round.
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
        for round in 0..rounds {
            for k in 0..servers.len() {
                let i = (k + round) % servers.len();
                samples[i].push(measure(&servers[i], workers, c, &load));
            }
        }
        let medians: Vec<Sample> = samples.iter().map(|s| median(s)).collect();
        let tokio = servers
            .iter()
            .position(|k| k == "tokio")
            .map(|i| medians[i].per_sec);
        for (kind, m) in servers.iter().zip(&medians) {
            let ratio = tokio.map_or(String::from("-"), |t| format!("{:.2}x", m.per_sec / t));
            println!(
                "{:>6} {:>6} {:>12.0} {:>10} {:>10} {:>10} {:>8} {:>9} {:>11.2}",
                kind,
                c,
                m.per_sec,
                fmt::latency(m.p50),
                fmt::latency(m.p99),
                fmt::latency(m.p999),
                m.errors,
                ratio,
                m.cpu_per_rt
            );
        }
    }
}

/// One run's figures.
#[derive(Clone, Copy)]
struct Sample {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    errors: u64,
    /// Server CPU time per round trip, µs.
    cpu_per_rt: f64,
}

/// The load generator's settings.
struct Load {
    duration: Duration,
    warmup: Duration,
    size: usize,
    client: String,
    client_workers: usize,
}

/// Starts a `kind` server with `workers` in a child process, runs `conns` connections of `load`
/// against it, stops it.
fn measure(kind: &str, workers: usize, conns: usize, load: &Load) -> Sample {
    let (mut child, addr) = echo::spawn_server(kind, workers);
    let cpu0 = cpu::cpu_time(child.id());
    let Load {
        duration,
        warmup,
        size,
        client_workers,
        ..
    } = *load;
    let r = match load.client.as_str() {
        "tokio" => echo_load::run_load_tokio(addr, conns, duration, warmup, size, client_workers),
        _ => echo_load::run_load(addr, conns, duration, warmup, size, client_workers),
    };
    let cpu = cpu::cpu_time(child.id()) - cpu0;
    let _ = child.kill();
    let _ = child.wait();
    Sample {
        per_sec: r.per_sec(),
        p50: r.p50,
        p99: r.p99,
        p999: r.p999,
        errors: r.errors,
        cpu_per_rt: cpu.as_secs_f64() * 1e6 / r.total_round_trips.max(1) as f64,
    }
}

/// Column-wise median (the upper one for an even count); errors are summed.
fn median(samples: &[Sample]) -> Sample {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v[v.len() / 2]
    }
    Sample {
        per_sec: mid(samples.iter().map(|s| s.per_sec).collect()),
        p50: mid(samples.iter().map(|s| s.p50).collect()),
        p99: mid(samples.iter().map(|s| s.p99).collect()),
        p999: mid(samples.iter().map(|s| s.p999).collect()),
        errors: samples.iter().map(|s| s.errors).sum(),
        cpu_per_rt: mid(samples.iter().map(|s| s.cpu_per_rt).collect()),
    }
}
