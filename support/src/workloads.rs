//! Workload bodies shared by the criterion benches and the `bench_report` example (so the report
//! measures exactly what the benches measure). Each submodule has
//! one body per peer: fiber, tokio, may and, where it makes sense, std threads.

pub mod cancel;
pub mod channel;
pub mod mutex;
pub mod skynet;
pub mod spawn;
pub mod switch;

/// Spawns a may coroutine.
///
/// may 0.3 marks spawning unsafe because a coroutine that uses thread-locals or blocks its OS
/// thread misbehaves; every closure passed here does neither.
pub fn may_go<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see the function docs: the benches' coroutines touch no thread-locals and only block
    // through may's own primitives (join, park, yield).
    unsafe { may::coroutine::spawn(f) }
}
