//! The benchmark report: measures fiber against tokio, Go, may and std threads (spawn cost, memory
//! per sleeper, switch cost, channel ping-pong, mutex contention, echo throughput and p99,
//! skynet) and writes `docs/benchmarks.md` with tables, ratios and SVG charts in
//! `docs/benchmarks/`.
//!
//! `cargo run --release --example bench_report -- [--quick] [--only IDS] [--out DIR]`
//!
//! - `--quick`: tiny sizes and one round (well under a minute; a smoke test, not a measurement);
//! - `--only IDS`: only these benchmarks (comma-separated ids: spawn, memory, switch, pingpong,
//!   mutex, echo, skynet, cancel, timeout); without `--out` the page goes to stdout, so that a partial run never
//!   replaces `docs/benchmarks.md`;
//! - `--out DIR`: write `DIR/benchmarks.md` and `DIR/benchmarks/*.svg` (default: the crate's
//!   `docs/`).
//!
//! A full run takes about 5-8 minutes on 2 cores. Every cell runs in a child process (this
//! program re-run with `--point SERIES PEER SIZE`, echo servers with `--serve KIND`), see
//! `child.rs`. The Go column is `benches/peers/go`, built at the start when `go` is on `PATH`
//! (else, or with `FIBER_BENCH_NO_GO=1`, every Go cell is "not installed"), see
//! `fiber_support::go_peer`.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use fiber_support::{echo, flags, go_peer};

mod chart;
mod child;
mod machine;
mod markdown;
mod model;
mod plan;
mod point;
mod run;

const USAGE: &str = "usage: bench_report [--quick] [--only IDS] [--out DIR]
  --quick  tiny sizes and one round: a smoke test, not a measurement
  --only   only these benchmarks, comma-separated (spawn,memory,switch,pingpong,mutex,echo,
           skynet,cancel,timeout); without --out the page is printed to stdout instead of written
  --out    write DIR/benchmarks.md and DIR/benchmarks/*.svg (default: the crate's docs/)";

/// What this run of the program is.
enum Mode {
    /// The report (the parent). `out: None`: print the page (a partial run without `--out`).
    Report {
        out: Option<PathBuf>,
        quick: bool,
        only: Option<Vec<String>>,
    },
    /// A child measuring one cell: `--point SERIES PEER SIZE [--quick]`.
    Point {
        series: String,
        peer: String,
        x: u64,
        quick: bool,
    },
    /// A child serving echo: `--serve KIND [--workers N]` (see `fiber_support::echo`).
    Serve { kind: String, workers: usize },
}

/// The command line, on lexopt (`--point` takes three values, which `fiber_support::flags` does
/// not do).
fn parse() -> Result<Mode, lexopt::Error> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut out: Option<PathBuf> = None;
    let mut only: Option<Vec<String>> = None;
    let (mut quick, mut point, mut serve, mut workers) = (false, None, None, 2);
    while let Some(arg) = p.next()? {
        match arg {
            Long("quick") => quick = true,
            Long("out") => out = Some(p.value()?.into()),
            Long("only") => only = Some(benchmark_ids(&p.value()?.string()?)?),
            Long("point") => {
                let v: Vec<String> = p.values()?.map(|v| v.string()).collect::<Result<_, _>>()?;
                let [series, peer, x] = <[String; 3]>::try_from(v)
                    .map_err(|_| "--point takes SERIES PEER SIZE".to_string())?;
                let x = x.parse().map_err(|_| format!("--point: bad size `{x}`"))?;
                point = Some((series, peer, x));
            }
            Long("serve") => serve = Some(p.value()?.string()?),
            Long("workers") => workers = p.value()?.parse()?,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(match (point, serve) {
        (Some((series, peer, x)), _) => Mode::Point {
            series,
            peer,
            x,
            quick,
        },
        (None, Some(kind)) => Mode::Serve { kind, workers },
        (None, None) => Mode::Report {
            out: match (out, &only) {
                (Some(dir), _) => Some(dir),
                (None, Some(_)) => None,
                (None, None) => Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs"))),
            },
            quick,
            only,
        },
    })
}

/// `--only`'s list, each id checked against the benchmarks.
fn benchmark_ids(list: &str) -> Result<Vec<String>, String> {
    let known: Vec<&str> = plan::SPECS.iter().map(|s| s.id).collect();
    list.split(',')
        .map(|id| {
            let id = id.trim();
            if known.contains(&id) {
                Ok(id.to_string())
            } else {
                Err(format!(
                    "--only: unknown benchmark `{id}` (known: {})",
                    known.join(", ")
                ))
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let mode = parse().unwrap_or_else(|e| flags::fail(USAGE, &e.to_string()));
    let (out, quick, only) = match mode {
        Mode::Serve { kind, workers } => {
            child::set_up();
            echo::serve(&kind, workers);
        }
        Mode::Point {
            series,
            peer,
            x,
            quick,
        } => {
            child::set_up();
            point::run(&series, &peer, x, quick);
            return ExitCode::SUCCESS;
        }
        Mode::Report { out, quick, only } => (out, quick, only),
    };
    match report(out.as_deref(), quick, only.as_deref()) {
        Ok(Some(page)) => {
            println!("wrote {}", page.display());
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures everything (or the benchmarks in `only`), then writes the page and its charts under
/// `out` and returns the page's path; without `out`, prints the page and writes no chart.
fn report(
    out: Option<&std::path::Path>,
    quick: bool,
    only: Option<&[String]>,
) -> Result<Option<PathBuf>, String> {
    let start = Instant::now();
    let load_before = machine::load();
    eprintln!(
        "bench_report: load average {:.2} before{}",
        load_before[0],
        if quick { " (quick)" } else { "" }
    );
    let go = go_peer::build();
    match go {
        Ok(b) => eprintln!(
            "bench_report: Go peer {} built: {}",
            b.version,
            b.bin.display()
        ),
        Err(why) => eprintln!("bench_report: Go peer: {why}"),
    }
    let tables = run::all(quick, only, go);
    let load_after = machine::load();
    let chart_dir = "benchmarks";
    if let Some(out) = out {
        let charts = out.join(chart_dir);
        std::fs::create_dir_all(&charts).map_err(|e| format!("{}: {e}", charts.display()))?;
        for t in &tables {
            chart::draw(t, &charts.join(format!("{}.svg", t.id)))?;
        }
    }
    let machine = machine::Machine::read();
    let page = markdown::render(
        &markdown::Run {
            machine: &machine,
            load_before,
            load_after,
            secs: start.elapsed().as_secs_f64(),
            quick,
            chart_dir,
            go: match go {
                Ok(b) => b.version.clone(),
                Err(why) if why == go_peer::NOT_INSTALLED => {
                    format!("{why} (no `go` on `PATH`, or `{}` set)", go_peer::NO_GO_ENV)
                }
                Err(why) => why.clone(),
            },
        },
        &tables,
    );
    let Some(out) = out else {
        print!("{page}");
        return Ok(None);
    };
    let path = out.join("benchmarks.md");
    std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(path))
}
