//! Load generator for echo servers: N connections, each a fiber sending fixed-size messages and
//! waiting for the echo; prints round trips per second and p50/p99/p999 latency.
//!
//! `cargo run --release --example echo_client -- --addr 127.0.0.1:7878 --connections 100
//!  --duration 10 --size 64 [--warmup 1] [--workers 2]`

use std::time::Duration;

use fiber_support::echo_load;
use fiber_support::flags::Flags;

const USAGE: &str = "usage: echo_client [--addr HOST:PORT] [--connections N] [--duration S]
                   [--warmup S] [--size B] [--workers N]
  --addr         the echo server (default 127.0.0.1:7878)
  --connections  connections, one fiber each (default 100)
  --duration     measured seconds (default 10)
  --warmup       seconds before measuring (default 1)
  --size         bytes per message (default 64)
  --workers      worker threads of the client (default 2)";

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    let addr: String = flags.get("--addr", "127.0.0.1:7878".to_string());
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .expect("resolve")
        .next()
        .expect("an address");
    let connections: usize = flags.get("--connections", 100);
    let duration: f64 = flags.get("--duration", 10.0);
    let warmup: f64 = flags.get("--warmup", 1.0);
    let size: usize = flags.get("--size", 64);
    let workers: usize = flags.get("--workers", 2);
    flags.done();
    let r = echo_load::run_load(
        addr,
        connections,
        Duration::from_secs_f64(duration),
        Duration::from_secs_f64(warmup),
        size,
        workers,
    );
    println!(
        "{connections} connections, {size} B: {:.0} round trips/s, p50 {:?}, p99 {:?}, p999 {:?}, errors {}",
        r.per_sec(),
        r.p50,
        r.p99,
        r.p999,
        r.errors
    );
}
