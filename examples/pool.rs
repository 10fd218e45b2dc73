//! Pool: a bounded connection pool with a checkout timeout, shared by 10,000 fibers. At most
//! `--size` connections ever exist (a `Semaphore` of that many permits guards them); a fiber that
//! cannot get one within the timeout gets a `TimedOut` error instead of waiting forever. Idle
//! connections are reused (HTTP keep-alive), a broken one is dropped instead of returned.
//!
//! `cargo run --release --example pool -- --fibers 10000 --size 50 --latency-ms 5`

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use fiber::sync::{Mutex, Semaphore, SemaphorePermit};

use fiber_support::flags::{self, Flags};
use fiber_support::http_client::HttpConn;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str =
    "usage: pool [--fibers F] [--size S] [--latency-ms MS] [--checkout-timeout-ms MS]
  --fibers               fibers, one request each (default 10000)
  --size                 connections at most (default 50)
  --latency-ms           server latency per request (default 5)
  --checkout-timeout-ms  how long a fiber waits for a connection (default 10000)";

/// The pool: idle connections, and one permit per connection that may exist.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<HttpConn>>,
    permits: Semaphore,
    opened: AtomicUsize,
}

/// A checked-out connection; goes back to the pool on drop (unless discarded).
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<HttpConn>,
    _permit: SemaphorePermit<'a>, // released after `drop` below has returned the connection
}

impl Pool {
    fn new(addr: SocketAddr, size: usize) -> Pool {
        let (idle, permits) = (Mutex::new(Vec::new()), Semaphore::new(size));
        Pool {
            addr,
            idle,
            permits,
            opened: AtomicUsize::new(0),
        }
    }

    /// Waits at most `timeout` for a connection: an idle one, or a new one if under the limit.
    fn checkout(&self, timeout: Duration) -> io::Result<Pooled<'_>> {
        let permit = self
            .permits
            .acquire_timeout(timeout)
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no connection free in time"))?;
        let idle = self.idle.lock().unwrap().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                self.opened.fetch_add(1, Relaxed);
                HttpConn::connect(self.addr, Some(Duration::from_secs(10)))?
            }
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

impl Pooled<'_> {
    /// The connection itself.
    fn conn(&mut self) -> &mut HttpConn {
        self.conn.as_mut().unwrap()
    }

    /// The connection failed: close it instead of handing it to the next fiber.
    fn discard(mut self) {
        self.conn = None;
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().unwrap().push(conn);
        }
    }
}

/// One fiber's work: check a connection out, make a request, give it back. Returns how long the
/// checkout waited; a checkout timeout is an error of kind `TimedOut`.
fn one_request(pool: &Pool, i: usize, checkout_timeout: Duration) -> io::Result<Duration> {
    let t = Instant::now();
    let mut conn = pool.checkout(checkout_timeout)?;
    let waited = t.elapsed();
    match conn.conn().get(&format!("/query/{i}")) {
        Ok(resp) if resp.status == 200 => Ok(waited),
        other => {
            conn.discard(); // maybe broken: do not hand it to the next fiber
            Err(io::Error::other(format!("request {i} failed: {other:?}")))
        }
    }
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let fibers: usize = args.get("--fibers", 10_000);
    let size: usize = args.get("--size", 50);
    let latency = Duration::from_millis(args.get("--latency-ms", 5));
    let checkout_timeout = Duration::from_millis(args.get("--checkout-timeout-ms", 10_000));
    args.done();
    if size == 0 {
        flags::fail(USAGE, "--size must be at least 1");
    }
    let server = Server::new(2, move |_path| {
        fiber::sleep(latency);
        Reply::ok("row")
    });
    println!(
        "pool: {fibers} fibers, {size} connections, latency {latency:?}, \
         checkout timeout {checkout_timeout:?}"
    );

    let pool = Pool::new(server.addr, size);
    let start = Instant::now();
    let results: Vec<io::Result<Duration>> = fiber::scope(|s| {
        let pool = &pool;
        let handles: Vec<_> = (0..fibers)
            .map(|i| s.spawn(move || one_request(pool, i, checkout_timeout)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();

    let ok = results.iter().filter(|r| r.is_ok()).count();
    let is_timeout =
        |r: &&io::Result<_>| matches!(r, Err(e) if e.kind() == io::ErrorKind::TimedOut);
    let timed_out = results.iter().filter(is_timeout).count();
    let failed = fibers - ok - timed_out;
    let longest_wait = results.iter().flatten().max().copied().unwrap_or_default();
    let opened = pool.opened.load(Relaxed);
    let rate = ok as f64 / elapsed.as_secs_f64();
    println!("{ok} requests ok, {timed_out} checkout timeouts, {failed} failed, in {elapsed:.2?}");
    println!("{rate:.0} requests/s; longest checkout wait {longest_wait:.2?}");
    println!(
        "connections opened: {opened} (limit {size}); server accepted {}; idle at the end {}",
        server.connections(),
        pool.idle.lock().unwrap().len()
    );
    println!(
        "RESULT fibers={fibers} ok={ok} timed_out={timed_out} failed={failed} opened={opened} \
         accepted={} limit={size}",
        server.connections()
    );
}
