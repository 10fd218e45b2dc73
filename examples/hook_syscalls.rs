//! Syscalls per echo round trip, per server: each echo server (a child process, `--serve KIND`)
//! runs under `strace -f -c` while the fiber load generator drives it; the counts are divided by
//! the round trips the server answered. Shows whether `std::net` through the libc hooks
//! (`fiber-std`) makes the same syscalls as `fiber::net` (`fiber`). Needs `strace` on `PATH`.
//!
//! `cargo run --release --example hook_syscalls -- [--servers fiber,fiber-std] [--conns 10]
//!  [--secs 2] [--workers 2] [--server-exe PATH]`
//!
//! `--server-exe` serves from another build (any program that takes `--serve KIND --workers N`,
//! such as `bench_report` or this one), to compare two versions of the hooks.
//!
//! strace slows every syscall down a great deal, so the round-trip rate under it means nothing;
//! the counts per round trip are what it is for. Connection set-up and teardown (accept, close,
//! a few fcntl/getsockopt per connection) are spread over all round trips and vanish at a few
//! thousand round trips per connection.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fiber_support::echo;
use fiber_support::echo_load;
use fiber_support::flags::{self, Flags};

const USAGE: &str = "usage: hook_syscalls [--servers KIND,...] [--conns N] [--secs S] [--workers N]
  --servers  echo servers to trace (default fiber,fiber-std; also tokio, may, std)
  --conns    connections of the load (default 10)
  --secs     seconds of load per server (default 2)
  --workers  worker threads of each server (default 2)
  --server-exe  the program that serves (`--serve KIND --workers N`; default: this one)";

/// One syscall's line of `strace -c`.
struct Count {
    name: String,
    calls: u64,
    errors: u64,
}

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    echo::serve_if_asked(&mut flags);
    let servers: Vec<String> = flags.list("--servers", "fiber,fiber-std");
    let conns: usize = flags.get("--conns", 10);
    let secs: f64 = flags.get("--secs", 2.0);
    let workers: usize = flags.get("--workers", 2);
    let exe = flags
        .opt::<String>("--server-exe")
        .map_or_else(|| std::env::current_exe().expect("current exe"), Into::into);
    flags.done();
    if conns == 0 || secs <= 0.0 {
        flags::fail(USAGE, "--conns and --secs must be positive");
    }
    for kind in &servers {
        let out = std::env::temp_dir().join(format!(
            "fiber-hook-syscalls-{}-{kind}.txt",
            std::process::id()
        ));
        let (mut strace, addr) = traced_server(&exe, kind, workers, &out);
        let r = echo_load::run_load(
            addr,
            conns,
            Duration::from_secs_f64(secs),
            Duration::ZERO,
            64,
            2,
        );
        stop(&mut strace);
        let text = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("strace output {}: {e}", out.display()));
        let _ = std::fs::remove_file(&out);
        let counts = parse(&text);
        let trips = r.total_round_trips.max(1) as f64;
        println!(
            "{kind}: {} round trips on {conns} connections, {} errors",
            r.total_round_trips, r.errors
        );
        println!(
            "  {:<16} {:>10} {:>12} {:>10}",
            "syscall", "calls", "per trip", "errors"
        );
        let mut total = 0.0;
        for c in counts.iter().filter(|c| c.calls as f64 / trips >= 0.001) {
            let per = c.calls as f64 / trips;
            total += per;
            println!(
                "  {:<16} {:>10} {:>12.3} {:>10}",
                c.name, c.calls, per, c.errors
            );
        }
        println!("  {:<16} {:>10} {:>12.3}", "total", "", total);
    }
}

/// Starts `strace -f -c -o out this-exe --serve kind` and reads the server's address.
fn traced_server(exe: &Path, kind: &str, workers: usize, out: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out)
        .arg(exe)
        .args(["--serve", kind, "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start strace ({e}); is it installed?"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("server address");
    let addr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the server printed no address: {line:?}"));
    (child, addr)
}

/// Kills the traced server (strace's child); strace then writes the summary and exits.
fn stop(strace: &mut Child) {
    let pid = strace.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("strace's children");
    let server: libc::pid_t = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("strace has the server as its child");
    // SAFETY: kill(2) on the server strace started for us; it touches no memory.
    let r = unsafe { libc::kill(server, libc::SIGKILL) };
    assert_eq!(r, 0, "kill server: {}", std::io::Error::last_os_error());
    let _ = strace.wait();
}

/// The rows of `strace -c`'s table: `% time seconds usecs/call calls [errors] syscall`.
fn parse(text: &str) -> Vec<Count> {
    let mut counts: Vec<Count> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = (*f.last()?).to_string();
            if f.len() < 5 || name == "total" || f[0].parse::<f64>().is_err() {
                return None;
            }
            let calls = f[3].parse().ok()?;
            let errors = if f.len() == 6 { f[4].parse().ok()? } else { 0 };
            Some(Count {
                name,
                calls,
                errors,
            })
        })
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.calls));
    counts
}
