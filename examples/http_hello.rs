//! An HTTP/1.1 keep-alive "hello world" server on fibers, for `wrk`.
//!
//! `cargo run --release --example http_hello -- --addr 127.0.0.1:8080 --workers 2`, then
//! `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//!
//! The request parser is deliberately minimal: it reads until the end of the headers and answers
//! every request with the same response (no bodies, no chunked requests).
mod echo_common;

use std::io::{Read, Write};
use std::time::Duration;

use fiber::net::TcpStream;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nHello world\n";

fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    // Idle keep-alive connections (and slowloris peers) are cut off after 30 s.
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        match s.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        // Answer every complete request in the buffer (pipelining).
        let mut start = 0;
        let mut out = Vec::new();
        while let Some(end) = find(&buf[start..filled], b"\r\n\r\n") {
            out.extend_from_slice(RESPONSE);
            start += end + 4;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            return; // headers too large
        }
        if !out.is_empty() && s.write_all(&out).is_err() {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn main() {
    let addr: String = echo_common::arg("--addr", "127.0.0.1:8080".to_string());
    let workers: usize = echo_common::arg("--workers", 2);
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    rt.block_on(|| {
        let listener = fiber::net::TcpListener::bind(&addr).expect("bind");
        println!("http on http://{}/", listener.local_addr().unwrap());
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    fiber::spawn(move || serve(s));
                }
                Err(e) if echo_common::is_fd_exhaustion(&e) => {
                    fiber::sleep(Duration::from_millis(50))
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}
