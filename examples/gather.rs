//! Gather: start many fibers, then collect every outcome — a value, an error, or a panic — with
//! nothing lost (asyncio's `gather(..., return_exceptions=True)`). `JoinHandle::join` returns
//! `Err(payload)` for a fiber that panicked, so a panic is just one more result to report.
//!
//! With `--fail-fast`, the same jobs run in a `fiber::group::fail_fast` group instead (asyncio's
//! `TaskGroup`, Go's `errgroup`): the first error or panic cancels every job still waiting on
//! the server, and the group reports that failure with every job's outcome.
//!
//! `cargo run --release --example gather -- --jobs 1000 [--fail-fast]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fiber::group::Outcome;
use fiber_support::flags::Flags;
use fiber_support::http_client;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str = "usage: gather [--jobs N] [--latency-ms MS] [--panic-every N] [--fail-fast]
  --jobs         fibers to run (default 1000): job i fails if i % 10 == 3 (the server says 500)
                 and panics if i % N == 7 (N from --panic-every)
  --latency-ms   server latency (default 50)
  --panic-every  N above (default 25; 0: no job panics)
  --fail-fast    stop at the first error or panic, cancelling the jobs still running";

/// One job: plain blocking code that can return an error or panic.
fn job(addr: SocketAddr, i: u64, panic_every: u64) -> Result<u64, String> {
    if panic_every != 0 && i % panic_every == 7 {
        panic!("invariant broken");
    }
    let resp = http_client::get(addr, &format!("/job/{i}"), Some(Duration::from_secs(30)))
        .map_err(|e| format!("job {i}: {e}"))?;
    match resp.status {
        200 => resp.body.parse().map_err(|e| format!("job {i}: {e}")),
        status => Err(format!("job {i}: HTTP {status} {}", resp.body)),
    }
}

/// A panic payload as text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload.downcast_ref::<&str>().map(|s| s.to_string());
    text.or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-text panic>".to_owned())
}

/// The fail-fast version: one group; the first failure cancels the jobs still in flight.
fn gather_fail_fast(addr: SocketAddr, jobs: u64, panic_every: u64) {
    let start = Instant::now();
    let result = fiber::group::fail_fast(|g| {
        for i in 0..jobs {
            g.spawn(move || job(addr, i, panic_every));
        }
    });
    let elapsed = start.elapsed();
    let err = match result {
        Ok(values) => {
            let sum: u64 = values.iter().sum();
            println!(
                "{jobs} jobs in {elapsed:.2?}: all {} succeeded",
                values.len()
            );
            println!("RESULT mode=fail_fast jobs={jobs} first=-1 first_kind=none ok={} errors=0 panics=0 cancelled=0 accounted={} sum={sum}", values.len(), values.len());
            return;
        }
        Err(err) => err,
    };
    let first = err.index();
    let (kind, why) = match err.first() {
        Outcome::Err(e) => ("error", e.clone()), // "job {i}: ..." already
        Outcome::Panicked(p) => (
            "panic",
            format!("job {first} panicked: {}", panic_message(&**p)),
        ),
        _ => ("cancelled", format!("job {first} was cancelled")),
    };
    let count =
        |pred: fn(&Outcome<u64, String>) -> bool| err.outcomes().iter().filter(|o| pred(o)).count();
    let ok = count(|o| matches!(o, Outcome::Ok(_)));
    let errors = count(|o| matches!(o, Outcome::Err(_)));
    let panics = count(|o| matches!(o, Outcome::Panicked(_)));
    let cancelled = count(Outcome::is_cancelled);
    println!("{jobs} jobs, failed fast in {elapsed:.2?}: {why}");
    println!("  outcomes: {ok} succeeded and {errors} errors, {panics} panics before the cancel; {cancelled} cancelled");
    let accounted = ok + errors + panics + cancelled;
    println!(
        "RESULT mode=fail_fast jobs={jobs} first={first} first_kind={kind} ok={ok} errors={errors} panics={panics} cancelled={cancelled} accounted={accounted} elapsed_ms={}",
        elapsed.as_millis()
    );
}

fn main() {
    let mut args = Flags::parse(USAGE, &["--fail-fast"]);
    let jobs: u64 = args.get("--jobs", 1000);
    let latency = Duration::from_millis(args.get("--latency-ms", 50));
    let panic_every: u64 = args.get("--panic-every", 25);
    let fail_fast = args.switch("--fail-fast");
    args.done();
    let server = Server::new(2, move |path| {
        fiber::sleep(latency);
        match path
            .strip_prefix("/job/")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(i) if i % 10 == 3 => Reply::error(500, "backend failure"),
            Some(i) => Reply::ok((i * 2).to_string()),
            None => Reply::error(404, "bad path"),
        }
    });
    // The default hook would print every panic; we report them ourselves below.
    std::panic::set_hook(Box::new(|_| {}));
    println!("gather: {jobs} jobs, server latency {latency:?}");
    if fail_fast {
        gather_fail_fast(server.addr, jobs, panic_every);
        return;
    }

    // Fan out...
    let start = Instant::now();
    let addr = server.addr;
    let handles: Vec<_> = (0..jobs)
        .map(|i| fiber::spawn(move || job(addr, i, panic_every)))
        .collect();
    // ...and gather: one outcome per handle, in order, whatever happened.
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let elapsed = start.elapsed();

    let (mut values, mut errors, mut panics) = (Vec::new(), Vec::new(), Vec::new());
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(Ok(v)) => values.push((i, v)),
            Ok(Err(e)) => errors.push(e),
            Err(payload) => panics.push(format!("job {i} panicked: {}", panic_message(&*payload))),
        }
    }
    let sum: u64 = values.iter().map(|(_, v)| v).sum();
    println!(
        "{jobs} jobs in {elapsed:.2?}: {} values, {} errors, {} panics",
        values.len(),
        errors.len(),
        panics.len()
    );
    for e in errors.iter().take(3).chain(panics.iter().take(3)) {
        println!("  {e}");
    }
    let accounted = values.len() + errors.len() + panics.len();
    println!("accounted for: {accounted} of {jobs} (sum of values {sum})");
    println!(
        "RESULT jobs={jobs} ok={} errors={} panics={} accounted={accounted} sum={sum}",
        values.len(),
        errors.len(),
        panics.len()
    );
}
