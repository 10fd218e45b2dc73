//! The interposed socket calls (`--features hook`): unchanged `std::net` code inside fibers parks
//! only the fiber; the socket's mode as its user sees it is kept (blocking, non-blocking,
//! timeouts, `O_NONBLOCK` as reported by `fcntl`); plain threads keep blocking semantics on a
//! socket the hooks switched; fd numbers are reused safely; a runtime dropped mid-read neither
//! aborts nor hangs.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{runtime, watchdog};

/// An echo server written with std only, each connection on a fiber of `rt`'s.
fn std_echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    fiber::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            fiber::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn std_net_server_and_clients_share_one_worker() {
    // On one worker, a std client blocking its carrier would starve the std server: deadlock.
    watchdog(60, || {
        let rt = runtime(1, "hook-net-one");
        rt.block_on(|| {
            let addr = std_echo_server();
            let clients: Vec<_> = (0..50u8)
                .map(|i| {
                    fiber::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        let mut back = [0u8; 64];
                        for round in 0..20u8 {
                            let msg = [i ^ round; 64];
                            c.write_all(&msg).unwrap();
                            c.read_exact(&mut back).unwrap();
                            assert_eq!(back, msg);
                        }
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
        });
    });
}

#[test]
fn a_thousand_slow_std_requests_overlap() {
    watchdog(120, || {
        let rt = runtime(2, "hook-net-many");
        let t0 = Instant::now();
        let ok = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            fiber::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    fiber::spawn(move || {
                        let mut b = [0u8; 1];
                        if conn.read_exact(&mut b).is_ok() {
                            std::thread::sleep(Duration::from_millis(100));
                            let _ = conn.write_all(&b);
                        }
                    });
                }
            });
            let hs: Vec<_> = (0..1000u32)
                .map(|i| {
                    fiber::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.write_all(&[i as u8]).unwrap();
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).unwrap();
                        b[0] == i as u8
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(ok, 1000);
        // Blocking the carriers would take 1000 × 100 ms / 2 workers = 50 s.
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "1000 requests of 100 ms took {took:?}"
        );
    });
}

#[test]
fn user_nonblocking_mode_is_kept() {
    watchdog(30, || {
        fiber::run(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            // The hooks switched the kernel flag; the user still sees a blocking socket.
            // SAFETY: F_GETFL takes no argument.
            let flags = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
            assert_eq!(
                flags & libc::O_NONBLOCK,
                0,
                "the user never asked for O_NONBLOCK"
            );
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 8];
            assert_eq!(s.read(&mut b).unwrap_err().kind(), ErrorKind::WouldBlock);
            // SAFETY: as above.
            let flags = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
            assert_ne!(flags & libc::O_NONBLOCK, 0);
            s.set_nonblocking(false).unwrap();
            drop(c); // end of stream: a blocking read returns 0
            assert_eq!(s.read(&mut b).unwrap(), 0);
        });
    });
}

#[test]
fn a_read_timeout_parks_only_the_fiber() {
    watchdog(30, || {
        let rt = runtime(1, "hook-net-timeout");
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let ticks = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, stop) = (ticks.clone(), stop.clone());
                fiber::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        fiber::sleep(Duration::from_millis(5));
                    }
                })
            };
            let t0 = Instant::now();
            let mut b = [0u8; 8];
            let e = s.read(&mut b).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "SO_RCVTIMEO gives EAGAIN");
            assert!(t0.elapsed() >= Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            ticker.join().unwrap();
            assert!(
                ticks.load(Ordering::Relaxed) >= 5,
                "the other fiber on the one worker did not run during the read"
            );
        });
    });
}

#[test]
fn a_plain_thread_still_blocks_on_a_socket_the_hooks_switched() {
    watchdog(30, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (s, _) = listener.accept().unwrap();
        let s = Arc::new(s);
        // A fiber uses the socket first: it is classified and made non-blocking in the kernel.
        {
            let s = s.clone();
            fiber::run(move || {
                s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
                let mut b = [0u8; 1];
                assert!((&*s).read(&mut b).is_err());
                s.set_read_timeout(None).unwrap();
            });
        }
        // Now a plain thread reads it, blocking: it must wait for the data, not see EAGAIN.
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 3];
                (&*s).read_exact(&mut b).map(|()| b)
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(b"abc").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"abc");
    });
}

