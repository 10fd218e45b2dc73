//! `examples/http_hello.rs` against hostile and unusual clients: malformed requests get `400`
//! (or `505`, `431`, `501`) and a close, bodies are skipped rather than parsed as requests, a
//! slow client is cut off at the request deadline, and keep-alive and pipelining still work.
mod pattern_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pattern_support::{start_server, KillOnDrop};

/// The request deadline the tests run the server with.
const DEADLINE_MS: u64 = 1000;

/// Starts the server on a free port; returns it (killed on drop) and its address.
fn start() -> (KillOnDrop, SocketAddr) {
    let deadline = DEADLINE_MS.to_string();
    let args = ["--addr", "127.0.0.1:0", "--request-timeout-ms", &deadline];
    let (child, line) = start_server("http_hello", &args);
    let addr = line
        .trim_start_matches("http on http://")
        .trim_end_matches('/')
        .parse()
        .expect(&line);
    (child, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection (a reset counts as a close), or
/// until 10 s pass without a byte; and whether it closed.
fn read_all(s: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false, // timed out: still open
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The status codes of the responses in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r[..3].parse().unwrap())
        .collect()
}

/// Sends `request` on a fresh connection; returns the statuses of what came back, asserting
/// that the server closed the connection.
fn answer(addr: SocketAddr, request: &[u8]) -> Vec<u16> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let (text, closed) = read_all(&mut s);
    assert!(closed, "connection left open after {text:?}");
    statuses(&text)
}

#[test]
fn http_hello_rejects_malformed_requests() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let cases: &[(&[u8], u16)] = &[
            (b"garbage\r\n\r\n", 400),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
            (b"GET / HTTP/9.9\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -3\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                501,
            ),
        ];
        for (request, status) in cases {
            let got = answer(addr, request);
            assert_eq!(got, vec![*status], "{:?}", String::from_utf8_lossy(request));
        }
    });
}

#[test]
fn http_hello_answers_431_to_oversized_headers() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        request.resize(9 * 1024, b'a');
        request.extend_from_slice(b"\r\n\r\n");
        assert_eq!(answer(addr, &request), vec![431]);
    });
}

#[test]
fn http_hello_skips_request_bodies() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        // The body looks like a request; it must be skipped, not answered.
        let body = "GET /body HTTP/1.1\r\nHost: h\r\n\r\n";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}\
             GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            body.len()
        );
        assert_eq!(answer(addr, request.as_bytes()), vec![200, 200]);
        // The same with the body arriving in pieces after the head.
        let mut s = connect(addr);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        for piece in body.as_bytes().chunks(7) {
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(piece).unwrap();
        }
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (text, closed) = read_all(&mut s);
        assert!(closed);
        assert_eq!(statuses(&text), vec![200, 200], "{text}");
    });
}

#[test]
fn http_hello_keeps_alive_and_pipelines() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let mut s = connect(addr);
        let get = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let one = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nHello world\n";
        // Three pipelined in one write, then one more on the same connection.
        s.write_all(&get.repeat(3)).unwrap();
        let mut buf = vec![0u8; one.len() * 3];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf), one.repeat(3));
        s.write_all(get).unwrap();
        let mut buf = vec![0u8; one.len()];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf), one);
        // HTTP/1.0 without keep-alive: answered, then closed.
        assert_eq!(answer(addr, b"GET / HTTP/1.0\r\n\r\n"), vec![200]);
    });
}

#[test]
fn http_hello_cuts_off_a_slow_request_head() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let mut s = connect(addr);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
        // One header byte every 200 ms, each well inside any per-read timeout: the old server
        // kept such a connection forever. Give up after 15 s (15 deadlines).
        let started = Instant::now();
        let mut got = Vec::new();
        let closed = loop {
            if started.elapsed() > Duration::from_secs(15) {
                break false;
            }
            if s.write_all(b"X").is_err() {
                break true; // reset by the closed server
            }
            let mut chunk = [0u8; 1024];
            match s.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => {} // nothing yet (timeout)
            }
        };
        let text = String::from_utf8_lossy(&got);
        assert!(
            closed,
            "still open after 15 s of one byte per 200 ms; got {text:?}"
        );
        assert_eq!(statuses(&text), vec![408], "{text:?}");
        println!(
            "closed after {:?} (deadline {DEADLINE_MS} ms)",
            started.elapsed()
        );
    });
}
