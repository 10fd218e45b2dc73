//! Rate limit: a sliding-window limiter (at most K calls in any window of one second) shared by
//! 1,000 fibers that call a local server. Each caller reserves the earliest slot that keeps the
//! window under K and sleeps until then: no polling, one sleep per call.
//!
//! `cargo run --release --example rate_limit -- --fibers 1000 --calls 2 --rate 500`

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::Mutex;

use fiber_support::flags::{self, Flags};
use fiber_support::http_client;
use fiber_support::http_server::{Reply, Server};

const USAGE: &str = "usage: rate_limit [--fibers F] [--calls C] [--rate K] [--window-ms MS]
  --fibers     callers sharing the limiter (default 1000)
  --calls      calls per fiber (default 2)
  --rate       calls allowed per window (default 500)
  --window-ms  window length (default 1000)";

/// At most `max` calls in any `window`: remembers the start time of the last `max` calls.
struct SlidingWindow {
    max: usize,
    window: Duration,
    starts: Mutex<VecDeque<Instant>>,
}

impl SlidingWindow {
    fn new(max: usize, window: Duration) -> SlidingWindow {
        let starts = Mutex::new(VecDeque::with_capacity(max));
        SlidingWindow {
            max,
            window,
            starts,
        }
    }

    /// Waits until a call may start; returns the instant it was granted.
    fn acquire(&self) -> Instant {
        let mut starts = self.starts.lock().unwrap();
        let now = Instant::now();
        // The window ending at a new call must not hold `max` earlier calls: if it would, the new
        // call goes one window after the `max`-th most recent one.
        let mut slot = now;
        if starts.len() == self.max {
            slot = slot.max(starts.pop_front().unwrap() + self.window);
        }
        starts.push_back(slot);
        drop(starts);
        fiber::sleep(slot.saturating_duration_since(now));
        slot
    }
}

/// The most calls that fall in any half-open interval of length `window`.
fn busiest_window(times: &mut [Instant], window: Duration) -> usize {
    times.sort();
    let mut first = 0;
    (0..times.len())
        .map(|last| {
            while times[last] - times[first] >= window {
                first += 1;
            }
            last - first + 1
        })
        .max()
        .unwrap_or(0)
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let fibers: usize = args.get("--fibers", 1000);
    let calls: usize = args.get("--calls", 2);
    let rate: usize = args.get("--rate", 500);
    let window = Duration::from_millis(args.get("--window-ms", 1000));
    args.done();
    if rate == 0 || window.is_zero() {
        flags::fail(USAGE, "--rate and --window-ms must be at least 1");
    }
    // The server logs when each call arrives, to check the limit from the other side too.
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = arrivals.clone();
    let server = Server::new(2, move |_path| {
        log.lock().unwrap().push(Instant::now());
        Reply::ok("ok")
    });
    println!(
        "rate_limit: {fibers} fibers x {calls} calls, at most {rate} per {window:?} (sliding window)"
    );

    let limiter = SlidingWindow::new(rate, window);
    let granted = Mutex::new(Vec::with_capacity(fibers * calls));
    let failed = AtomicUsize::new(0);
    let start = Instant::now();
    fiber::scope(|s| {
        for _ in 0..fibers {
            s.spawn(|| {
                for _ in 0..calls {
                    let at = limiter.acquire();
                    granted.lock().unwrap().push(at);
                    let ok = http_client::get(server.addr, "/api", Some(Duration::from_secs(10)));
                    if !matches!(ok, Ok(r) if r.status == 200) {
                        failed.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed();

    let mut granted = granted.into_inner().unwrap();
    let mut arrived = arrivals.lock().unwrap().clone();
    let total = granted.len();
    let busiest = busiest_window(&mut granted, window);
    let seen = busiest_window(&mut arrived, window);
    let span = (*granted.last().unwrap() - granted[0]).as_secs_f64();
    // After the first full window, calls go at `rate` per window.
    let steady = (total.saturating_sub(rate)) as f64 / span.max(1e-9) * window.as_secs_f64();
    println!(
        "{total} calls in {elapsed:.2?}; {} failed",
        failed.load(Relaxed)
    );
    println!("busiest window, as granted:           {busiest} calls (limit {rate})");
    println!("busiest window, as seen by the server: {seen} calls (wake-up jitter included)");
    println!("achieved rate after the first window: {steady:.1} calls per {window:?}");
    println!(
        "RESULT calls={total} failed={} busiest={busiest} limit={rate} server_busiest={seen} \
         steady_rate={steady:.1} elapsed_ms={}",
        failed.load(Relaxed),
        elapsed.as_millis()
    );
}
