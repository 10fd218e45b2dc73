//! fiber: virtual threads for Rust (skeleton while the core lands).
#![allow(dead_code)]

pub(crate) mod driver;
pub mod sync;
mod task;

pub use task::{current, park, park_timeout, Fiber, FiberId};
