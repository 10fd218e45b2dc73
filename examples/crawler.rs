//! Crawler: breadth-first crawl of a generated local web site with the `ureq` HTTP client,
//! unchanged: plain blocking calls on one shared `ureq::Agent` (keep-alive pool), made from
//! fibers; the hooks park the fiber, not the thread, while ureq waits. One fiber per page of the
//! current level, at most `--concurrency` fetches in flight (a `Semaphore`), a shared visited set
//! (a `Mutex<HashSet>`) so that every page is fetched exactly once, statistics per worker thread,
//! and pages per second. The server counts its hits and connections, so "exactly once" and the
//! connection reuse are checked, not assumed. `--budget-ms` gives the whole crawl a time budget
//! (`fiber::timeout`): when it is spent every fetch in flight is cancelled, wherever it waits,
//! and the crawl reports what it fetched by then.
//!
//! `cargo run --release --example crawler -- --pages 2000 --concurrency 50 --latency-ms 20`

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{Mutex, Semaphore};

use fiber_support::flags::{self, Flags};
use fiber_support::http_server::{Reply, Server};
use fiber_support::{fmt, site};

const USAGE: &str =
    "usage: crawler [--pages N] [--concurrency C] [--latency-ms MS] [--budget-ms MS]
  --pages        pages in the generated site (default 2000)
  --concurrency  fetches in flight at most (default 50)
  --latency-ms   server latency per page (default 20)
  --budget-ms    time budget for the whole crawl (default: none)";

/// What one worker thread (a carrier of fibers) did: pages, bytes, time fetching.
type WorkerStats = (usize, usize, Duration);

/// Everything the crawl shares between its fibers.
struct Crawl {
    base: String,
    agent: ureq::Agent,
    limit: Semaphore,
    visited: Mutex<HashSet<String>>,
    per_worker: Mutex<BTreeMap<String, WorkerStats>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    errors: AtomicUsize,
    /// Pages fetched in full (the body read).
    fetched: AtomicUsize,
    /// When the budget is spent, if there is one: a fetch failing after it was cut off by it.
    budget_end: Option<Instant>,
}

impl Crawl {
    /// Fetches one page and returns the links on it that nobody has claimed yet.
    fn visit(&self, path: &str) -> Vec<String> {
        let _permit = self.limit.acquire(); // at most `concurrency` of these past this line
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
        let t = Instant::now();
        let page = fetch(&self.agent, &format!("{}{path}", self.base));
        self.in_flight.fetch_sub(1, Relaxed);
        let body = match page {
            Ok(body) => body,
            // A hooked call cancelled by the spent budget fails (ECANCELED) rather than unwinds;
            // the fiber unwinds at its next wait. Not an error of the crawl.
            Err(_) if self.budget_end.is_some_and(|end| Instant::now() >= end) => {
                return Vec::new()
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                self.errors.fetch_add(1, Relaxed);
                return Vec::new();
            }
        };
        self.fetched.fetch_add(1, Relaxed);
        let worker = std::thread::current().name().unwrap_or("?").to_owned();
        let mut stats = self.per_worker.lock().unwrap();
        let w = stats.entry(worker).or_default();
        *w = (w.0 + 1, w.1 + body.len(), w.2 + t.elapsed());
        drop(stats);
        let mut visited = self.visited.lock().unwrap();
        links(&body)
            .into_iter()
            .filter(|l| visited.insert(l.clone())) // true only for the first to see it
            .collect()
    }
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let pages: usize = args.get("--pages", 2000);
    let concurrency: usize = args.get("--concurrency", 50);
    let latency = Duration::from_millis(args.get("--latency-ms", 20));
    let budget: Option<u64> = args.opt("--budget-ms");
    args.done();
    if budget == Some(0) {
        flags::fail(USAGE, "--budget-ms must be at least 1");
    }
    if pages == 0 || concurrency == 0 {
        flags::fail(USAGE, "--pages and --concurrency must be at least 1");
    }

