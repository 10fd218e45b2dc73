//! Helpers shared by the benches (included with `#[path]`, not a bench of its own).
#![allow(dead_code)]

/// Spawns a may coroutine.
///
/// may 0.3 marks spawning unsafe because a coroutine that uses thread-locals or blocks its OS
/// thread misbehaves; every closure passed here does neither.
pub(crate) fn may_go<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see the function docs: the benches' coroutines touch no thread-locals and only block
    // through may's own primitives (join, park, yield).
    unsafe { may::coroutine::spawn(f) }
}

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
