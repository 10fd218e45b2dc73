//! Placement of long-lived fibers (issue 17): one accept loop hands out 1,000 connections; 10%
//! of them ask for 1 ms of CPU per request ("heavy"), the rest are echo ("light"). A started fiber
//! never moves, so where a connection's fiber first ran decides which worker carries it for its
//! whole life; tokio's tasks move between workers at every wake-up. The figure that matters is the
//! latency of the light connections: a worker that carries more than its share of heavy fibers
//! makes its light fibers wait behind them. (A fiber worker with I/O serves fibers whose last
//! slice was short first, for up to 2 ms: src/scheduler/README.md, "Long-running fibers".)
//!
//! `cargo run --release --example placement -- [--conns 1000] [--heavy-every 10] [--duration 3]
//!  [--servers fiber,tokio] [--rounds 2] [--arrival 0] [--random-heavy]`
//!
//! With `--arrival S` the connections open one after another over S seconds while the others
//! already run (a server whose clients come and go), and `--random-heavy` picks the heavy ones
//! at random (one in K on average) instead of every K-th: then how heavy a worker already is can
//! be seen when a new connection is placed, and by chance alone heavy connections cluster.
//!
//! Each server (2 workers) runs in a child process (this program with `--serve KIND`); the load
//! generator is this process, on fibers (2 workers). Every connection sends a 64-byte request
//! and waits for its echo, paced: a light one every 50 ms, a heavy one (first byte `H`: the server
//! spins 1 ms before it answers) every 100 ms, so that the heavy work alone wants one of the 2
//! workers, and the light ones 18,000 round trips a second. At the end the server prints how its connections were spread over its workers
//! (fiber: where each connection's fiber runs; tokio: where each heavy request ran).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fiber_support::flags::Flags;

const USAGE: &str =
    "usage: placement [--conns N] [--heavy-every K] [--duration S] [--servers KIND,...]
                 [--rounds N] [--arrival S] [--random-heavy]
  --conns        connections (default 1000)
  --heavy-every  every K-th connection is heavy (default 10)
  --duration     measured seconds per run, after 1 s of warm-up (default 3)
  --servers      fiber and/or tokio (default fiber,tokio)
  --rounds       runs per server, alternating; the best p99 is kept (default 2)
  --arrival      the connections open evenly over S seconds (default 0: all at once); the
                 measurement starts 1 s after the last one
  --random-heavy a connection is heavy with probability 1/K (seeded: the same ones every run)";

const SIZE: usize = 64;
const HEAVY_CPU: Duration = Duration::from_millis(1);
const LIGHT_EVERY: Duration = Duration::from_millis(50);
const HEAVY_EVERY: Duration = Duration::from_millis(100);

