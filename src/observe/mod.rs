//! Observability: what the runtime tells about its fibers (issue 16). Below the task layer, so
//! that the task header and every layer above can use it; it names nothing above `coro`.
pub(crate) mod trace;
