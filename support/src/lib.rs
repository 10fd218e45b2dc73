//! Harness plumbing shared by fiber's examples and benches, one job per module, so that each
//! example reads as the program it demonstrates. Without the default `harness` feature only
//! `flags` and the pure parsers are built (`resp`, `http_parse`, `fuzz_checks`: `std`, `lexopt`
//! and `httparse` alone), for the fuzz targets.

pub mod flags;
pub mod fuzz_checks;
pub mod http_parse;
pub mod resp;

#[cfg(feature = "harness")]
pub mod bench;
#[cfg(fc_client)]
pub mod c_client;
#[cfg(feature = "harness")]
pub mod compare;
#[cfg(feature = "harness")]
pub mod cpu;
#[cfg(feature = "harness")]
pub mod crowd;
#[cfg(feature = "harness")]
pub mod echo;
#[cfg(feature = "harness")]
pub mod echo_load;
#[cfg(feature = "harness")]
pub mod fdlimit;
#[cfg(feature = "harness")]
pub mod floor;
#[cfg(feature = "harness")]
pub mod fmt;
#[cfg(feature = "harness")]
pub mod go_peer;
#[cfg(feature = "harness")]
pub mod http_client;
#[cfg(feature = "harness")]
pub mod http_server;
#[cfg(feature = "harness")]
pub mod mem;
#[cfg(feature = "harness")]
pub mod progress;
#[cfg(feature = "harness")]
pub mod rates;
#[cfg(feature = "harness")]
pub mod redis_server;
#[cfg(feature = "harness")]
pub mod rng;
#[cfg(feature = "harness")]
pub mod rt;
#[cfg(feature = "harness")]
pub mod site;
#[cfg(feature = "harness")]
pub mod workloads;
