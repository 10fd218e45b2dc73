//! The Go peer: the goroutine versions of the report's workloads and of the stress demo's stages
//! (`benches/peers/go`, standard library only), built with the `go` found on `PATH` into the
//! running executable's target directory (`target/<profile>/go-peer/`, with the Go build cache
//! there too, so that no home directory is needed). Without `go` on `PATH`, or with
//! `FIBER_BENCH_NO_GO=1`, the Go peer is [`NOT_INSTALLED`] and every Go figure is left out.
//!
//! The program speaks the protocol of `bench_report`'s children: `go-peer --point SERIES SIZE
//! [--quick] [--reps R] [--workers W] [--ops N] [--sleep-ms MS]` prints one `RESULT key=value ...`
//! line; `go-peer --serve --workers W` runs the echo server (a goroutine per connection) and
//! prints its address first, as [`crate::echo::serve`] does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::compare::Table;
use crate::echo_load;

/// The reason shown for every Go cell when there is no Go toolchain.
pub const NOT_INSTALLED: &str = "not installed";

/// Set (to anything but `0` or empty) to act as if `go` were not on `PATH`.
pub const NO_GO_ENV: &str = "FIBER_BENCH_NO_GO";

/// The Go program's sources.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/peers/go");

/// The built Go program.
#[derive(Debug, Clone)]
pub struct Built {
    /// The executable.
    pub bin: PathBuf,
    /// `go version`'s answer, without the leading `go version ` (e.g. `go1.19.8 linux/amd64`).
    pub version: String,
}

/// Where the program and its build cache go: `go-peer/` in the profile directory of the running
/// executable (`target/release/go-peer/` for `target/release/examples/bench_report`).
fn dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut profile = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    if profile.ends_with("examples") || profile.ends_with("deps") {
        profile.pop();
    }
    profile.join("go-peer")
}

/// The path of the built program (whether or not it was built).
pub fn bin() -> PathBuf {
    dir().join("go-peer")
}

