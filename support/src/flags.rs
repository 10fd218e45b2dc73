//! Command-line flags, on `lexopt`: `--name value` (or `--name=value`) options read by name with
//! a default, switches declared up front (`--quiet`), and `--help`/`-h`. Every error names the
//! flag, is printed with the usage on stderr, and exits with status 2; `--help` prints the usage
//! on stdout and exits with 0.
//!
//! ```no_run
//! let mut flags = fiber_support::flags::Flags::parse("usage: demo [--n N] [--quiet]", &["--quiet"]);
//! let n: usize = flags.get("--n", 100);
//! let quiet = flags.switch("--quiet");
//! flags.done(); // rejects flags nobody asked for
//! ```

use std::ffi::OsString;
use std::str::FromStr;

/// Why parsing stopped without flags.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--help` or `-h`.
    Help,
    /// A malformed command line; the message names the argument.
    Error(String),
}

/// The parsed command line: what was given, consumed by [`Flags::get`] and its siblings.
#[derive(Debug)]
pub struct Flags {
    usage: String,
    /// `(--name, value)` in command-line order; `None` for a switch, or a value that was missing.
    given: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Parses this process's arguments; `switches` are the flags that take no value. Exits on
    /// `--help` or a malformed command line.
    pub fn parse(usage: impl Into<String>, switches: &[&str]) -> Flags {
        let usage = usage.into();
        match Flags::from_args(usage.clone(), switches, std::env::args_os().skip(1)) {
            Ok(flags) => flags,
            Err(Stop::Help) => {
                println!("{usage}");
                std::process::exit(0)
            }
            Err(Stop::Error(msg)) => fail(&usage, &msg),
        }
    }

    /// Parses `args` (without the program name).
    pub fn from_args(
        usage: impl Into<String>,
        switches: &[&str],
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Flags, Stop> {
        use lexopt::Arg::{Long, Short, Value};
        let mut parser = lexopt::Parser::from_args(args);
        let mut given = Vec::new();
        let error = |e: lexopt::Error| Stop::Error(e.to_string());
        while let Some(arg) = parser.next().map_err(error)? {
            match arg {
                Short('h') | Long("help") => return Err(Stop::Help),
                Short(c) => return Err(Stop::Error(format!("unknown flag `-{c}`"))),
                Value(v) => {
                    let v = v.to_string_lossy();
                    return Err(Stop::Error(format!("unexpected argument `{v}`")));
                }
                Long(name) => {
                    let name = format!("--{name}");
                    let value = if switches.contains(&name.as_str()) {
                        None
                    } else {
                        match parser.value() {
                            Ok(v) => Some(v.into_string().map_err(|v| {
                                let v = v.to_string_lossy();
                                Stop::Error(format!("bad value for `{name}`: `{v}`"))
                            })?),
                            // Reported by `get` if the flag is known, by `done` if not.
                            Err(lexopt::Error::MissingValue { .. }) => None,
                            Err(e) => return Err(error(e)),
                        }
                    };
                    given.push((name, value));
                }
            }
        }
        Ok(Flags {
            usage: usage.into(),
            given,
        })
    }

    /// Every value given for `--name`, in order (a repeatable flag).
    pub fn all<T: FromStr>(&mut self, name: &str) -> Vec<T> {
        let mut values = Vec::new();
        let mut i = 0;
        while i < self.given.len() {
            if self.given[i].0 != name {
                i += 1;
                continue;
            }
            match self.given.remove(i).1 {
                Some(v) => values.push(self.value(name, &v)),
                None => self.fail(&format!("missing value for `{name}`")),
            }
        }
        values
    }

    /// The value of `--name` (the last one if given twice), if given.
    pub fn opt<T: FromStr>(&mut self, name: &str) -> Option<T> {
        self.all(name).pop()
    }

    /// The value of `--name`, or `default`.
    pub fn get<T: FromStr>(&mut self, name: &str, default: T) -> T {
        self.opt(name).unwrap_or(default)
    }

    /// The comma-separated values of `--name`, or those of `default`.
    pub fn list<T: FromStr>(&mut self, name: &str, default: &str) -> Vec<T> {
        let given: String = self.get(name, default.to_owned());
        given.split(',').map(|v| self.value(name, v)).collect()
    }

    /// Whether the switch `--name` (declared in [`Flags::parse`]) was given.
    pub fn switch(&mut self, name: &str) -> bool {
        let before = self.given.len();
        self.given.retain(|(n, _)| n != name);
        self.given.len() < before
    }

    /// Call after the last lookup: rejects the flags nobody asked for.
    pub fn done(self) {
        if let Some((flag, _)) = self.given.first() {
            self.fail(&format!("unknown flag `{flag}`"));
        }
    }

    /// Prints `msg` and the usage on stderr and exits with status 2.
    pub fn fail(&self, msg: &str) -> ! {
        fail(&self.usage, msg)
    }

    /// `v` parsed; digit-group underscores (`1_000_000`) are allowed in numbers.
    fn value<T: FromStr>(&self, name: &str, v: &str) -> T {
        v.parse()
            .or_else(|_| v.replace('_', "").parse())
            .unwrap_or_else(|_| self.fail(&format!("bad value for `{name}`: `{v}`")))
    }
}

/// Prints `msg` and `usage` on stderr and exits with status 2.
pub fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n{usage}");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Flags, Stop> {
        Flags::from_args("usage", &["--quiet"], args.iter().copied())
    }

    #[test]
    fn values_defaults_switches_and_lists() {
        let mut f = flags(&[
            "--n",
            "1_000",
            "--addr=x:1",
            "--quiet",
            "--stage",
            "a",
            "--stage",
            "b",
        ])
        .unwrap();
        assert_eq!(f.get("--n", 5u64), 1000);
        assert_eq!(f.get("--missing", 7u32), 7);
        assert_eq!(f.get("--addr", String::new()), "x:1");
        assert!(f.switch("--quiet"));
        assert!(!f.switch("--quiet"));
        assert_eq!(f.all::<String>("--stage"), ["a", "b"]);
        assert_eq!(f.list::<u32>("--conns", "100,1000"), [100, 1000]);
        assert!(f.given.is_empty());
    }

    #[test]
    fn the_last_value_wins() {
        let mut f = flags(&["--n", "1", "--n", "2"]).unwrap();
        assert_eq!(f.get("--n", 0), 2);
    }

    #[test]
    fn help_and_malformed_lines_stop() {
        assert_eq!(flags(&["--help"]).unwrap_err(), Stop::Help);
        assert_eq!(flags(&["--n", "1", "-h"]).unwrap_err(), Stop::Help);
        let Stop::Error(msg) = flags(&["stray"]).unwrap_err() else {
            panic!("accepted a positional argument")
        };
        assert!(msg.contains("`stray`"), "{msg}");
        let Stop::Error(msg) = flags(&["-x"]).unwrap_err() else {
            panic!("accepted -x")
        };
        assert!(msg.contains("`-x`"), "{msg}");
        let Stop::Error(msg) = flags(&["--quiet=1"]).unwrap_err() else {
            panic!("accepted a value for a switch")
        };
        assert!(msg.contains("--quiet"), "{msg}");
    }

    #[test]
    fn unknown_flags_are_kept_for_done_to_name() {
        let f = flags(&["--n", "1", "--no-such-flag", "1", "--bare"]).unwrap();
        let unknown: Vec<_> = f.given.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(unknown, ["--n", "--no-such-flag", "--bare"]);
        assert_eq!(f.given[2].1, None); // a missing value is not an error until asked for
    }
}
