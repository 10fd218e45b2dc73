//! Helpers shared by the benches (included with `#[path]`, not a bench of its own).
#![allow(dead_code)]

/// Runs `bench` with criterion configured from the command line, then prints the summary (what
/// `criterion_main!` does, without its undocumented public items).
pub(crate) fn main_with(bench: fn(&mut criterion::Criterion)) {
    let mut c = criterion::Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

/// A fiber runtime with `workers` workers.
pub(crate) fn fiber_rt(workers: usize) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("fiber runtime")
}

/// A tokio multi-thread runtime with `workers` workers and its drivers enabled.
pub(crate) fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A tokio current-thread runtime with its drivers enabled.
pub(crate) fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
