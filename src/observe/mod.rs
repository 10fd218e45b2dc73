//! Observability: dumps of every live fiber with what it waits for, the wait-for graph's
//! cycles, and the global deadlock report (docs/observability.md, "Dumps" and "Deadlocks").
//!
//! The fibers record their waits themselves, one or two word stores each (`task::reason`); this
//! layer reads them from any thread. Files, one job each: `registry` (where the fibers are
//! found), `reason` (the public wait reasons, decoded from the words), `collect` (reading one
//! fiber soundly from another thread), `dump` (the `Dump` value and its text), `json` (its JSON),
//! `deadlock` (cycles, and the global report), `peer` (a socket's peer address), `signal`
//! (`FIBER_DUMP_SIGNAL`).
mod collect;
pub(crate) mod deadlock;
mod dump;
mod json;
mod peer;
mod reason;
pub(crate) mod registry;
pub(crate) mod signal;

pub use dump::{dump, Cycle, Dump, FiberInfo, FiberState};
pub use reason::WaitReason;
