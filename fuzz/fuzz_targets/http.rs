//! HTTP request handling of `http_hello`:
//! see `fiber_support::fuzz_checks` (`support/src/fuzz_checks.rs`) for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fiber_support::fuzz_checks::http_check(data));