fn main() {
    let mut flags = Flags::parse(USAGE, &["--random-heavy"]);
    if let Some(kind) = flags.opt::<String>("--serve") {
        flags.done();
        serve(&kind);
    }
    let conns: usize = flags.get("--conns", 1000);
    let heavy_every: usize = flags.get("--heavy-every", 10);
    let seconds = |flags: &mut Flags, name: &str, default: f64| {
        let value: f64 = flags.get(name, default);
        Duration::try_from_secs_f64(value).unwrap_or_else(|_| {
            fiber_support::flags::fail(USAGE, &format!("{name} must be a number of seconds >= 0"))
        })
    };
    let duration = seconds(&mut flags, "--duration", 3.0);
    let servers: Vec<String> = flags.list("--servers", "fiber,tokio");
    let rounds: usize = flags.get("--rounds", 2);
    let arrival = seconds(&mut flags, "--arrival", 0.0);
    let random_heavy = flags.switch("--random-heavy");
    flags.done();
    if heavy_every == 0 || conns == 0 {
        fiber_support::flags::fail(USAGE, "--conns and --heavy-every must be at least 1");
    }
    fiber_support::fdlimit::raise_fd_limit(4 * conns as u64 + 256);

    let pick = Pick {
        heavy_every,
        random: random_heavy,
    };
    println!(
        "placement: {conns} connections, {} heavy (1 ms CPU per request every {HEAVY_EVERY:?}), \
         the others echo every {LIGHT_EVERY:?}; opened over {arrival:?}; 2 server workers; \
         {duration:?} measured",
        if random_heavy {
            format!("1 in {heavy_every} at random")
        } else {
            format!("every {heavy_every}th")
        }
    );
    let mut best: HashMap<String, Load> = HashMap::new();
    for round in 0..rounds {
        for kind in &servers {
            let load = measure(kind, conns, pick, arrival, duration);
            println!(
                "  round {round} {kind:>5}: light p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms \
                 | heavy p99 {:>7.2} ms | {} light, {} heavy requests, {} errors | spread: {}",
                ms(load.light.p50),
                ms(load.light.p99),
                ms(load.light.p999),
                ms(load.heavy.p99),
                load.light.count,
                load.heavy.count,
                load.errors,
                load.spread
            );
            let keep = best
                .get(kind)
                .is_none_or(|old| load.light.p99 < old.light.p99);
            if keep {
                best.insert(kind.clone(), load);
            }
        }
    }
    println!("\nbest of {rounds} rounds (by light p99):");
    println!("| server | light p50 ms | light p99 ms | heavy p99 ms | spread |");
    println!("|---|---:|---:|---:|---|");
    for kind in &servers {
        let l = &best[kind];
        println!(
            "| {kind} | {:.2} | {:.2} | {:.2} | {} |",
            ms(l.light.p50),
            ms(l.light.p99),
            ms(l.heavy.p99),
            l.spread
        );
    }
    if let (Some(f), Some(t)) = (best.get("fiber"), best.get("tokio")) {
        println!(
            "\nfiber/tokio light p99: {:.2}x",
            f.light.p99.as_secs_f64() / t.light.p99.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---- the client -------------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Percentiles {
    count: usize,
    p50: Duration,
    p99: Duration,
    p999: Duration,
}

fn percentiles(mut ns: Vec<u64>) -> Percentiles {
    ns.sort_unstable();
    let at = |p: f64| {
        ns.get(((ns.len() as f64 * p) as usize).min(ns.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |&n| Duration::from_nanos(n))
    };
    Percentiles {
        count: ns.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
    }
}

struct Load {
    light: Percentiles,
    heavy: Percentiles,
    errors: usize,
    spread: String,
}

/// Which connections are heavy.
#[derive(Clone, Copy)]
struct Pick {
    heavy_every: usize,
    random: bool,
}

impl Pick {
    fn is_heavy(self, index: usize) -> bool {
        if self.random {
            fiber_support::rng::splitmix(index as u64 ^ 0x5eed) % self.heavy_every as u64 == 0
        } else {
            index % self.heavy_every == 0
        }
    }
}

fn measure(kind: &str, conns: usize, pick: Pick, arrival: Duration, duration: Duration) -> Load {
    let (mut server, addr) = spawn_server(kind);
    let rt = fiber::Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("client runtime");
    let warmup = arrival + Duration::from_secs(1);
    let (light, heavy, errors) = rt.block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let begin = Instant::now();
        let measure_from = begin + warmup;
        let handles: Vec<_> = (0..conns)
            .map(|i| {
                let stop = stop.clone();
                let heavy = pick.is_heavy(i);
                // Opened one after another over `arrival`: the client waits before it connects.
                let opens_at = begin + arrival.mul_f64(i as f64 / conns as f64);
                fiber::spawn(move || {
                    fiber::sleep(opens_at.saturating_duration_since(Instant::now()));
                    connection(addr, i, heavy, measure_from, &stop)
                })
            })
            .collect();
        fiber::sleep(warmup + duration);
        stop.store(true, Ordering::Relaxed);
        let (mut light, mut heavy, mut errors) = (Vec::new(), Vec::new(), 0);
        for (i, h) in handles.into_iter().enumerate() {
            match h.join().expect("a client connection panicked") {
                Ok(lat) if pick.is_heavy(i) => heavy.extend(lat),
                Ok(lat) => light.extend(lat),
                Err(_) => errors += 1,
            }
        }
        (light, heavy, errors)
    });
    // Closing its stdin asks the server for its spread line, then it exits.
    drop(server.child.stdin.take());
    let spread = read_line(&mut server.out).unwrap_or_else(|| "(no report)".into());
    let _ = server.child.wait();
    Load {
        light: percentiles(light),
        heavy: percentiles(heavy),
        errors,
        spread,
    }
}

/// One paced connection; the latencies of its requests after `measure_from`, in ns.
fn connection(
    addr: SocketAddr,
    index: usize,
    heavy: bool,
    measure_from: Instant,
    stop: &AtomicBool,
) -> std::io::Result<Vec<u64>> {
    let mut stream = fiber::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut msg = [b'.'; SIZE];
    if heavy {
        msg[0] = b'H';
    }
    let every = if heavy { HEAVY_EVERY } else { LIGHT_EVERY };
    let mut reply = [0u8; SIZE];
    let mut latencies = Vec::new();
    // Spread the first requests over one period, so the connections do not all fire at once.
    let offset = fiber_support::rng::splitmix(index as u64) % every.as_micros() as u64;
    fiber::sleep(Duration::from_micros(offset));
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        stream.write_all(&msg)?;
        stream.read_exact(&mut reply)?;
        let took = start.elapsed();
        if start >= measure_from {
            latencies.push(took.as_nanos() as u64);
        }
        if let Some(rest) = every.checked_sub(took) {
            fiber::sleep(rest);
        }
    }
    Ok(latencies)
}

// ---- the servers ------------------------------------------------------------------------------

/// A server child, and its stdout (the address first, the spread line at the end).
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
}

