//! Code shared by the echo examples: the fiber echo server and the load generator.
#![allow(dead_code)]
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::net::{TcpListener, TcpStream};

/// Minimal `--flag value` parsing: the value after `name`, parsed, or `default`.
pub(crate) fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
        })
        .unwrap_or(default)
}

/// Is `e` "out of fds" (accept under fd exhaustion)?
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Accepts forever, one fiber per connection, echoing whatever arrives. Must run in a fiber.
/// Under fd exhaustion it backs off (sleeps) instead of spinning on `accept`.
pub(crate) fn serve_echo(listener: TcpListener) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                fiber::spawn(move || echo(stream));
            }
            Err(e) if is_fd_exhaustion(&e) => {
                eprintln!("accept: {e}; backing off");
                fiber::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            // Reset by the peer etc.: drop this connection, keep serving the others.
            Err(_) => return,
        }
    }
}

/// Results of one load run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) round_trips: u64,
    pub(crate) secs: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    pub(crate) errors: u64,
}

impl Report {
    pub(crate) fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.secs
    }
}

/// Runs `connections` fibers (on a runtime of `workers` workers), each sending `size`-byte
/// messages to the echo server at `addr` and waiting for the echo, for `warmup + duration`;
/// round trips in the `duration` window are counted and their latencies recorded.
pub(crate) fn run_load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    size: usize,
    workers: usize,
) -> Report {
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("client runtime");
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(|| {
        // Connect first, so the measured window holds only round trips.
        let streams: Vec<TcpStream> = (0..connections)
            .map(|_| {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).unwrap();
                s
            })
            .collect();
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + duration;
        let handles: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                let stop = stop.clone();
                fiber::spawn(move || {
                    let msg = vec![0xabu8; size];
                    let mut back = vec![0u8; size];
                    let mut lat = Vec::with_capacity(4096);
                    let mut errors = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        if s.write_all(&msg)
                            .and_then(|_| s.read_exact(&mut back))
                            .is_err()
                        {
                            errors += 1;
                            break;
                        }
                        let t1 = Instant::now();
                        if t0 >= measure_from && t1 <= end {
                            lat.push((t1 - t0).as_nanos() as u64);
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        fiber::sleep(end.saturating_duration_since(Instant::now()));
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut errors = 0;
        for h in handles {
            let (lat, e) = h.join().expect("client fiber");
            all.extend(lat);
            errors += e;
        }
        all.sort_unstable();
        let pct = |p: f64| {
            if all.is_empty() {
                Duration::ZERO
            } else {
                let i = ((all.len() as f64 * p) as usize).min(all.len() - 1);
                Duration::from_nanos(all[i])
            }
        };
        Report {
            round_trips: all.len() as u64,
            secs: duration.as_secs_f64(),
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            errors,
        }
    })
}
