//! Small helpers with no knowledge of fibers: the lowest layer of the crate.
pub(crate) mod rng;
pub(crate) mod steal;
