//! Criterion plumbing of the benches.

/// Runs `bench` with criterion configured from the command line, then prints the summary (what
/// `criterion_main!` does, without its undocumented public items).
pub fn main_with(bench: fn(&mut criterion::Criterion)) {
    let mut c = criterion::Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
