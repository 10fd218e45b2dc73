//! HTTP request handling of `http_hello`: see `fuzz/checks.rs` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../../examples/demo/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../examples/demo/resp.rs"]
mod resp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::http_check(data));
