//! The local HTTP/1.1 servers of the pattern examples: [`Server`], on fibers in this process, and
//! [`ChildServer`], in a child process; the accept loop and the careful close they share.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fiber::net::{TcpListener, TcpStream};

use crate::cpu::cpu_time;
use crate::fdlimit::raise_fd_limit;

/// What a handler answers: a status code and a body.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
        }
    }

    /// An error status with `body`.
    pub fn error(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// A local HTTP/1.1 server on its own fiber runtime (one fiber per connection, keep-alive),
/// listening on 127.0.0.1 on a free port. Dropping it stops the server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Held for its drop, which stops the server.
    _rt: fiber::Runtime,
}

impl Server {
    /// Starts a server on a runtime of `workers` threads that answers with `handler`.
    pub fn new(workers: usize, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        let rt = fiber::Runtime::builder()
            .worker_threads(workers)
            .thread_name("demo-server")
            .build()
            .expect("server runtime");
        let listener = listen("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        rt.spawn(move || {
            accept_loop(listener, move |stream| {
                count.fetch_add(1, Ordering::Relaxed);
                serve_connection(stream, &handler);
            })
        });
        Server {
            addr,
            accepted,
            _rt: rt,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A server in a child process (this same executable, re-run with `DEMO_DELAY_SERVER_MS` set)
/// that answers every request with `200 done` after a delay. Client and server then each have
/// their own open-file budget: 10,000 requests in flight need 10,000 fds on each side. The child
/// exits when this value is dropped (or when this process dies: its stdin closes).
pub struct ChildServer {
    /// Where it listens.
    pub addr: SocketAddr,
    child: std::process::Child,
}

const CHILD_ENV: &str = "DEMO_DELAY_SERVER_MS";

impl ChildServer {
    /// Starts the child; call [`ChildServer::serve_if_child`] first thing in `main`.
    pub fn start(latency: Duration) -> ChildServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .env(CHILD_ENV, latency.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server process");
        let mut line = String::new();
        io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("server address");
        let addr = line.trim().parse().expect("server address");
        ChildServer { addr, child }
    }

    /// In the child: serves until stdin closes, then exits. In the parent: returns at once.
    pub fn serve_if_child() {
        let Some(ms) = std::env::var(CHILD_ENV).ok().and_then(|v| v.parse().ok()) else {
            return;
        };
        let latency = Duration::from_millis(ms);
        raise_fd_limit(u64::MAX);
        let server = Server::new(2, move |_| {
            fiber::sleep(latency);
            Reply::ok("done")
        });
        println!("{}", server.addr);
        let _ = io::stdout().flush();
        let _ = io::stdin().read(&mut [0u8; 1]); // EOF: the parent is gone
        std::process::exit(0);
    }

    /// CPU time the server process has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener for the demo servers. (`fiber::net::TcpListener::bind` asks for the system's
/// maximum accept queue, not std's 128: a burst of thousands of fiber clients would overflow 128,
/// and each dropped SYN costs its client a one-second retransmission.)
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Accepts connections forever, each served by `serve` on a fiber of its own. Must run in a fiber.
pub fn accept_loop(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> ! {
    let serve = Arc::new(serve);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let serve = serve.clone();
                fiber::spawn(move || serve(stream));
            }
            Err(e) => {
                // Out of fds, say: back off instead of spinning.
                eprintln!("accept: {e}");
                fiber::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Closes a connection after its last response the careful way: half-close, then read and
/// discard what the peer still sends, for up to a second or 256 KiB. Closing with unread input
/// makes the kernel reset the connection, and a reset can destroy the response on its way.
pub fn linger(mut stream: TcpStream) {
    const FOR: Duration = Duration::from_secs(1);
    const BYTES: usize = 256 * 1024;
    let _ = stream.flush();
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let end = std::time::Instant::now() + FOR;
    let mut chunk = [0u8; 4096];
    let mut discarded = 0;
    while discarded < BYTES {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}

/// Answers requests on one connection until the peer closes it.
fn serve_connection(mut stream: TcpStream, handler: &(dyn Fn(&str) -> Reply + Send + Sync)) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    while let Ok(Some(head)) = read_head(&mut stream, &mut buf) {
        // "GET /path HTTP/1.1": the path is the second word.
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let close = wants_close(&head);
        let reply = handler(&path);
        let reason = if reply.status < 400 { "OK" } else { "Error" };
        // Saying `Connection: close` tells a pooling client (ureq) not to keep the connection.
        let connection = if close { "Connection: close\r\n" } else { "" };
        let msg = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\n{connection}\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        );
        if stream.write_all(msg.as_bytes()).is_err() {
            return;
        }
        // The server closes first when asked to: its side then holds the TIME_WAIT state, not
        // the client's ephemeral port (10,000 one-shot requests would otherwise use up a
        // third of the ports for a minute, and connect gets slow as they run out).
        if close {
            return;
        }
    }
}

/// Whether a request head ends its connection: a `Connection` header listing `close`, or
/// HTTP/1.0 without `keep-alive` (RFC 9112, section 9.3).
fn wants_close(head: &str) -> bool {
    let mut lines = head.lines();
    let http10 = lines
        .next()
        .is_some_and(|l| l.trim_end().ends_with("HTTP/1.0"));
    let options: Vec<String> = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|o| o.trim().to_ascii_lowercase())
        .collect();
    let has = |o: &str| options.iter().any(|x| x == o);
    has("close") || (http10 && !has("keep-alive"))
}

/// Reads up to the blank line ending an HTTP head; `None` on a clean end of stream. `buf` keeps
/// bytes read past the head (the body, or the next pipelined request).
pub(crate) fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Ok(Some(head));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk)? {
            0 if buf.is_empty() => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wants_close;

    #[test]
    fn a_request_ends_its_connection_as_rfc_9112_says() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: a", false),
            ("GET / HTTP/1.1\r\nConnection: close", true),
            ("GET / HTTP/1.1\r\nconnection:  Keep-Alive, CLOSE ", true),
            ("GET / HTTP/1.1\r\nConnection: keep-alive", false),
            ("GET / HTTP/1.1\r\nX-Connection: close", false),
            ("GET /close HTTP/1.1\r\nHost: close", false),
            ("GET / HTTP/1.0\r\nHost: a", true),
            ("GET / HTTP/1.0\r\nConnection: keep-alive", false),
        ];
        for (head, close) in cases {
            assert_eq!(wants_close(head), close, "{head:?}");
        }
    }
}
