//! fiber: virtual threads for Rust (skeleton while the core lands).
#![allow(dead_code)]

mod blocking;
pub(crate) mod driver;
pub mod fs;
pub mod net;
pub mod os;
mod task;

pub use blocking::spawn_blocking;
pub use task::{current, park, park_timeout, Fiber, FiberId};
