//! Observability: runtime metrics and the watchdog (docs/observability.md).
//!
//! A core layer between `scheduler` and `runtime` (above `observe`, whose dumps the scheduler
//! itself feeds): it reads what the workers publish
//! (`scheduler::stats`), and the runtime starts its watchdog.
pub(crate) mod metrics;
pub(crate) mod watchdog;
