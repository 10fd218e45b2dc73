//! Echo server on fibers: one fiber per connection, blocking-style code.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --workers 2`
//!
//! Accept errors such as `EMFILE` are reported and the accept loop backs off for 50 ms instead of
//! spinning; a connection reset or broken pipe ends only that connection's fiber.
mod echo_common;

fn main() {
    let addr: String = echo_common::arg("--addr", "127.0.0.1:7878".to_string());
    let workers: usize = echo_common::arg("--workers", 2);
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    rt.block_on(|| {
        let listener = fiber::net::TcpListener::bind(&addr).expect("bind");
        println!(
            "echo server on {} ({workers} workers)",
            listener.local_addr().unwrap()
        );
        echo_common::serve_echo(listener)
    })
}