/// The `go` executable on `PATH`, unless [`NO_GO_ENV`] says to act as if there were none.
fn find_go() -> Option<PathBuf> {
    if std::env::var(NO_GO_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("go"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Builds the Go program, once per process: `Err` holds the reason there is no Go figure
/// ([`NOT_INSTALLED`], or why the build failed).
pub fn build() -> &'static Result<Built, String> {
    BUILT.get_or_init(|| {
        let go = find_go().ok_or_else(|| NOT_INSTALLED.to_string())?;
        let dir = dir();
        let bin = bin();
        let go_cmd = |args: &[&str]| {
            let mut c = Command::new(&go);
            c.args(args)
                .current_dir(SOURCES)
                .env("GOCACHE", dir.join("cache"))
                .env("GOPATH", dir.join("gopath"))
                // No cgo (no C compiler needed), no go.env file, no module or toolchain download.
                .env("CGO_ENABLED", "0")
                .env("GOENV", "off")
                .env("GOFLAGS", "")
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local");
            c
        };
        let version = go_cmd(&["version"])
            .output()
            .map_err(|e| format!("{}: {e}", go.display()))?;
        let version = String::from_utf8_lossy(&version.stdout)
            .trim()
            .trim_start_matches("go version ")
            .to_string();
        let out = go_cmd(&["build", "-o"])
            .arg(&bin)
            .arg(".")
            .output()
            .map_err(|e| format!("go build: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("go build failed: {last}"));
        }
        Ok(Built { bin, version })
    })
}

/// The result of [`build`], once something asked for it.
static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

/// What the Go column is, for a footer: the Go version, or why there is no Go figure; `None` if
/// nothing asked for the Go peer in this process.
pub fn describe() -> Option<String> {
    BUILT.get().map(|built| match built {
        Ok(b) => format!("{} (benches/peers/go)", b.version),
        Err(e) if e == NOT_INSTALLED => format!("{e} (no `go` on PATH, or {NO_GO_ENV} set)"),
        Err(e) => e.clone(),
    })
}

/// In a child of `bench_report` (`--point SERIES go SIZE`): becomes the Go program measuring that
/// point (exec, so its `RESULT` line is the child's). Panics if it cannot.
pub fn exec_point(series: &str, x: u64, quick: bool) -> ! {
    let mut cmd = Command::new(bin());
    cmd.args(["--point", series, &x.to_string()]);
    if quick {
        cmd.arg("--quick");
    }
    let e = cmd.exec();
    panic!("cannot run {}: {e}", bin().display());
}

/// Starts the Go echo server with `workers` (GOMAXPROCS) and reads the address it listens on.
pub fn spawn_server(workers: usize) -> (Child, SocketAddr) {
    let mut child = Command::new(bin())
        .args(["--serve", "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin().display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("go server address");
    let addr = line.trim().parse().expect("go server printed its address");
    (child, addr)
}

/// Runs one point of the Go program (building it first) and returns its `RESULT` figures.
pub fn point(series: &str, size: u64, extra: &[String]) -> Result<Vec<(String, f64)>, String> {
    let built = build().as_ref().map_err(Clone::clone)?;
    let out = Command::new(&built.bin)
        .args(["--point", series, &size.to_string()])
        .args(extra)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", built.bin.display()))?;
    if !out.status.success() {
        return Err(format!("go-peer {series} {size}: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let values: Vec<(String, f64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .flat_map(str::split_whitespace)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    if values.is_empty() {
        return Err(format!("go-peer {series} {size}: no result"));
    }
    Ok(values)
}

fn get(values: &[(String, f64)], key: &str) -> Option<f64> {
    values.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
}

/// A stress stage's Go figures, printed like the other peers' lines, or the reason there are none.
fn stage(name: &str, series: &str, size: u64, extra: &[String]) -> Option<Vec<(String, f64)>> {
    match point(series, size, extra) {
        Ok(v) => Some(v),
        Err(why) => {
            println!("  go: {why} ({name})");
            None
        }
    }
}

/// The stress demo's Go figures: one function per stage that has a Go equivalent, each filling
/// the Go column of the rows its stage added (the rows are found by metric name).
pub mod stress {
    use super::*;

    fn args(pairs: &[(&str, u64)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect()
    }

    /// `million`: `n` goroutines that each sleep `sleep_ms` (GOMAXPROCS `workers`).
    pub fn million(table: &mut Table, n: usize, sleep_ms: u64, workers: usize) {
        let extra = args(&[("--sleep-ms", sleep_ms), ("--workers", workers as u64)]);
        let Some(v) = stage("million", "sleepers", n as u64, &extra) else {
            return;
        };
        println!(
            "  {:<12} n={n:<9} asleep at once {:<9} wall {:>8.3} s  peak RSS {:>8.1} MiB  RSS/sleeper {:>6.2} KiB",
            "goroutines",
            get(&v, "asleep").unwrap_or(0.0),
            get(&v, "wall_s").unwrap_or(0.0),
            get(&v, "peak_mib").unwrap_or(0.0),
            get(&v, "kib").unwrap_or(0.0),
        );
        table.set_go("million", "wall for", get(&v, "wall_s"));
        table.set_go("million", "most asleep", get(&v, "asleep"));
        table.set_go("million", "RSS per sleeper", get(&v, "kib"));
        table.set_go("million", "peak RSS", get(&v, "peak_mib"));
    }

    /// `spawn`: spawn + join of `n` goroutines, best of 3 (GOMAXPROCS `workers`).
    pub fn spawn(table: &mut Table, n: u64, workers: usize) {
        let extra = args(&[("--reps", 3), ("--workers", workers as u64)]);
        let Some(v) = stage("spawn", "spawn", n, &extra) else {
            return;
        };
        let ns = get(&v, "ns");
        println!("  go {:.0} ns per spawn + join", ns.unwrap_or(0.0));
        table.set_go("spawn", "spawn + join", ns);
    }

    /// `switch`: `switches` switches between two goroutines alternating `runtime.Gosched`
    /// (GOMAXPROCS 1), best of 3.
    pub fn switch(table: &mut Table, switches: u64) {
        let extra = args(&[("--reps", 3), ("--ops", switches), ("--workers", 1)]);
        let Some(v) = stage("switch", "switch", 1, &extra) else {
            return;
        };
        let ns = get(&v, "ns");
        println!("  go {:.1} ns per switch", ns.unwrap_or(0.0));
        table.set_go("switch", "one switch", ns);
    }

    /// `echo`: the Go server (a goroutine per connection, GOMAXPROCS `workers`) under the same
    /// fiber load as the others.
    pub fn echo(table: &mut Table, conns: usize, secs: u64, workers: usize) {
        if let Err(why) = build() {
            println!("  go: {why} (echo)");
            return;
        }
        let (mut child, addr) = spawn_server(workers);
        let duration = Duration::from_secs(secs);
        let r = echo_load::run_load(
            addr,
            conns,
            duration,
            Duration::from_millis(500),
            64,
            workers,
        );
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "  {:<6} {:>9.0} round trips/s, p99 {:.2} ms, {} errors",
            "go",
            r.per_sec(),
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
        table.set_go(
            "echo",
            "time per round trip",
            Some(1e6 / r.per_sec().max(1.0)),
        );
        table.set_go("echo", "p99 latency", Some(r.p99.as_secs_f64() * 1e3));
    }
}
