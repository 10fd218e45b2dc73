//! Workload bodies shared by the criterion benches and the `bench_report` example (included with
//! `#[path]` by both, so the report measures exactly what the benches measure). Each submodule has
//! one body per peer: fiber, tokio, may and, where it makes sense, std threads.
//!
//! The includer must also declare `mod common` (benches/common/mod.rs) at its crate root: the may
//! bodies spawn through `crate::common::may_go`.
#![allow(dead_code)] // each bench uses a different subset

pub(crate) mod channel;
pub(crate) mod mutex;
pub(crate) mod skynet;
pub(crate) mod spawn;
pub(crate) mod switch;
