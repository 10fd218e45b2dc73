//! Retry: every attempt has a timeout and the whole item an overall deadline, both with
//! `fiber::timeout` around plain blocking code (the HTTP client is given no socket timeout); a
//! failed attempt (timeout or 5xx) is retried after an exponential backoff with jitter, up to a
//! maximum number of attempts or until the deadline cuts the item off, whatever it is doing.
//! The local server is flaky on purpose: item `i` fails its first `i % 5` attempts,
//! alternately by hanging past the client's timeout and by answering 503. All items are
//! fetched concurrently, one fiber each.
//!
//! `cargo run --release --example retry -- --items 20 --max-attempts 4 --timeout-ms 200`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::Mutex;

use fiber_support::flags::{self, Flags};
use fiber_support::http_client;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str =
    "usage: retry [--items N] [--max-attempts A] [--timeout-ms MS] [--backoff-ms MS] [--deadline-ms MS]
  --items         items to fetch, concurrently (default 20)
  --max-attempts  attempts per item before giving up (default 4)
  --timeout-ms    per-attempt timeout (default 200)
  --backoff-ms    first backoff; doubled after each failure, capped at 2 s (default 20)
  --deadline-ms   overall deadline per item, attempts and backoffs included (default 60000)";

/// How to retry.
struct Policy {
    max_attempts: u32,
    timeout: Duration,
    first_backoff: Duration,
    deadline: Duration,
}

/// What happened to one item: the body or why we gave up, and why each failed attempt failed.
type Outcome = (Result<String, String>, Vec<String>);

/// Up to half of `d` more, pseudo-randomly, so that clients that failed together do not retry in
/// lockstep.
fn jitter(d: Duration) -> Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = now.unwrap_or_default().subsec_nanos();
    d + d.mul_f64(f64::from(nanos.wrapping_mul(2_654_435_761) % 1000) / 2000.0)
}

/// The pattern: attempt within `timeout`, and on failure sleep `backoff` (doubling) and try
/// again; the whole loop within `deadline`. Neither timeout reaches the client: each cancels
/// whatever the fiber is waiting in (a connect, a read, a backoff sleep) back up to its call.
fn fetch_with_retry(addr: SocketAddr, item: u64, policy: &Policy) -> Outcome {
    let mut failures = Vec::new();
    // An attempt, rather than a backoff, is under way (read after the deadline's unwind).
    let in_flight = std::cell::Cell::new(false);
    let deadline = Instant::now() + policy.deadline;
    let result = fiber::timeout_at(deadline, || {
        let mut backoff = policy.first_backoff;
        for attempt in 1..=policy.max_attempts {
            let path = format!("/item/{item}");
            in_flight.set(true);
            let answer = fiber::timeout(policy.timeout, || http_client::get(addr, &path, None));
            in_flight.set(false);
            match answer {
                Ok(Ok(resp)) if resp.status == 200 => return Ok(resp.body),
                Ok(Ok(resp)) => failures.push(format!("HTTP {}", resp.status)),
                Ok(Err(e)) => failures.push(e.to_string()),
                Err(fiber::Elapsed) => failures.push("timed out".to_owned()),
            }
            if attempt < policy.max_attempts {
                fiber::sleep(jitter(backoff));
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        Err(format!("gave up after {} attempts", policy.max_attempts))
    });
    match result {
        Ok(outcome) => (outcome, failures),
        Err(fiber::Elapsed) if in_flight.get() => {
            // The attempt in progress was cut off: it counts as a failed one.
            failures.push("deadline".to_owned());
            let n = failures.len();
            (Err(format!("deadline passed during attempt {n}")), failures)
        }
        Err(fiber::Elapsed) => {
            let n = failures.len();
            (Err(format!("deadline passed after {n} attempts")), failures)
        }
    }
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let items: u64 = args.get("--items", 20);
    let policy = Policy {
        max_attempts: args.get("--max-attempts", 4),
        timeout: Duration::from_millis(args.get("--timeout-ms", 200)),
        first_backoff: Duration::from_millis(args.get("--backoff-ms", 20)),
        deadline: Duration::from_millis(args.get("--deadline-ms", 60_000)),
    };
    args.done();
    if policy.max_attempts == 0 || policy.timeout.is_zero() || policy.deadline.is_zero() {
        flags::fail(
            USAGE,
            "--max-attempts, --timeout-ms and --deadline-ms must be at least 1",
        );
    }

    // The flaky server: counts attempts per item; item i fails its first i % 5.
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let log = seen.clone();
    let hang = policy.timeout * 10;
    let server = Server::new(2, move |path| {
        let Some(item) = path
            .strip_prefix("/item/")
            .and_then(|i| i.parse::<u64>().ok())
        else {
            return Reply::error(404, "no such item");
        };
        let attempt = {
            let mut seen = log.lock().unwrap();
            let n = seen.entry(item).or_insert(0);
            *n += 1;
            *n - 1
        };
        if u64::from(attempt) >= item % 5 {
            Reply::ok(format!("item {item}"))
        } else if attempt % 2 == 0 {
            fiber::sleep(hang); // longer than the client waits
            Reply::ok("too late")
        } else {
            Reply::error(503, "busy, try again")
        }
    });

    println!(
        "retry: {items} items, {} attempts max, timeout {:?}, first backoff {:?}, deadline {:?}",
        policy.max_attempts, policy.timeout, policy.first_backoff, policy.deadline
    );
    let start = Instant::now();
    let (addr, policy) = (server.addr, &policy);
    let outcomes: Vec<Outcome> = fiber::scope(|s| {
        let fibers: Vec<_> = (0..items)
            .map(|item| s.spawn(move || fetch_with_retry(addr, item, policy)))
            .collect();
        fibers.into_iter().map(|f| f.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();

    println!("{:>5} {:>8}  outcome; failed attempts", "item", "attempts");
    for (item, (result, failures)) in outcomes.iter().enumerate() {
        let attempts = failures.len() + usize::from(result.is_ok());
        let verdict = result
            .as_ref()
            .map_or_else(|e| e.clone(), |_| "ok".to_owned());
        println!(
            "{item:>5} {attempts:>8}  {verdict}; {}",
            failures.join(", ")
        );
    }
    let ok = outcomes.iter().filter(|(r, _)| r.is_ok()).count();
    let failures = outcomes.iter().flat_map(|(_, f)| f);
    let attempts = ok + failures.clone().count();
    let timeouts = failures.clone().filter(|f| f.contains("timed out")).count();
    let deadlines = failures.clone().filter(|f| *f == "deadline").count();
    let cut = outcomes
        .iter()
        .filter(|(r, _)| r.as_ref().is_err_and(|e| e.starts_with("deadline")))
        .count();
    let http503 = failures.filter(|f| f.contains("503")).count();
    let server_saw: u32 = seen.lock().unwrap().values().sum();
    println!("{ok} ok, {} gave up, in {elapsed:.2?}", outcomes.len() - ok);
    println!(
        "{attempts} attempts ({timeouts} timed out, {http503} got 503, {deadlines} cut by the \
         deadline); server saw {server_saw}; {cut} items stopped by the deadline"
    );
    println!(
        "RESULT items={items} ok={ok} gave_up={} attempts={attempts} timeouts={timeouts} \
         http503={http503} deadlines={deadlines} cut={cut} server_attempts={server_saw}",
        outcomes.len() - ok
    );
}
