//! Helpers for the `pattern_*` smoke tests: run an example with `cargo run --example` (so the test
//! works whether or not the example was built already) and parse its `RESULT key=value ...` lines.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo run --quiet --example NAME -- ARGS`, in the profile and with the hook feature of this
/// test build (so `cargo test --no-default-features` runs the examples without the hooks too,
/// instead of building a second fiber with them).
pub(crate) fn example_command(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--example", name]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if !cfg!(feature = "hook") {
        cmd.arg("--no-default-features");
    }
    cmd.arg("--").args(args);
    cmd
}

/// Kills the child when dropped (a failed assertion must not leave a server running).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server example with `args` and reads the first line it prints (where it says its
/// address); returns the child (killed on drop) and that line, trimmed.
pub(crate) fn start_server(name: &str, args: &[&str]) -> (KillOnDrop, String) {
    let mut child = example_command(name, args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let child = KillOnDrop(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)
        .unwrap_or_else(|e| panic!("reading {name}'s first line: {e}"));
    (child, line.trim().to_string())
}

/// The outcome of one example run.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Every `RESULT` line, as maps from key to value.
    pub(crate) fn results(&self) -> Vec<HashMap<String, String>> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The only `RESULT` line.
    pub(crate) fn result(&self) -> HashMap<String, String> {
        let mut all = self.results();
        assert_eq!(
            all.len(),
            1,
            "expected one RESULT line in:\n{}",
            self.stdout
        );
        all.pop().unwrap()
    }
}

/// A numeric field of a `RESULT` line.
pub(crate) fn num(result: &HashMap<String, String>, key: &str) -> f64 {
    result
        .get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {result:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("`{key}` is not a number in {result:?}"))
}

/// Runs the example to completion (killing it after `secs`), and returns its output.
pub(crate) fn run_example(name: &str, args: &[&str], secs: u64) -> Run {
    run_example_env(name, args, &[], secs)
}

/// [`run_example`] with `env` added to the example's environment.
pub(crate) fn run_example_env(name: &str, args: &[&str], env: &[(&str, &str)], secs: u64) -> Run {
    let child = example_command(name, args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo run");
    let mut child = KillOnDrop(child);
    // Drain the pipes on threads, so a chatty child never blocks on a full pipe.
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            drop(child);
            panic!(
                "example {name} {args:?} did not finish within {secs} s; stdout so far:\n{}",
                out.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    println!("{}", run.stdout); // shown when the test fails
    eprintln!("{}", run.stderr);
    run
}

/// Runs the example and asserts it exited with status 0.
pub(crate) fn run_ok(name: &str, args: &[&str], secs: u64) -> Run {
    let run = run_example(name, args, secs);
    assert_eq!(run.code, Some(0), "{name} {args:?} failed:\n{}", run.stderr);
    run
}

/// Asserts that a bad flag makes the example exit with status 2 and print its usage.
pub(crate) fn rejects_bad_flags(name: &str, secs: u64) {
    let run = run_example(name, &["--no-such-flag", "1"], secs);
    assert_eq!(run.code, Some(2), "{name} accepted an unknown flag");
    assert!(
        run.stderr.contains("usage:"),
        "no usage message:\n{}",
        run.stderr
    );
}
