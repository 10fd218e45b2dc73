//! The `redis` crate, unchanged (its sync API over `std::net`), from fibers against a real
//! `redis-server` that each test starts for itself (`fiber_support::redis_server`). With the hooks
//! a blocking command parks only its fiber: 1,000 `BLPOP`s of 100 ms overlap, and on one worker a
//! fiber blocked in `BLPOP` leaves the worker to others, one of which wakes it with `LPUSH`.
//!
//! Without `redis-server` on PATH the tests print a skip message, or fail when env `CI` is set.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber_support::redis_server::RedisServer;
use redis::Commands;
use support::{runtime, watchdog};

/// Threads of this process now (`Threads:` of `/proc/self/status`).
fn os_threads() -> u64 {
    fiber_support::mem::mem().threads
}

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("a valid redis URL")
        .get_connection()
        .expect("connect to the test's redis-server")
}

#[test]
fn fibers_set_and_get_their_own_keys() {
    let Some(server) = RedisServer::start_or_skip("fibers_set_and_get_their_own_keys") else {
        return;
    };
    const FIBERS: usize = 200;
    const KEYS: usize = 10;
    let url = server.url();
    watchdog(60, move || {
        let rt = runtime(2, "hook-redis-kv");
        let matched = rt.block_on(|| {
            let handles: Vec<_> = (0..FIBERS)
                .map(|i| {
                    let url = url.clone();
                    fiber::spawn(move || {
                        let mut con = connect(&url);
                        for k in 0..KEYS {
                            let () = con.set(format!("k:{i}:{k}"), format!("v{i}.{k}")).unwrap();
                        }
                        (0..KEYS)
                            .filter(|k| {
                                let got: Option<String> = con.get(format!("k:{i}:{k}")).unwrap();
                                got.as_deref() == Some(format!("v{i}.{k}").as_str())
                            })
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(matched, FIBERS * KEYS, "values read back as written");
        // The server holds exactly those keys (checked from a plain thread).
        let keys: usize = redis::cmd("DBSIZE").query(&mut connect(&url)).unwrap();
        assert_eq!(keys, FIBERS * KEYS);
    });
    drop(server);
}

#[test]
fn a_thousand_100ms_blpops_overlap_on_two_workers() {
    let Some(server) = RedisServer::start_or_skip("a_thousand_100ms_blpops_overlap_on_two_workers")
    else {
        return;
    };
    const FIBERS: usize = 1000;
    // One fd per connection here, and as many in the server (which raises its own soft limit).
    let fds = fiber_support::fdlimit::raise_fd_limit(4 * FIBERS as u64);
    assert!(
        fds >= FIBERS as u64 + 100,
        "{FIBERS} connections need an open-file limit over {}, this process may have {fds}: \
         raise the hard limit (ulimit -Hn)",
        FIBERS + 100
    );
    let url = server.url();
    watchdog(120, move || {
        let rt = runtime(2, "hook-redis-blpop");
        let (timed_out, took, max_threads) = rt.block_on(|| {
            let connected: Vec<_> = (0..FIBERS)
                .map(|_| {
                    let url = url.clone();
                    fiber::spawn(move || connect(&url))
                })
                .collect();
            let connections: Vec<_> = connected.into_iter().map(|h| h.join().unwrap()).collect();

            // A plain thread samples the process's thread count while the BLPOPs wait.
            let done = Arc::new(AtomicBool::new(false));
            let sampler = {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut max = os_threads();
                    while !done.load(Ordering::Relaxed) {
                        max = max.max(os_threads());
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    max
                })
            };
            let t0 = Instant::now();
            let waits: Vec<_> = connections
                .into_iter()
                .enumerate()
                .map(|(i, mut con)| {
                    fiber::spawn(move || {
                        // Nothing is ever pushed: every BLPOP ends with nil after its 0.1 s.
                        let got: Option<[String; 2]> = con.blpop(format!("list:{i}"), 0.1).unwrap();
                        got.is_none()
                    })
                })
                .collect();
            let timed_out = waits
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|nil| *nil)
                .count();
            let took = t0.elapsed();
            done.store(true, Ordering::Relaxed);
            (timed_out, took, sampler.join().unwrap())
        });
        assert_eq!(timed_out, FIBERS, "every BLPOP timed out with nil");
        // Blocking the carriers would take 1000 × 0.1 s / 2 workers = 50 s; overlapped, about
        // one latency. The bound is generous so that a loaded machine cannot make it flake.
        assert!(
            took < Duration::from_secs(5),
            "1000 BLPOPs of 0.1 s took {took:?}"
        );
        assert!(
            took >= Duration::from_millis(100),
            "a BLPOP of 0.1 s returned early: {took:?}"
        );
        assert!(
            max_threads < 64,
            "{max_threads} OS threads during the BLPOPs"
        );
        eprintln!("1000 BLPOPs of 0.1 s on 2 workers: {took:?}, at most {max_threads} OS threads");
    });
    drop(server);
}

#[test]
fn a_fiber_blocked_in_blpop_leaves_one_worker_to_others() {
    let Some(server) =
        RedisServer::start_or_skip("a_fiber_blocked_in_blpop_leaves_one_worker_to_others")
    else {
        return;
    };
    let url = server.url();
    watchdog(60, move || {
        let rt = runtime(1, "hook-redis-one");
        rt.block_on(|| {
            const TICKS: usize = 20;
            // The tick count when the BLPOP was sent; `usize::MAX` until then.
            let sent_at = Arc::new(AtomicUsize::new(usize::MAX));
            let finished = Arc::new(AtomicBool::new(false));
            let ticks = Arc::new(AtomicUsize::new(0));

            let ticker = {
                let (finished, ticks) = (finished.clone(), ticks.clone());
                fiber::spawn(move || {
                    while !finished.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                        ticks.fetch_add(1, Ordering::SeqCst);
                    }
                })
            };
            let waiter = {
                let (url, sent_at, finished, ticks) = (
                    url.clone(),
                    sent_at.clone(),
                    finished.clone(),
                    ticks.clone(),
                );
                fiber::spawn(move || {
                    let mut con = connect(&url);
                    let t0 = Instant::now();
                    let before = ticks.load(Ordering::SeqCst);
                    sent_at.store(before, Ordering::SeqCst);
                    // Timeout 0: wait for as long as it takes (the watchdog bounds the test).
                    // On the one worker nothing else runs until this fiber parks, so the
                    // command is written before the pusher can look at `sent_at`.
                    let got: Option<[String; 2]> = con.blpop("wake", 0.0).unwrap();
                    let ticked = ticks.load(Ordering::SeqCst) - before;
                    finished.store(true, Ordering::SeqCst);
                    (got, t0.elapsed(), ticked)
                })
            };
            let pusher = {
                let (url, ticks) = (url.clone(), ticks.clone());
                fiber::spawn(move || {
                    let mut con = connect(&url);
                    // Wake the BLPOP only once the ticker has run TICKS times during it: if the
                    // BLPOP held the worker, that would never happen (and the watchdog fires).
                    // Counted in ticks, not time, so a loaded machine only slows it down.
                    loop {
                        let sent = sent_at.load(Ordering::SeqCst);
                        if sent != usize::MAX && ticks.load(Ordering::SeqCst) >= sent + TICKS {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let len: usize = con.lpush("wake", "pushed").unwrap();
                    len
                })
            };
            let (got, waited, ticked) = waiter.join().unwrap();
            let pushed_len = pusher.join().unwrap();
            ticker.join().unwrap();
            assert_eq!(
                pushed_len, 1,
                "LPUSH made a list of one, served to the BLPOP"
            );
            assert_eq!(got, Some(["wake".to_owned(), "pushed".to_owned()]));
            assert!(
                ticked >= TICKS,
                "the ticker ran {ticked} times while BLPOP waited {waited:?}"
            );
            // TICKS sleeps of 5 ms lie between sending the BLPOP and its answer.
            assert!(
                waited >= Duration::from_millis(5 * TICKS as u64),
                "BLPOP returned before the LPUSH: {waited:?}"
            );
        });
    });
    drop(server);
}
