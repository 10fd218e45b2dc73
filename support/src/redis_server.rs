//! A throwaway `redis-server` for tests and examples: a free 127.0.0.1 port, no persistence, a
//! temporary `--dir`, `--hz 100`; ready once it answers PING; killed and reaped on drop.
//!
//! Start it from a plain thread (not inside a fiber: it spawns a process and polls with
//! `std::thread::sleep`) that outlives it: the server gets SIGKILL when that thread ends
//! (`PR_SET_PDEATHSIG`), so that a killed test binary leaves no server behind.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Attempts with a new port when the chosen one was taken between probing and binding.
const PORT_ATTEMPTS: usize = 3;

/// Why no server could be started.
#[derive(Debug)]
pub enum RedisServerError {
    /// `redis-server` is not on PATH.
    NotInstalled,
    /// It is installed but did not start or did not answer PING; the text says what happened.
    Failed(String),
}

impl fmt::Display for RedisServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisServerError::NotInstalled => write!(
                f,
                "redis-server is not on PATH; install it with \
                 `apt-get install redis-server` (Debian/Ubuntu; sudo if not root), \
                 or put a redis-server binary (Redis 6 or later) on PATH"
            ),
            RedisServerError::Failed(why) => write!(f, "redis-server did not start: {why}"),
        }
    }
}

impl std::error::Error for RedisServerError {}

/// A running `redis-server` child process, bound to 127.0.0.1 only.
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server and waits (at most 10 s) until it answers PING.
    pub fn start() -> Result<RedisServer, RedisServerError> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::start_once() {
                Ok(server) => return Ok(server),
                Err(StartFailure::Fatal(e)) => return Err(e),
                Err(StartFailure::ExitedEarly(why)) => last = Some(why),
            }
        }
        Err(RedisServerError::Failed(last.unwrap_or_default()))
    }

    /// For tests: a server, or `None` after printing why the test is skipped. Panics when
    /// `redis-server` is missing and env `CI` is set (CI must run these tests), and whenever an
    /// installed server fails to start. The skip message goes to stderr directly, past the test
    /// harness's capture, so that a skipped test is seen.
    #[track_caller]
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(RedisServerError::NotInstalled) if std::env::var_os("CI").is_none() => {
                let _ = writeln!(
                    io::stderr(),
                    "SKIPPED {test}: {}",
                    RedisServerError::NotInstalled
                );
                None
            }
            Err(e) => panic!("{test}: {e}"),
        }
    }

    /// The server's address (127.0.0.1 and its port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `redis://` URL for the server, as redis clients take it.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn start_once() -> Result<RedisServer, StartFailure> {
        let port = free_port().map_err(|e| fatal(format!("no free port: {e}")))?;
        let dir = fresh_dir().map_err(|e| fatal(format!("no temporary dir: {e}")))?;
        let log = dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // At the default 10 Hz an idle server ends a blocked command up to 100 ms after its
            // timeout (a BLPOP of 0.1 s took 100-200 ms); at 100 Hz within about 5 ms.
            .args(["--hz", "100"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: `die_with_parent` runs in the child between fork and exec and makes one
        // async-signal-safe call (prctl); it neither allocates nor takes locks.
        unsafe { command.pre_exec(die_with_parent) };
        let spawned = command.spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(if e.kind() == io::ErrorKind::NotFound {
                    StartFailure::Fatal(RedisServerError::NotInstalled)
                } else {
                    fatal(format!("could not run it: {e}"))
                });
            }
        };
        // From here on, drop kills the child and removes the dir, on every path.
        let mut server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        server.wait_ready(&log)?;
        Ok(server)
    }

    /// Polls with PING until PONG, the child exits, or [`READY_WITHIN`] passes.
    fn wait_ready(&mut self, log: &Path) -> Result<(), StartFailure> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartFailure::ExitedEarly(format!(
                    "it exited with {status} on port {}; its log:\n{}",
                    self.addr.port(),
                    log_tail(log)
                )));
            }
            if answers_ping(self.addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fatal(format!(
                    "no PONG on {} within {READY_WITHIN:?}; its log:\n{}",
                    self.addr,
                    log_tail(log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum StartFailure {
    /// The port was probably taken meanwhile: worth another port.
    ExitedEarly(String),
    Fatal(RedisServerError),
}

fn fatal(why: String) -> StartFailure {
    StartFailure::Fatal(RedisServerError::Failed(why))
}

/// In the child before exec: get SIGKILL when the thread that started it ends, so a test binary
/// that is killed (or calls `process::exit`) leaves no server behind.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes only this process's settings.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A port that was free a moment ago (the kernel's pick for port 0).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A new empty directory under the system temp dir, unique to this process and call.
fn fresh_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fiber-redis-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Sends one RESP `PING` and expects `+PONG`, within half a second.
fn answers_ping(addr: SocketAddr) -> bool {
    let attempt = || -> io::Result<bool> {
        let limit = Some(Duration::from_millis(500));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        conn.set_read_timeout(limit)?;
        conn.set_write_timeout(limit)?;
        conn.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut reply = [0u8; 7];
        conn.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

/// The last lines of the server's log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
