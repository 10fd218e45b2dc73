//! An HTTP/1.1 keep-alive "hello world" server on fibers, for `wrk`.
//!
//! `cargo run --release --example http_hello -- --addr 127.0.0.1:8080 --workers 2`, then
//! `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//!
//! Every valid request gets the same `200 OK` "Hello world" (pipelined requests are answered in
//! order, one write per batch). The request handling is in `fiber_support::http_parse`, without I/O: heads are
//! parsed by `httparse`; malformed requests get `400`, heads over 8 KiB `431`, versions other than
//! HTTP/1.0 and 1.1 `505`, `Transfer-Encoding` `501`, bodies over 1 MiB `413`, each followed by
//! closing the connection; `Content-Length` bodies are skipped. See docs/patterns.md.
//!
//! Timeouts: a connection idle between requests is closed after `--idle-timeout-ms` (30 s); a
//! request (head and body) must arrive in full within `--request-timeout-ms` (10 s) of the answer
//! to the one before (or of its first byte), else `408` and close — one slow byte at a time does
//! not hold a connection forever. Writes time out after the idle timeout too.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use fiber::net::TcpStream;

use fiber_support::flags::Flags;
use fiber_support::http_parse::{Conn, Limits, Progress};
use fiber_support::{fdlimit, http_server};

#[derive(Clone, Copy)]
struct Timeouts {
    idle: Duration,
    request: Duration,
}

fn serve(mut s: TcpStream, timeouts: Timeouts) {
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(timeouts.idle));
    let mut conn = Conn::new(Limits::DEFAULT);
    let mut chunk = vec![0u8; 8192];
    let mut out = Vec::new();
    // The read timeout in effect: the idle timeout between requests, what is left of the
    // request's deadline inside one (set only when it changes: the hot path sets nothing).
    let mut timeout = timeouts.idle;
    if s.set_read_timeout(Some(timeout)).is_err() {
        return;
    }
    let mut deadline: Option<(Instant, u64)> = None; // and the request count it belongs to
    loop {
        let wanted = match deadline {
            None => timeouts.idle,
            Some((at, _)) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return expire(s, &mut conn, &mut out),
            },
        };
        if wanted != timeout {
            timeout = wanted;
            if s.set_read_timeout(Some(timeout)).is_err() {
                return;
            }
        }
        let n = match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if is_timeout(&e) && deadline.is_some() => {
                return expire(s, &mut conn, &mut out);
            }
            Err(_) => return, // idle timeout, reset, ...
        };
        let progress = conn.received(&chunk[..n], &mut out);
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        match progress {
            Progress::Idle => deadline = None,
            Progress::InRequest => {
                // A new deadline for each request: when its first byte arrives, or when the
                // request before it is answered (pipelining).
                let answered = conn.answered();
                if deadline.is_none_or(|(_, count)| count != answered) {
                    deadline = Some((Instant::now() + timeouts.request, answered));
                }
            }
            Progress::Close => return http_server::linger(s),
        }
    }
}

/// The request missed its deadline: `408`, then close.
fn expire(mut s: TcpStream, conn: &mut Conn, out: &mut Vec<u8>) {
    conn.timed_out(out);
    if s.write_all(out).is_ok() {
        http_server::linger(s);
    }
}

/// A read timeout, as std reports it on Unix (`WouldBlock`) or as `TimedOut`.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

const USAGE: &str = "usage: http_hello [--addr HOST:PORT] [--workers N] [--idle-timeout-ms MS]
                  [--request-timeout-ms MS]
  --addr                where to listen (default 127.0.0.1:8080)
  --workers             worker threads (default 2)
  --idle-timeout-ms     close a connection idle between requests this long (default 30000)
  --request-timeout-ms  a request must arrive in full within this (default 10000)";

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    let addr: String = flags.get("--addr", "127.0.0.1:8080".to_string());
    let workers: usize = flags.get("--workers", 2);
    let mut ms = |name, default: u64| Duration::from_millis(flags.get(name, default).max(1));
    let timeouts = Timeouts {
        idle: ms("--idle-timeout-ms", 30_000),
        request: ms("--request-timeout-ms", 10_000),
    };
    flags.done();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    rt.block_on(|| {
        let listener = fiber::net::TcpListener::bind(&addr).expect("bind");
        println!("http on http://{}/", listener.local_addr().unwrap());
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    fiber::spawn(move || serve(s, timeouts));
                }
                Err(e) if fdlimit::is_fd_exhaustion(&e) => fiber::sleep(Duration::from_millis(50)),
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}