fn spawn_server(kind: &str) -> (Server, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().expect("this program"))
        .args(["--serve", kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    let mut server = Server { child, out };
    let line = read_line(&mut server.out).expect("the server prints its address");
    (server, line.parse().expect("an address"))
}

fn read_line(out: &mut BufReader<ChildStdout>) -> Option<String> {
    let mut line = String::new();
    match out.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim().to_string()),
        _ => None,
    }
}

/// Which worker thread ran what: a small index per OS thread, and per index the connections that
/// first ran there (light, heavy) and the heavy requests served there.
#[derive(Default)]
struct Spread {
    threads: HashMap<std::thread::ThreadId, usize>,
    first: Vec<(usize, usize)>,
    heavy_requests: Vec<usize>,
}

impl Spread {
    fn worker(&mut self) -> usize {
        let next = self.threads.len();
        let index = *self
            .threads
            .entry(std::thread::current().id())
            .or_insert(next);
        if self.first.len() <= index {
            self.first.resize(index + 1, (0, 0));
            self.heavy_requests.resize(index + 1, 0);
        }
        index
    }

    fn describe(&self) -> String {
        let per: Vec<String> = (0..self.first.len())
            .map(|w| {
                let (light, heavy) = self.first[w];
                format!(
                    "w{w}: {light} light + {heavy} heavy conns, {} heavy reqs",
                    self.heavy_requests[w]
                )
            })
            .collect();
        per.join("; ")
    }
}

fn spread() -> &'static Mutex<Spread> {
    static SPREAD: OnceLock<Mutex<Spread>> = OnceLock::new();
    SPREAD.get_or_init(Default::default)
}

/// Spins for `d` of CPU (wall time on an uncontended core).
fn burn(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Serves one request-reply exchange's worth of bookkeeping: on the first request the connection
/// counts where it runs; a heavy request counts where it runs and burns its CPU.
fn on_request(first: &mut bool, heavy: bool) {
    let mut s = spread().lock().unwrap();
    let w = s.worker();
    if std::mem::take(first) {
        if heavy {
            s.first[w].1 += 1;
        } else {
            s.first[w].0 += 1;
        }
    }
    if heavy {
        s.heavy_requests[w] += 1;
    }
    drop(s);
    if heavy {
        burn(HEAVY_CPU);
    }
}

fn serve(kind: &str) -> ! {
    // The parent closes our stdin when it is done: report the spread and exit.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        println!("{}", spread().lock().unwrap().describe());
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
    let announce = |addr: SocketAddr| {
        println!("{addr}");
        let _ = std::io::stdout().flush();
    };
    match kind {
        "fiber" => {
            let rt = fiber::Runtime::builder()
                .worker_threads(2)
                .build()
                .expect("server runtime");
            rt.block_on(|| {
                let listener = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
                announce(listener.local_addr().unwrap());
                loop {
                    let Ok((mut stream, _)) = listener.accept() else {
                        fiber::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    fiber::spawn(move || {
                        let (mut buf, mut first) = ([0u8; SIZE], true);
                        while stream.read_exact(&mut buf).is_ok() {
                            on_request(&mut first, buf[0] == b'H');
                            if stream.write_all(&buf).is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                announce(listener.local_addr().unwrap());
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let (mut buf, mut first) = ([0u8; SIZE], true);
                        while stream.read_exact(&mut buf).await.is_ok() {
                            on_request(&mut first, buf[0] == b'H');
                            if stream.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        }
        other => panic!("unknown server {other} (fiber or tokio)"),
    }
}
