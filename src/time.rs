//! Time: sleeping fibers. Re-exports `std::time`'s types so that porting is a change of `use`.
pub use crate::driver::wait::sleep;
pub use std::time::{Duration, Instant, SystemTime};
