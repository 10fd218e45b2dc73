//! Every measurement runs in a child process (this program re-run with `--point`): peak RSS is the
//! child's own, may's process-wide worker count is set per measurement, and a peer that crashes or
//! hangs costs one cell ("cannot", with the reason) instead of the report.
//!
//! Protocol: the child prints `RESULT key=value ...` (one line) and any number of `NOTE text`
//! lines on stdout; a panic or a non-zero exit is a failure whose reason is the panic message.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one child measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    pub(crate) values: Vec<(String, f64)>,
    pub(crate) notes: Vec<String>,
}

impl Measured {
    pub(crate) fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }
}

/// Runs `--point series kind x` in a child (in its own process group, so that a timeout also
/// kills the servers it started) and waits at most `timeout`.
pub(crate) fn measure(
    series: &str,
    kind: &str,
    x: u64,
    quick: bool,
    timeout: Duration,
) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| format!("no current exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--point", series, kind, &x.to_string()]);
    if quick {
        cmd.arg("--quick");
    }
    // The reason shown is the panic message; a backtrace would only bury it (or, out of memory,
    // fail to allocate).
    cmd.env("RUST_BACKTRACE", "0");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start the child: {e}"))?;
    // Drain both pipes on threads, so a chatty child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            return Err(format!(
                "did not finish within {} s (killed)",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The child's servers share its process group; none may outlive it.
    kill_group(child.id());
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if !status.success() {
        return Err(failure(&stderr, status));
    }
    let measured = parse(&stdout);
    if measured.values.is_empty() {
        return Err("the child printed no result".into());
    }
    Ok(measured)
}

fn parse(stdout: &str) -> Measured {
    let mut m = Measured::default();
    for line in stdout.lines() {
        if let Some(kvs) = line.strip_prefix("RESULT ") {
            m.values.extend(kvs.split_whitespace().filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            }));
        } else if let Some(note) = line.strip_prefix("NOTE ") {
            m.notes.push(note.to_string());
        }
    }
    m
}

/// The panic message (the line after "panicked at"; Go's `panic: ` or `fatal error: ` line, which
/// a goroutine dump follows), else the last line of stderr, else the exit status.
fn failure(stderr: &str, status: std::process::ExitStatus) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let panic = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .and_then(|i| lines.get(i + 1))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))
        });
    let reason = panic
        .or_else(|| lines.iter().rev().find(|l| !l.is_empty()))
        .map(|l| l.to_string());
    let status = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".into(),
    };
    match reason {
        Some(r) if r.chars().count() > 160 => {
            format!("{}… ({status})", r.chars().take(160).collect::<String>())
        }
        Some(r) => format!("{r} ({status})"),
        None => status,
    }
}

fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory. The
    // group is the child's own (process_group(0)), so nothing else is signalled.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// In a child: be killed when the parent dies, so an interrupted report leaves nothing running;
/// and end at the first panic on any thread (a peer out of stacks can otherwise hang in its
/// unwinding, e.g. may at 100k coroutines), after the usual message.
pub(crate) fn set_up() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the calling process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
}

/// In a child: reports the figures.
pub(crate) fn emit(values: &[(&str, f64)]) {
    let kvs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", kvs.join(" "));
}

/// In a child: reports a side figure or caveat, shown under the table.
pub(crate) fn note(text: impl std::fmt::Display) {
    println!("NOTE {text}");
}
