//! The runtimes the demos and benches measure on, built one way everywhere.

/// A fiber runtime with `workers` workers.
pub fn fiber_rt(workers: usize) -> fiber::Runtime {
    fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("fiber runtime")
}

/// A tokio multi-thread runtime with `workers` workers and its drivers enabled.
pub fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A tokio current-thread runtime with its drivers enabled.
pub fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
