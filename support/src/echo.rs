//! The echo servers (fiber, fiber-std, tokio, may, std; and Go's, in `benches/peers/go`) that the
//! echo examples and the benchmarks measure, each run in a child process of its own
//! ([`spawn_server`] re-runs this executable with `--serve KIND --workers N`, which calls
//! [`serve`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fiber::net::TcpListener;

use crate::fdlimit::is_fd_exhaustion;
use crate::flags::Flags;

/// Accepts forever, one fiber per connection, echoing whatever arrives. Must run in a fiber.
/// Under fd exhaustion it backs off (sleeps) instead of spinning on `accept`.
pub fn serve_echo(listener: TcpListener) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                fiber::spawn(move || echo(stream));
            }
            Err(e) if is_fd_exhaustion(&e) => {
                eprintln!("accept: {e}; backing off");
                fiber::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

/// Echoes whatever arrives until the peer closes or fails (reset etc.: drop this connection, keep
/// serving the others). Plain blocking `Read + Write`, shared by the fiber, may and std servers.
fn echo<S: Read + Write>(mut stream: S) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Starts `this-exe --serve kind` and reads the address it listens on from its first line; `go`
/// starts the Go server instead ([`crate::go_peer`], built already).
pub fn spawn_server(kind: &str, workers: usize) -> (Child, SocketAddr) {
    if kind == "go" {
        return crate::go_peer::spawn_server(workers);
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", kind, "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("server address");
    let addr = line.trim().parse().expect("server printed its address");
    (child, addr)
}

fn announce(addr: SocketAddr) {
    println!("{addr}");
    std::io::stdout().flush().unwrap();
}

/// Runs an echo server of `kind` (fiber, fiber-std, tokio, may, std) in this process, forever;
/// prints the address it listens on as the first line of stdout.
///
/// `fiber-std` is the std server's code (`std::net` types, blocking calls) run in fibers, one per
/// connection: with the hook feature the interposed libc calls park only the fiber.
pub fn serve(kind: &str, workers: usize) -> ! {
    match kind {
        "fiber" => {
            let rt = fiber::Runtime::builder()
                .worker_threads(workers)
                .build()
                .unwrap();
            rt.block_on(|| {
                let l = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
                announce(l.local_addr().unwrap());
                serve_echo(l)
            })
        }
        "fiber-std" => {
            let rt = fiber::Runtime::builder()
                .worker_threads(workers)
                .build()
                .unwrap();
            rt.block_on(|| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                announce(l.local_addr().unwrap());
                loop {
                    let Ok((s, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    fiber::spawn(move || echo(s));
                }
            })
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                announce(l.local_addr().unwrap());
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    tokio::spawn(async move {
                        let _ = s.set_nodelay(true);
                        let mut buf = [0u8; 4096];
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            })
        }
        "may" => {
            may::config().set_workers(workers);
            let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
            announce(l.local_addr().unwrap());
            loop {
                let Ok((s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = s.set_nodelay(true);
                let body = move || echo(s);
                // SAFETY: may requires that the coroutine not touch thread-locals across
                // blocking points (it may migrate); `body` uses only its socket and a stack buffer.
                unsafe { may::coroutine::spawn(body) };
            }
        }
        "std" => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            announce(l.local_addr().unwrap());
            loop {
                let Ok((s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = s.set_nodelay(true);
                std::thread::spawn(move || echo(s));
            }
        }
        other => panic!("unknown server kind {other}"),
    }
}

/// In a child started by [`spawn_server`] (`--serve KIND` given): serves forever. Otherwise it
/// returns, and the program goes on with its own flags.
pub fn serve_if_asked(flags: &mut Flags) {
    if let Some(kind) = flags.opt::<String>("--serve") {
        let workers = flags.get("--workers", 2);
        serve(&kind, workers)
    }
}