#[test]
fn a_reused_fd_number_is_classified_afresh() {
    watchdog(30, || {
        fiber::run(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut numbers = Vec::new();
            for round in 0..50u8 {
                let mut c = TcpStream::connect(addr).unwrap();
                let (mut s, _) = listener.accept().unwrap();
                numbers.push(s.as_raw_fd());
                c.write_all(&[round]).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], round);
                // Both closed: the next round gets the same numbers, with fresh registrations.
            }
            numbers.sort_unstable();
            numbers.dedup();
            assert!(
                numbers.len() < 50,
                "fd numbers were never reused: {numbers:?}"
            );
        });
    });
}

#[test]
fn dup2_onto_a_managed_socket_forgets_it() {
    watchdog(30, || {
        fiber::run(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut a = TcpStream::connect(addr).unwrap();
            let (mut a_srv, _) = listener.accept().unwrap();
            let b = TcpStream::connect(addr).unwrap();
            let (mut b_srv, _) = listener.accept().unwrap();
            // Use both in the fiber (classified, registered).
            a.write_all(b"1").unwrap();
            let mut x = [0u8; 1];
            a_srv.read_exact(&mut x).unwrap();
            // a's number now names b's socket.
            // SAFETY: both fds are open; dup2 replaces `a`'s with a dup of `b`'s.
            let r = unsafe { libc::dup2(b.as_raw_fd(), a.as_raw_fd()) };
            assert_eq!(r, a.as_raw_fd());
            a.write_all(b"2").unwrap();
            b_srv.read_exact(&mut x).unwrap();
            assert_eq!(&x, b"2");
            // And a read on the replaced number waits on b's socket.
            b_srv.write_all(b"3").unwrap();
            a.read_exact(&mut x).unwrap();
            assert_eq!(&x, b"3");
        });
    });
}

#[test]
fn a_runtime_dropped_mid_read_cancels_the_call() {
    watchdog(60, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (s, _) = listener.accept().unwrap();
        let rt = runtime(1, "hook-net-drop");
        let entered = Arc::new(AtomicBool::new(false));
        let errno = Arc::new(AtomicI32::new(0));
        let unwound = Arc::new(AtomicBool::new(false));
        {
            let (entered, errno, unwound) = (entered.clone(), errno.clone(), unwound.clone());
            rt.spawn(move || {
                struct Flag(Arc<AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _flag = Flag(unwound);
                let mut s = s;
                entered.store(true, Ordering::SeqCst);
                let mut b = [0u8; 1];
                let e = s.read(&mut b).unwrap_err();
                errno.store(e.raw_os_error().unwrap_or(-1), Ordering::SeqCst);
                fiber::park(); // the next runtime park unwinds
                unreachable!("the fiber was cancelled");
            });
        }
        while !entered.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        drop(rt);
        assert_eq!(errno.load(Ordering::SeqCst), libc::ECANCELED);
        assert!(unwound.load(Ordering::SeqCst));
    });
}

#[test]
fn refused_connects_report_the_error() {
    watchdog(30, || {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let on_thread = TcpStream::connect(addr).unwrap_err().kind();
        let in_fiber = fiber::run(move || TcpStream::connect(addr).unwrap_err().kind());
        assert_eq!(on_thread, ErrorKind::ConnectionRefused);
        assert_eq!(in_fiber, on_thread);
    });
}

