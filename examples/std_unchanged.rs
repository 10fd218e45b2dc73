//! A std-only program whose one change is `std::thread::spawn` → `fiber::spawn`: 1,000 workers
//! that sleep with `std::thread::sleep`, then 1,000 that make a request to a `std::net` server
//! which answers after 100 ms, then 1,000 that GET it with `ureq`. With the `hook` feature the
//! blocking calls park only the fiber, so each round takes about one latency; without it they
//! block the carriers (about 50 s a round on 2 workers).
//!
//! `cargo run --release --example std_unchanged [-- --n 1000]` (the hooks are on by default;
//! `FIBER_HOOK=0` or `--no-default-features` shows the blocked behaviour)
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(100);

/// A std-only server: one worker per connection, reads one line, sleeps, answers.
fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    fiber::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            fiber::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.ends_with(b"\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(DELAY);
                let reply = if req.starts_with(b"GET ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        .to_string()
                } else {
                    String::from_utf8_lossy(&req).into_owned()
                };
                let _ = conn.write_all(reply.as_bytes());
            });
        }
    });
    addr
}

fn round(name: &str, n: usize, work: impl Fn(usize) -> bool + Clone + Send + 'static) {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let work = work.clone();
            fiber::spawn(move || work(i))
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    println!(
        "{name:<28} {ok:>5}/{n} ok in {:>6.2} s   OS threads now: {}",
        t0.elapsed().as_secs_f64(),
        os_threads()
    );
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn main() {
    let mut n = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--n", Some(v)) => n = v.parse().expect("--n takes a number"),
            _ => {
                eprintln!("usage: std_unchanged [--n COUNT]");
                std::process::exit(2);
            }
        }
    }
    #[cfg(feature = "hook")]
    println!("hooks active: {}", fiber::hook::is_active());
    #[cfg(not(feature = "hook"))]
    println!("built without the hook feature: every blocking call blocks its carrier");
    fiber::run(move || {
        let addr = server();
        round("std::thread::sleep(100 ms)", n, |_| {
            std::thread::sleep(DELAY);
            true
        });
        round("std::net request/reply", n, move |i| {
            let Ok(mut c) = TcpStream::connect(addr) else {
                return false;
            };
            let msg = format!("hello {i}\n");
            let mut back = vec![0u8; msg.len()];
            c.write_all(msg.as_bytes()).is_ok()
                && c.read_exact(&mut back).is_ok()
                && back == msg.as_bytes()
        });
        let url = format!("http://{addr}/");
        round("ureq 2 GET", n, move |_| {
            ureq::get(&url)
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .as_deref()
                == Some("ok")
        });
    });
}
