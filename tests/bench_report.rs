//! Smoke test of `examples/bench_report.rs`: a `--quick` run writes a page with every section, a
//! fiber ÷ tokio ratio on every row, the machine it ran on, and one well-formed SVG per chart. The
//! Go column: "not installed" in every cell when Go is absent (forced with `FIBER_BENCH_NO_GO=1`,
//! so this holds whether or not the machine has Go), figures and fiber ÷ Go ratios when `go` is on
//! `PATH`.
mod pattern_support;
mod support;

use std::path::Path;

use pattern_support::{rejects_bad_flags, run_example_env};

/// Every benchmark section and the chart it links.
const SECTIONS: [(&str, &str); 8] = [
    ("Spawn + join", "spawn"),
    ("Memory per sleeping unit", "memory"),
    ("Context switch", "switch"),
    ("Channel ping-pong", "pingpong"),
    ("Mutex contention", "mutex"),
    ("Echo throughput", "echo_rps"),
    ("Echo p99 latency", "echo_p99_ms"),
    ("Skynet", "skynet"),
];

#[test]
fn quick_report_has_every_section_ratio_and_chart() {
    support::watchdog(170, || {
        let out = std::env::temp_dir().join(format!("fiber-bench-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        // Without Go, as on CI: every Go cell says so and the page renders.
        let run = run_example_env(
            "bench_report",
            &["--quick", "--out", out.to_str().unwrap()],
            &[("FIBER_BENCH_NO_GO", "1")],
            160,
        );
        assert_eq!(run.code, Some(0), "bench_report failed:\n{}", run.stderr);
        let page = std::fs::read_to_string(out.join("benchmarks.md")).expect("benchmarks.md");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(
            page.contains(&format!("| cores (`nproc`) | {cores} |")),
            "machine section"
        );
        assert!(page.contains("| kernel (`uname -r`) | ") && page.contains("| load average"));
        assert!(
            page.contains("| Go (`benches/peers/go`) | not installed"),
            "Go row of the machine table"
        );
        for (title, chart) in SECTIONS {
            let section = section(&page, title);
            let rows = table_rows(section);
            assert!(!rows.is_empty(), "{title}: no rows");
            for row in rows {
                // Columns: size, 5 peers (fiber, tokio, go, may, std), then fiber/tokio,
                // fiber/go, fiber/may, fiber/std.
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                assert_eq!(cells[4], "not installed", "{title}: Go cell in {row}");
                assert_eq!(cells[8], "**–**", "{title}: fiber/go ratio in {row}");
                let fiber_tokio = cells[7].trim_matches('*');
                let ratio: f64 = fiber_tokio
                    .strip_suffix('×')
                    .and_then(|r| r.parse().ok())
                    .unwrap_or_else(|| panic!("{title}: no fiber/tokio ratio in {row}"));
                assert!(ratio > 0.0 && ratio.is_finite(), "{title}: {row}");
                for ratio in &cells[7..11] {
                    assert!(
                        ratio.ends_with("×**") || *ratio == "**–**",
                        "{title}: {row}"
                    );
                }
            }
            if title.starts_with("Echo") {
                fiber_std_columns(title, section);
            }
            assert!(
                section.contains(&format!("](benchmarks/{chart}.svg)")),
                "{title}: no chart link"
            );
            check_svg(&out.join("benchmarks").join(format!("{chart}.svg")));
        }
        let _ = std::fs::remove_dir_all(&out);
    });
}

/// With `go` on `PATH`, the Go peer is built and measured: a figure and a fiber ÷ Go ratio in the
/// switch, ping-pong and echo rows (echo: the Go server under the fiber load generator). Without
/// it, the same run says "not installed" (a machine without Go checks that path twice).
#[test]
fn quick_report_has_a_go_column() {
    support::watchdog(170, || {
        let args = ["--quick", "--only", "switch,pingpong,echo"];
        let run = run_example_env("bench_report", &args, &[], 160);
        assert_eq!(run.code, Some(0), "bench_report failed:\n{}", run.stderr);
        let go_on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("go").is_file()))
            && std::env::var_os("FIBER_BENCH_NO_GO").is_none();
        for title in [
            "Context switch",
            "Channel ping-pong",
            "Echo throughput",
            "Echo p99 latency",
        ] {
            let rows = table_rows(section(&run.stdout, title));
            assert!(!rows.is_empty(), "{title}: no rows");
            for row in rows {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                if !go_on_path {
                    assert_eq!(cells[4], "not installed", "{title}: {row}");
                    continue;
                }
                let go: f64 = cells[4]
                    .replace(',', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{title}: no Go figure in {row}"));
                assert!(go > 0.0 && go.is_finite(), "{title}: {row}");
                assert!(
                    cells[8].ends_with("×**"),
                    "{title}: no fiber/go ratio in {row}"
                );
            }
        }
    });
}

#[test]
fn bench_report_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("bench_report", 110));
}

/// The echo tables end with the fiber-std variant (std::net in fibers, hooks on): its figure and
/// a fiber-std ÷ fiber ratio on every row, after the peers' columns.
fn fiber_std_columns(title: &str, section: &str) {
    let header = section
        .lines()
        .find(|l| l.starts_with("| connections |"))
        .unwrap_or_else(|| panic!("{title}: no header"));
    let names: Vec<&str> = header.split('|').map(str::trim).collect();
    assert_eq!(
        names[11..13],
        ["fiber-std", "fiber-std/fiber"],
        "{title}: {header}"
    );
    for row in table_rows(section) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 14, "{title}: {row}");
        if !cfg!(feature = "hook") {
            // Built without the hooks, std::net in fibers would block the carriers: the report
            // says it cannot, and gives no ratio.
            assert!(cells[11].starts_with("cannot"), "{title}: {row}");
            assert_eq!(cells[12], "**–**", "{title}: {row}");
            continue;
        }
        let ratio: f64 = cells[12]
            .trim_matches('*')
            .strip_suffix('×')
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{title}: no fiber-std/fiber ratio in {row}"));
        assert!(ratio > 0.0 && ratio.is_finite(), "{title}: {row}");
    }
}

/// The text from `## title` to the next `## `.
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let start = page
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &page[start + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The data rows of the section's table (after the `|---|` line).
fn table_rows(section: &str) -> Vec<&str> {
    section
        .lines()
        .skip_while(|l| !l.starts_with("|---|"))
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .collect()
}

/// An `<svg` document whose tags all close in order, with something drawn in it.
fn check_svg(path: &Path) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.starts_with("<svg"), "{}: not an svg", path.display());
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg.as_str();
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("unclosed tag") + i;
        let tag = &rest[i + 1..end];
        let name = |t: &'_ str| t.split_whitespace().next().unwrap_or("").to_string();
        if let Some(closing) = tag.strip_prefix('/') {
            let top = open.pop().unwrap_or_else(|| panic!("stray </{closing}>"));
            assert_eq!(
                name(top),
                name(closing),
                "{}: mismatched tags",
                path.display()
            );
        } else if !tag.ends_with('/') {
            open.push(tag);
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "{}: unclosed {open:?}", path.display());
    assert!(
        svg.contains("<polyline") || svg.matches("<rect").count() > 1,
        "{}: nothing drawn",
        path.display()
    );
}
