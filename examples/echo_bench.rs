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
mod echo_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn main() {
    if let Some(kind) = std::env::args().skip_while(|a| a != "--serve").nth(1) {
        let workers: usize = echo_common::arg("--workers", 2);
        serve(&kind, workers);
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
            let (mut child, addr) = spawn_server(kind, workers);
            let cpu0 = echo_common::cpu_time(child.id());
            let r = match client.as_str() {
                "tokio" => {
                    echo_common::run_load_tokio(addr, c, duration, warmup, size, client_workers)
                }
                _ => echo_common::run_load(addr, c, duration, warmup, size, client_workers),
            };
            let cpu = echo_common::cpu_time(child.id()) - cpu0;
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

/// Starts `this-exe --serve kind` and reads the address it listens on from its first line.
fn spawn_server(kind: &str, workers: usize) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", kind, "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("server address");
    let addr = line.trim().parse().expect("server printed its address");
    (child, addr)
}

fn announce(addr: SocketAddr) {
    println!("{addr}");
    std::io::stdout().flush().unwrap();
}

fn serve(kind: &str, workers: usize) -> ! {
    match kind {
        "fiber" => {
            let rt = fiber::Runtime::builder()
                .worker_threads(workers)
                .build()
                .unwrap();
            rt.block_on(|| {
                let l = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
                announce(l.local_addr().unwrap());
                echo_common::serve_echo(l)
            })
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                announce(l.local_addr().unwrap());
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    tokio::spawn(async move {
                        let _ = s.set_nodelay(true);
                        let mut buf = [0u8; 4096];
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            })
        }
        "may" => {
            may::config().set_workers(workers);
            let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
            announce(l.local_addr().unwrap());
            loop {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let body = move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                };
                // SAFETY: may requires that the coroutine not touch thread-locals across
                // blocking points (it may migrate); `body` uses only its socket and a stack buffer.
                unsafe { may::coroutine::spawn(body) };
            }
        }
        "std" => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            announce(l.local_addr().unwrap());
            loop {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
        other => panic!("unknown server kind {other}"),
    }
}
