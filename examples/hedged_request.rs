//! Hedged request: ask one replica; if it has not answered after a hedge delay, ask the next one
//! too, and so on; the first good answer wins and the requests still in flight are cancelled
//! (Loom's `ShutdownOnSuccess`, "The Tail at Scale"). One `fiber::group::first_ok` group: attempt
//! k sleeps k hedge delays, then sends a plain blocking request to replica k. A loser is unwound
//! from wherever it waits (its hedge sleep, or its socket read), so its connection is closed by
//! its destructors. Happy eyeballs is the same shape, with addresses for replicas.
//!
//! `cargo run --release --example hedged_request -- --latencies-ms 300,80,20 --hedge-ms 50`

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fiber_support::flags::Flags;
use fiber_support::http_client;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str = "usage: hedged_request [--latencies-ms LIST] [--failing K]... [--hedge-ms MS]
  --latencies-ms  one replica per entry, each answering after that many ms (default 300,80,20)
  --failing       a replica that answers 503 instead (repeatable; default none)
  --hedge-ms      delay before each further attempt starts (default 50)";

/// How one attempt ended, written by its guard (on return, or while it is unwound).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ended {
    Answered,
    Failed,
    CancelledBeforeSending,
    CancelledWaitingForReply,
}

/// Records how its attempt ended; a cancel unwinds the attempt, and this drop still runs.
struct Attempt<'a> {
    replica: usize,
    sent: bool,
    answered: Option<bool>,
    log: &'a Mutex<Vec<(usize, Ended, Duration)>>,
    start: Instant,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let ended = match (self.answered, self.sent) {
            (Some(true), _) => Ended::Answered,
            (Some(false), _) => Ended::Failed,
            (None, false) => Ended::CancelledBeforeSending,
            (None, true) => Ended::CancelledWaitingForReply,
        };
        let at = self.start.elapsed();
        self.log.lock().unwrap().push((self.replica, ended, at));
    }
}

/// One attempt: wait its turn, then a plain blocking request to replica k.
fn attempt(
    k: usize,
    addr: SocketAddr,
    hedge: Duration,
    attempt: &mut Attempt,
) -> Result<(usize, String), String> {
    fiber::sleep(hedge * k as u32);
    attempt.sent = true;
    let resp = http_client::get(addr, "/value", Some(Duration::from_secs(30)));
    let resp = resp.map_err(|e| format!("replica {k}: {e}"))?;
    attempt.answered = Some(resp.status == 200);
    match resp.status {
        200 => Ok((k, resp.body)),
        status => Err(format!("replica {k}: HTTP {status}")),
    }
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let latencies: Vec<u64> = args.list("--latencies-ms", "300,80,20");
    let failing: Vec<usize> = args.all("--failing");
    let hedge = Duration::from_millis(args.get("--hedge-ms", 50));
    args.done();
    if latencies.is_empty() {
        fiber_support::flags::fail(USAGE, "--latencies-ms needs at least one replica");
    }
    let replicas: Vec<Server> = latencies
        .iter()
        .enumerate()
        .map(|(k, &ms)| {
            let fails = failing.contains(&k);
            Server::new(1, move |_| {
                fiber::sleep(Duration::from_millis(ms));
                match fails {
                    true => Reply::error(503, "overloaded"),
                    false => Reply::ok(format!("value from replica {k}")),
                }
            })
        })
        .collect();
    println!("hedged_request: replicas answer after {latencies:?} ms (failing: {failing:?}), hedge {hedge:?}");

    let log = Mutex::new(Vec::new());
    let start = Instant::now();
    let winner = fiber::group::first_ok(|g| {
        for (k, server) in replicas.iter().enumerate() {
            let (addr, log) = (server.addr, &log);
            g.spawn(move || {
                let mut guard = Attempt {
                    replica: k,
                    sent: false,
                    answered: None,
                    log,
                    start,
                };
                attempt(k, addr, hedge, &mut guard)
            });
        }
    });
    let elapsed = start.elapsed();

    let mut log = log.into_inner().unwrap();
    log.sort_by_key(|(k, ..)| *k);
    for (k, ended, at) in &log {
        println!("  replica {k}: {ended:?} at {at:.0?}");
    }
    let count = |what: Ended| log.iter().filter(|(_, e, _)| *e == what).count();
    let cancelled = count(Ended::CancelledBeforeSending) + count(Ended::CancelledWaitingForReply);
    let winner_index = match &winner {
        Ok((k, body)) => {
            println!(
                "winner: replica {k} ({body:?}) after {elapsed:.0?}; {cancelled} losers cancelled"
            );
            *k as i64
        }
        Err(errors) => {
            println!("every replica failed after {elapsed:.0?}: {errors:?}");
            -1
        }
    };
    println!(
        "RESULT winner={winner_index} attempts={} failed={} cancelled_before_sending={} cancelled_waiting={} cancelled={cancelled} elapsed_ms={}",
        log.len(),
        count(Ended::Failed),
        count(Ended::CancelledBeforeSending),
        count(Ended::CancelledWaitingForReply),
        elapsed.as_millis()
    );
}
