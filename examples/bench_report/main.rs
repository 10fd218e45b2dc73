//! The benchmark report: measures fiber against tokio, may and std threads (spawn cost, memory
//! per sleeper, switch cost, channel ping-pong, mutex contention, echo throughput and p99,
//! skynet) and writes `docs/benchmarks.md` with tables, ratios and SVG charts in
//! `docs/benchmarks/`.
//!
//! `cargo run --release --example bench_report -- [--quick] [--out DIR]`
//!
//! - `--quick`: tiny sizes and one round (well under a minute; a smoke test, not a measurement);
//! - `--out DIR`: write `DIR/benchmarks.md` and `DIR/benchmarks/*.svg` (default: the crate's
//!   `docs/`).
//!
//! A full run takes about 5-8 minutes on 2 cores. Every cell runs in a child process (this
//! program re-run with `--point SERIES PEER SIZE`, echo servers with `--serve KIND`), see
//! `child.rs`.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[path = "../../benches/common/mod.rs"]
mod common;
#[path = "../echo_common/mod.rs"]
mod echo_common;
#[path = "../common/mod.rs"]
mod measure;
#[path = "../../benches/workloads/mod.rs"]
mod workloads;

mod chart;
mod child;
mod machine;
mod markdown;
mod model;
mod plan;
mod point;
mod run;

const USAGE: &str = "usage: bench_report [--quick] [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    match args.first().map(String::as_str) {
        Some("--serve") => {
            child::set_up();
            echo_common::serve(&args[1], echo_common::arg("--workers", 2));
        }
        Some("--point") if args.len() >= 4 => {
            child::set_up();
            let x = args[3].parse().expect("--point SERIES PEER SIZE");
            point::run(&args[1], &args[2], x, flag("--quick"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let mut out = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs"));
    let mut quick = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--quick", _) => quick = true,
            ("--out", Some(dir)) => {
                out = PathBuf::from(dir);
                it.next();
            }
            ("--help" | "-h", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("unknown argument {a}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match report(&out, quick) {
        Ok(page) => {
            println!("wrote {}", page.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures everything, then writes the page and its charts under `out`; returns the page's path.
fn report(out: &std::path::Path, quick: bool) -> Result<PathBuf, String> {
    let start = Instant::now();
    let load_before = machine::load();
    eprintln!(
        "bench_report: load average {:.2} before{}",
        load_before[0],
        if quick { " (quick)" } else { "" }
    );
    let tables = run::all(quick);
    let load_after = machine::load();
    let chart_dir = "benchmarks";
    let charts = out.join(chart_dir);
    std::fs::create_dir_all(&charts).map_err(|e| format!("{}: {e}", charts.display()))?;
    for t in &tables {
        chart::draw(t, &charts.join(format!("{}.svg", t.id)))?;
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
        },
        &tables,
    );
    let path = out.join("benchmarks.md");
    std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
