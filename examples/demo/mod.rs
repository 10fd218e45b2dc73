//! Plumbing shared by the pattern examples (`fan_out`, `crawler`, `pipeline`, `rate_limit`,
//! `retry`, `gather`, `pool`, `kv_server`): flag parsing, a local HTTP/1.1 server on fibers whose
//! handler is plain blocking code (it may `fiber::sleep` to simulate latency), and a tiny HTTP/1.1
//! client over `fiber::net::TcpStream`, a process's CPU time (`fan_out`, `echo_bench`), the
//! RESP codec of `kv_server` (`resp`) and the request handling of `http_hello` (`http`). Each
//! example includes it with `mod demo;`; `resp` and `http` do no I/O, so the fuzz targets in
//! `fuzz/` and the tests include them too.
#![allow(dead_code)] // each example uses a different subset

pub(crate) mod http;
pub(crate) mod resp;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fiber::net::{TcpListener, TcpStream};

// ---- flags -----------------------------------------------------------------------------------

/// `--name value` flags. A bad value, an unknown flag or a missing value prints the usage and
/// exits with status 2; `--help` prints it and exits with 0.
pub(crate) struct Args {
    usage: &'static str,
    given: HashMap<String, String>,
}

impl Args {
    /// Parses the command line; `usage` is printed on errors.
    pub(crate) fn parse(usage: &'static str) -> Args {
        let mut given = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            if !flag.starts_with("--") {
                Args::fail(usage, &format!("unexpected argument `{flag}`"));
            }
            match it.next() {
                Some(value) => given.insert(flag, value),
                None => Args::fail(usage, &format!("missing value for `{flag}`")),
            };
        }
        Args { usage, given }
    }

    /// The value of `--name`, or `default`.
    pub(crate) fn get<T: FromStr>(&mut self, name: &str, default: T) -> T {
        match self.given.remove(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                Args::fail(self.usage, &format!("bad value for `{name}`: `{v}`"))
            }),
        }
    }

    /// Call after the last `get`: rejects flags nobody asked for.
    pub(crate) fn done(self) {
        if let Some(flag) = self.given.keys().next() {
            Args::fail(self.usage, &format!("unknown flag `{flag}`"));
        }
    }

    /// Prints `msg` and the usage on stderr and exits with status 2.
    pub(crate) fn fail(usage: &str, msg: &str) -> ! {
        eprintln!("error: {msg}\n{usage}");
        std::process::exit(2)
    }
}

/// Raises this process's open-file limit to at least `wanted` (if the hard limit or privileges
/// allow); returns the soft limit in effect afterwards.
pub(crate) fn raise_fd_limit(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: lim.rlim_max.max(wanted),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                lim.rlim_cur = lim.rlim_max; // unprivileged: go as far as the hard limit
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

// ---- the local HTTP server ---------------------------------------------------------------------

/// What a handler answers: a status code and a body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Reply {
    /// `200 OK` with `body`.
    pub(crate) fn ok(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
        }
    }

    /// An error status with `body`.
    pub(crate) fn error(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// A local HTTP/1.1 server on its own fiber runtime (one fiber per connection, keep-alive),
/// listening on 127.0.0.1 on a free port. Dropping it stops the server.
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    rt: fiber::Runtime,
}

impl Server {
    /// Starts a server on a runtime of `workers` threads that answers with `handler`.
    pub(crate) fn new(
        workers: usize,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> Server {
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
        Server { addr, accepted, rt }
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A server in a child process (this same executable, re-run with `DEMO_DELAY_SERVER_MS` set)
/// that answers every request with `200 done` after a delay. Client and server then each have
/// their own open-file budget: 10,000 requests in flight need 10,000 fds on each side. The child
/// exits when this value is dropped (or when this process dies: its stdin closes).
pub(crate) struct ChildServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    child: std::process::Child,
}

const CHILD_ENV: &str = "DEMO_DELAY_SERVER_MS";

impl ChildServer {
    /// Starts the child; call [`ChildServer::serve_if_child`] first thing in `main`.
    pub(crate) fn start(latency: Duration) -> ChildServer {
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
    pub(crate) fn serve_if_child() {
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
    pub(crate) fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

/// CPU time (user + system) consumed so far by process `pid`, from `/proc/<pid>/stat`.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(f.iter().sum::<u64>() * 1_000_000_000 / hz)
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
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Accepts connections forever, each served by `serve` on a fiber of its own. Must run in a fiber.
pub(crate) fn accept_loop(
    listener: TcpListener,
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> ! {
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
pub(crate) fn linger(mut stream: TcpStream) {
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
        let reply = handler(&path);
        let reason = if reply.status < 400 { "OK" } else { "Error" };
        let msg = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\n\r\n{}",
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
        if head.to_ascii_lowercase().contains("connection: close") {
            return;
        }
    }
}

/// Reads up to the blank line ending an HTTP head; `None` on a clean end of stream. `buf` keeps
/// bytes read past the head (the body, or the next pipelined request).
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
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

/// Page `i` of a generated site of `pages` pages: it links to its children `2i+1` and `2i+2` (so
/// every page is reachable from page 0), to two pseudo-random pages, and back home.
pub(crate) fn site_page(i: usize, pages: usize) -> String {
    let links = [
        2 * i + 1,
        2 * i + 2,
        (i * 7 + 3) % pages,
        (i * 31 + 11) % pages,
        0,
    ];
    let mut html = format!("<html><body><h1>Page {i}</h1>\n");
    for l in links.into_iter().filter(|&l| l < pages) {
        html += &format!("<a href=\"/page/{l}\">page {l}</a>\n");
    }
    html + "</body></html>\n"
}

/// The `href="..."` targets of an HTML page.
pub(crate) fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

// ---- the HTTP client ---------------------------------------------------------------------------

/// A response: status code and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// One keep-alive HTTP/1.1 connection (requests one at a time).
pub(crate) struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr`; with a `timeout`, every read and write fails with `TimedOut` after it.
    pub(crate) fn connect(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<HttpConn> {
        let stream = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t)?,
            None => TcpStream::connect(addr)?,
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(HttpConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// `GET path`; waits for the whole response.
    pub(crate) fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request(path, "keep-alive")
    }

    /// `GET path` with `Connection: close`; waits until the server has closed.
    fn get_once(mut self, path: &str) -> io::Result<Response> {
        let resp = self.request(path, "close")?;
        let _ = self.stream.read(&mut [0u8; 1]); // end of stream: the server closed first
        Ok(resp)
    }

    fn request(&mut self, path: &str, connection: &str) -> io::Result<Response> {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n");
        self.stream.write_all(req.as_bytes()).map_err(timed_out)?;
        let head = read_head(&mut self.stream, &mut self.buf)
            .map_err(timed_out)?
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad response head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(bad)?;
        while self.buf.len() < len {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).map_err(timed_out)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&self.buf[..len]).into_owned();
        self.buf.drain(..len);
        Ok(Response { status, body })
    }
}

/// One request on a fresh connection.
pub(crate) fn get(addr: SocketAddr, path: &str, timeout: Option<Duration>) -> io::Result<Response> {
    HttpConn::connect(addr, timeout)?.get_once(path)
}

/// A socket timeout shows up as `WouldBlock` (as in std on Unix): call it `TimedOut`.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        e
    }
}

// ---- output ------------------------------------------------------------------------------------

/// `d` in milliseconds with one decimal, for tables.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
