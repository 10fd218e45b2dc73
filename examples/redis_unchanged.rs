//! The `redis` crate, unchanged (its sync API over `std::net`), from 1,000 fibers against a real
//! `redis-server` that the example starts on a free port: each fiber connects, makes one
//! `BLPOP` that waits 100 ms for nothing, then 10 SET/GET pairs on its own keys. With the hooks
//! each blocking call parks only its fiber, so the BLPOP phase takes about one latency; with
//! `FIBER_HOOK=0` each BLPOP blocks a carrier for its 100 ms.
//!
//! `cargo run --release --example redis_unchanged [-- --n 1000 --workers 2]`
//! `FIBER_HOOK=0 cargo run --release --example redis_unchanged` (40 fibers unless `--n`: the
//! blocked run is extrapolated to 1,000).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber_support::redis_server::RedisServer;
use redis::Commands;

const BLPOP_SECS: f64 = 0.1;
const SET_GETS: usize = 10;
/// The fiber count the blocked run is extrapolated to.
const FULL: usize = 1000;

fn os_threads() -> u64 {
    fiber_support::mem::mem().threads
}

/// Runs `work` on one fiber per connection, gives the connections back, and prints the phase's
/// wall time, successes and the most OS threads seen meanwhile (sampled by a plain thread).
fn phase(
    name: &str,
    cons: Vec<redis::Connection>,
    scale: f64,
    work: impl Fn(usize, &mut redis::Connection) -> bool + Clone + Send + 'static,
) -> Vec<redis::Connection> {
    let n = cons.len();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut max = os_threads();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                max = max.max(os_threads());
            }
            max
        })
    };
    let t0 = Instant::now();
    let handles: Vec<_> = cons
        .into_iter()
        .enumerate()
        .map(|(i, mut con)| {
            let work = work.clone();
            fiber::spawn(move || {
                let ok = work(i, &mut con);
                (ok, con)
            })
        })
        .collect();
    let mut ok = 0;
    let cons: Vec<_> = handles
        .into_iter()
        .map(|h| {
            let (good, con) = h.join().expect("a redis fiber panicked");
            ok += usize::from(good);
            con
        })
        .collect();
    let took = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let threads = sampler.join().unwrap_or(0);
    let extrapolated = if scale > 1.0 {
        format!("   (x{scale:.0} -> about {:.1} s for {FULL})", took * scale)
    } else {
        String::new()
    };
    println!(
        "{name:<26} {ok:>5}/{n} ok in {took:>6.2} s   max OS threads {threads:>3}{extrapolated}"
    );
    cons
}

fn usage() -> ! {
    eprintln!("usage: redis_unchanged [--n FIBERS] [--workers N]");
    std::process::exit(2);
}

fn main() {
    let hooks = fiber::hook::is_active();
    let mut n = if hooks { FULL } else { 40 };
    let mut workers = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--n", Some(v)) if v > 0 => n = v,
            ("--workers", Some(v)) if v > 0 => workers = v,
            _ => usage(),
        }
    }
    let fds = fiber_support::fdlimit::raise_fd_limit(2 * n as u64 + 64);
    if fds < n as u64 + 64 {
        eprintln!(
            "{n} connections need an open-file limit over {}, this process may have {fds}: \
             raise the hard limit (ulimit -Hn) or pass a smaller --n",
            n + 64
        );
        std::process::exit(1);
    }
    // Started after every check that may exit: `process::exit` skips its drop.
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("redis_unchanged needs a redis-server: {e}");
            std::process::exit(1);
        }
    };
    // A blocked run is scaled up to FULL fibers by the ratio of counts (each BLPOP holds a carrier
    // for its 100 ms, so the phase time grows linearly with the count).
    let scale = if hooks { 1.0 } else { FULL as f64 / n as f64 };
    println!(
        "redis crate, sync API, {n} fibers on {workers} workers, redis-server at {}; hooks active: {hooks}",
        server.addr()
    );
    if !hooks {
        println!(
            "FIBER_HOOK=0: every blocking call blocks its carrier; {n} fibers, times extrapolated to {FULL}"
        );
    }
    let url = server.url();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    rt.block_on(move || {
        let client = redis::Client::open(url.as_str()).expect("a valid redis URL");
        let t0 = Instant::now();
        let connects: Vec<_> = (0..n)
            .map(|_| {
                let client = client.clone();
                fiber::spawn(move || client.get_connection())
            })
            .collect();
        let cons: Vec<_> = connects
            .into_iter()
            .filter_map(|h| h.join().expect("a connect fiber panicked").ok())
            .collect();
        println!(
            "{:<26} {:>5}/{n} ok in {:>6.2} s   OS threads now {:>3}",
            "connect",
            cons.len(),
            t0.elapsed().as_secs_f64(),
            os_threads()
        );
        let cons = phase("BLPOP 0.1 s (times out)", cons, scale, |i, con| {
            let got: redis::RedisResult<Option<[String; 2]>> =
                con.blpop(format!("list:{i}"), BLPOP_SECS);
            matches!(got, Ok(None))
        });
        let cons = phase(&format!("SET/GET x{SET_GETS}"), cons, 1.0, |i, con| {
            (0..SET_GETS).all(|k| {
                let (key, value) = (format!("k:{i}:{k}"), format!("v{i}.{k}"));
                let set: redis::RedisResult<()> = con.set(&key, &value);
                let got: redis::RedisResult<Option<String>> = con.get(&key);
                set.is_ok() && got.ok().flatten() == Some(value)
            })
        });
        drop(cons);
    });
    drop(server);
}
