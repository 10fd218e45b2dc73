//! Echo server on fibers: one fiber per connection, blocking-style code.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --workers 2`
//!
//! Accept errors such as `EMFILE` are reported and the accept loop backs off for 50 ms instead of
//! spinning; a connection reset or broken pipe ends only that connection's fiber.
use fiber_support::echo;
use fiber_support::flags::Flags;

const USAGE: &str = "usage: echo_server [--addr HOST:PORT] [--workers N]
  --addr     where to listen (default 127.0.0.1:7878)
  --workers  worker threads (default 2)";

fn main() {
    let mut flags = Flags::parse(USAGE, &[]);
    let addr: String = flags.get("--addr", "127.0.0.1:7878".to_string());
    let workers: usize = flags.get("--workers", 2);
    flags.done();
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
        echo::serve_echo(listener)
    })
}
