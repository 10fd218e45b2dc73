//! Retry: every request has a timeout; a failed attempt (timeout or 5xx) is retried after an
//! exponential backoff with jitter, up to a maximum number of attempts. The local server is
//! flaky on purpose: item `i` fails its first `i % 5` attempts, alternately by hanging past the
//! client's timeout and by answering 503. All items are fetched concurrently, one fiber each.
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
    "usage: retry [--items N] [--max-attempts A] [--timeout-ms MS] [--backoff-ms MS]
  --items         items to fetch, concurrently (default 20)
  --max-attempts  attempts per item before giving up (default 4)
  --timeout-ms    per-attempt timeout (default 200)
  --backoff-ms    first backoff; doubled after each failure, capped at 2 s (default 20)";

/// How to retry.
struct Policy {
    max_attempts: u32,
    timeout: Duration,
    first_backoff: Duration,
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

/// The pattern: attempt, and on failure sleep `backoff` (doubling) and try again.
fn fetch_with_retry(addr: SocketAddr, item: u64, policy: &Policy) -> Outcome {
    let mut backoff = policy.first_backoff;
    let mut failures = Vec::new();
    for attempt in 1..=policy.max_attempts {
        match http_client::get(addr, &format!("/item/{item}"), Some(policy.timeout)) {
            Ok(resp) if resp.status == 200 => return (Ok(resp.body), failures),
            Ok(resp) => failures.push(format!("HTTP {}", resp.status)),
            Err(e) => failures.push(e.to_string()), // "timed out" when the server hangs
        }
        if attempt < policy.max_attempts {
            fiber::sleep(jitter(backoff));
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
    let gave_up = format!("gave up after {} attempts", policy.max_attempts);
    (Err(gave_up), failures)
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let items: u64 = args.get("--items", 20);
    let policy = Policy {
        max_attempts: args.get("--max-attempts", 4),
        timeout: Duration::from_millis(args.get("--timeout-ms", 200)),
        first_backoff: Duration::from_millis(args.get("--backoff-ms", 20)),
    };
    args.done();
    if policy.max_attempts == 0 || policy.timeout.is_zero() {
        flags::fail(USAGE, "--max-attempts and --timeout-ms must be at least 1");
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
        "retry: {items} items, {} attempts max, timeout {:?}, first backoff {:?}",
        policy.max_attempts, policy.timeout, policy.first_backoff
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
    let http503 = failures.filter(|f| f.contains("503")).count();
    let server_saw: u32 = seen.lock().unwrap().values().sum();
    println!("{ok} ok, {} gave up, in {elapsed:.2?}", outcomes.len() - ok);
    println!(
        "{attempts} attempts ({timeouts} timed out, {http503} got 503); server saw {server_saw}"
    );
    println!(
        "RESULT items={items} ok={ok} gave_up={} attempts={attempts} timeouts={timeouts} \
         http503={http503} server_attempts={server_saw}",
        outcomes.len() - ok
    );
}
