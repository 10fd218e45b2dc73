//! Load generator for echo servers: N connections, each a fiber sending fixed-size messages and
//! waiting for the echo; prints round trips per second and p50/p99/p999 latency.
//!
//! `cargo run --release --example echo_client -- --addr 127.0.0.1:7878 --connections 100
//!  --duration 10 --size 64 [--warmup 1] [--workers 2]`
mod echo_common;

use std::time::Duration;

fn main() {
    let addr: String = echo_common::arg("--addr", "127.0.0.1:7878".to_string());
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .expect("resolve")
        .next()
        .expect("an address");
    let connections: usize = echo_common::arg("--connections", 100);
    let duration: f64 = echo_common::arg("--duration", 10.0);
    let warmup: f64 = echo_common::arg("--warmup", 1.0);
    let size: usize = echo_common::arg("--size", 64);
    let workers: usize = echo_common::arg("--workers", 2);
    let r = echo_common::run_load(
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
