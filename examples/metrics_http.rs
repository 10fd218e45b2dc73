//! Serves a runtime's metrics over HTTP in the Prometheus text exposition format, while a small
//! workload (sleeping, yielding, spawning fibers) keeps the counters moving.
//!
//! `cargo run --release --example metrics_http -- --port 9898 [--requests N] [--workers N]`, then
//! `curl http://127.0.0.1:9898/metrics`. `--requests N` answers N requests and exits (`--once`
//! is `--requests 1`), so a smoke test can scrape it; without either it serves until killed.
//! `--port 0` picks a free port; the address is printed as `listening on ADDR`.
//!
//! `GET /metrics` gets `Runtime::metrics().to_prometheus()` (`text/plain; version=0.0.4`), any
//! other path `404`. One request per connection (`Connection: close`), as Prometheus scrapes.
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fiber::net::{TcpListener, TcpStream};
use fiber_support::flags::Flags;

const USAGE: &str = "usage: metrics_http [--port P] [--workers N] [--requests N | --once]
  --port      port on 127.0.0.1 (default 9898; 0: any free port)
  --workers   worker threads (default 2)
  --requests  answer this many requests, then exit (default: serve forever)
  --once      the same as --requests 1";

/// Reads a request head (up to 8 KiB) and answers it; the path decides what.
fn answer(mut s: TcpStream, rt: &fiber::Runtime) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?"))
    {
        ("200 OK", rt.metrics().to_prometheus())
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(response.as_bytes())
}

/// Fibers that sleep, yield and spawn, so that the counters change between scrapes.
fn workload(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let kids: Vec<_> = (0..16)
            .map(|i| {
                fiber::spawn(move || {
                    fiber::yield_now();
                    fiber::sleep(Duration::from_millis(i % 4));
                })
            })
            .collect();
        for kid in kids {
            let _ = kid.join();
        }
        fiber::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let mut flags = Flags::parse(USAGE, &["--once"]);
    let port: u16 = flags.get("--port", 9898);
    let workers: usize = flags.get("--workers", 2);
    let once = flags.switch("--once");
    let requests: Option<u64> = flags.opt("--requests").or(once.then_some(1));
    flags.done();
    let rt = Arc::new(
        fiber::Runtime::builder()
            .worker_threads(workers)
            .build()
            .expect("runtime"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let load = rt.spawn(move || workload(s2));
    let rt2 = rt.clone();
    rt.block_on(move || {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        println!(
            "listening on {}",
            listener.local_addr().expect("local address")
        );
        let mut served = 0;
        while requests.is_none_or(|n| served < n) {
            let (s, _) = match listener.accept() {
                Ok(conn) => conn,
                Err(err) => {
                    eprintln!("accept: {err}");
                    continue;
                }
            };
            served += 1;
            let rt = rt2.clone();
            // Answered in its own fiber; a bounded run waits for it before exiting.
            let h = fiber::spawn(move || {
                if let Err(err) = answer(s, &rt) {
                    eprintln!("request: {err}");
                }
            });
            if requests.is_some() {
                let _ = h.join();
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    // The final table; stdout may be closed by now (a test that read only the first line).
    let _ = writeln!(std::io::stdout(), "{}", rt.metrics());
}