#[test]
fn poll_on_one_socket_parks_only_the_fiber() {
    watchdog(30, || {
        let rt = runtime(1, "hook-net-poll");
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (s, _) = listener.accept().unwrap();
            let fd = s.as_raw_fd();
            // Nothing arrives: a time-out after at least 100 ms, 0 ready.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let t0 = Instant::now();
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, 100) };
            assert_eq!(r, 0);
            assert!(t0.elapsed() >= Duration::from_millis(100));
            // Another fiber on the one worker writes while this one polls.
            let writer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(50));
                c.write_all(b"x").unwrap();
                c
            });
            // SAFETY: as above.
            let r = unsafe { libc::poll(&mut pfd, 1, 5_000) };
            assert_eq!(r, 1);
            assert_ne!(pfd.revents & libc::POLLIN, 0);
            let _c = writer.join().unwrap();
        });
    });
}

/// A minimal HTTP/1.1 server on std only: each request gets `body` after `delay`.
fn std_http_server(delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    fiber::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            fiber::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(delay);
                let body = b"hello from std";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body);
            });
        }
    });
    addr
}

#[test]
fn ureq_unchanged_in_fibers() {
    // ureq 2 blocking client, unchanged: 200 GETs to a server that answers after 100 ms, all on
    // one worker (without the hooks the first GET would block the server's fibers: a deadlock).
    watchdog(60, || {
        let rt = runtime(1, "hook-ureq");
        let t0 = Instant::now();
        let ok = rt.block_on(|| {
            let addr = std_http_server(Duration::from_millis(100));
            let url = format!("http://{addr}/");
            let hs: Vec<_> = (0..200)
                .map(|_| {
                    let url = url.clone();
                    fiber::spawn(move || ureq::get(&url).call().unwrap().into_string().unwrap())
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|body| body == "hello from std")
                .count()
        });
        assert_eq!(ok, 200);
        let took = t0.elapsed();
        // Sequential would be 200 × 100 ms = 20 s.
        assert!(
            took < Duration::from_secs(10),
            "200 GETs of 100 ms took {took:?}"
        );
    });
}

#[test]
fn short_reads_leave_later_bytes_eof_and_peeked_bytes_readable() {
    // A short read on a stream marks the queue empty (the next read waits for an edge, without a
    // recv that can only say EAGAIN). What comes after must still arrive: later bytes, an end of
    // stream, and bytes a short MSG_PEEK saw (a peek does not drain). The writer sends each piece
    // only after the reader acknowledged the one before, so pieces never merge.
    watchdog(30, || {
        let rt = runtime(1, "hook-net-short");
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = fiber::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut ack = [0u8; 1];
                for piece in [&b"first"[..], b"later", b"peek", b"end"] {
                    c.write_all(piece).unwrap();
                    c.read_exact(&mut ack).unwrap();
                }
                c.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut read = |conn: &mut TcpStream, ack: bool| {
                let n = conn.read(&mut buf).unwrap();
                if ack {
                    conn.write_all(b"k").unwrap();
                }
                buf[..n].to_vec()
            };
            assert_eq!(read(&mut conn, true), b"first");
            assert_eq!(read(&mut conn, true), b"later");
            let mut peeked = [0u8; 1024];
            let n = conn.peek(&mut peeked).unwrap();
            assert_eq!(&peeked[..n], b"peek");
            assert_eq!(read(&mut conn, true), b"peek");
            assert_eq!(read(&mut conn, true), b"end");
            assert_eq!(read(&mut conn, false), b"");
            writer.join().unwrap();
        });
    });
}

/// A std listener (backlog 128) that a fiber accepts on gets the system's maximum backlog: 300
/// connections made while nobody accepts all complete their handshake. With 128 the kernel
/// drops the SYNs past 129 and those connects time out.
#[test]
fn a_fiber_accept_widens_a_std_listeners_backlog() {
    watchdog(60, || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = runtime(1, "hook-backlog");
        // One accept in a fiber, then nobody accepts.
        let first = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
        let listener = rt.block_on(move || {
            let _ = listener.accept().unwrap();
            listener
        });
        let _first = first.join().unwrap();
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..300 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(20)) {
                Ok(s) => held.push(s),
                Err(_) => refused += 1,
            }
        }
        assert_eq!(
            (held.len(), refused),
            (300, 0),
            "connects completed while nobody accepted"
        );
        drop(listener);
    });
}