    let hits: Arc<Vec<AtomicUsize>> = Arc::new((0..pages).map(|_| AtomicUsize::new(0)).collect());
    let server_hits = hits.clone();
    let server = Server::new(2, move |path| {
        fiber::sleep(latency);
        match path
            .strip_prefix("/page/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(i) if i < pages => {
                server_hits[i].fetch_add(1, Relaxed);
                Reply::ok(site::site_page(i, pages))
            }
            _ => Reply::error(404, "no such page"),
        }
    });

    println!(
        "crawler: {pages} pages, at most {concurrency} fetches in flight, latency {latency:?}"
    );
    // One agent for the whole crawl: its pool keeps up to `concurrency` connections alive.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_idle_connections(concurrency)
        .max_idle_connections_per_host(concurrency)
        .build();
    let crawl = Crawl {
        base: format!("http://{}", server.addr),
        agent,
        limit: Semaphore::new(concurrency),
        visited: Mutex::new(HashSet::from(["/page/0".to_owned()])),
        per_worker: Mutex::new(BTreeMap::new()),
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        fetched: AtomicUsize::new(0),
        budget_end: budget.map(|ms| Instant::now() + Duration::from_millis(ms)),
    };
    let start = Instant::now();
    let mut depth = 0;
    let mut crawl_all = || {
        let mut level = vec!["/page/0".to_owned()];
        while !level.is_empty() {
            println!("depth {depth}: {} pages", level.len());
            // One fiber per page of this level; the semaphore bounds how many fetch at once.
            level = fiber::scope(|s| {
                let crawl = &crawl;
                let fetches: Vec<_> = level
                    .iter()
                    .map(|p| s.spawn(move || crawl.visit(p)))
                    .collect();
                fetches
                    .into_iter()
                    .flat_map(|f| f.join().unwrap())
                    .collect()
            });
            depth += 1;
        }
    };
    // The budget cancels the scope's fibers wherever they wait (the semaphore, a fetch), and
    // the crawl with them; `timeout` returns once every one of them has ended.
    let stopped = match crawl.budget_end {
        // A deadline belongs to a fiber: run the crawl as one (`block_on` may borrow).
        Some(end) => fiber::Runtime::builder()
            .build()
            .expect("runtime")
            .block_on(|| fiber::timeout_at(end, crawl_all).is_err()),
        None => {
            crawl_all();
            false
        }
    };
    let elapsed = start.elapsed();
    if stopped {
        println!("the time budget was spent: every fetch in flight was cancelled");
    }

    let visited = crawl.visited.lock().unwrap().len();
    let fetched: usize = hits.iter().map(|h| h.load(Relaxed)).sum();
    let distinct = hits.iter().filter(|h| h.load(Relaxed) > 0).count();
    let twice = hits.iter().filter(|h| h.load(Relaxed) > 1).count();
    let rate = fetched as f64 / elapsed.as_secs_f64();
    println!("visited {visited} pages in {elapsed:.2?} ({rate:.0} pages/s)");
    let connections = server.connections();
    println!(
        "server: {fetched} requests for {distinct} distinct pages on {connections} connections, \
         {twice} fetched twice"
    );
    let peak = crawl.peak.load(Relaxed);
    println!("peak fetches in flight: {peak} (limit {concurrency})");
    println!(
        "{:<20} {:>7} {:>10} {:>12}",
        "worker thread", "pages", "bytes", "avg fetch"
    );
    for (name, (pages, bytes, busy)) in crawl.per_worker.lock().unwrap().iter() {
        let avg = fmt::ms(*busy / (*pages).max(1) as u32);
        println!("{name:<20} {pages:>7} {bytes:>10} {avg:>12}");
    }
    let errors = crawl.errors.load(Relaxed);
    let complete = crawl.fetched.load(Relaxed);
    let ms = elapsed.as_millis();
    println!(
        "RESULT pages={pages} visited={visited} fetched={fetched} distinct={distinct} \
         duplicates={twice} errors={errors} peak={peak} limit={concurrency} depth={depth} \
         connections={connections} complete={complete} stopped={} elapsed_ms={ms}",
        u8::from(stopped)
    );
}

/// GETs `url` and reads the body: ordinary blocking ureq (a 4xx/5xx answer is an `Err` too).
fn fetch(agent: &ureq::Agent, url: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(agent.get(url).call()?.into_string()?)
}

/// The `href="..."` targets of an HTML page.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}
