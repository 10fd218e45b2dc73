//! TCP behaviour, ported from what std documents, run on plain threads and inside fibers.
mod support;

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use fiber::net::{TcpListener, TcpStream};
use support::{both, Mode};

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A connected pair (client, server side).
fn pair() -> (TcpStream, TcpStream) {
    let (l, a) = listener();
    let c = TcpStream::connect(a).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

#[test]
fn echo_round_trip() {
    both(|m| {
        let (l, a) = listener();
        let server = m.spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).unwrap();
            }
        });
        let mut c = TcpStream::connect(a).unwrap();
        assert_eq!(c.peer_addr().unwrap(), a);
        for i in 0..100u32 {
            let msg = i.to_le_bytes();
            c.write_all(&msg).unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg);
        }
        c.shutdown(Shutdown::Write).unwrap();
        server.join();
    });
}

#[test]
fn connect_tries_every_address_and_resolves_names() {
    both(|_| {
        let (l, a) = listener();
        // A port nobody listens on: bind then drop.
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let addrs = [dead, a];
        let c = TcpStream::connect(&addrs[..]).unwrap();
        assert_eq!(c.peer_addr().unwrap(), a);
        drop(l.accept().unwrap());
        // Host name resolution (on the blocking pool inside fibers).
        let c = TcpStream::connect(("localhost", a.port()));
        if let Ok(c) = c {
            assert_eq!(c.peer_addr().unwrap().port(), a.port());
        }
        let c = TcpStream::connect(format!("127.0.0.1:{}", a.port())).unwrap();
        assert_eq!(c.peer_addr().unwrap(), a);
        // Refused: the error is returned, no panic.
        let e = TcpStream::connect(dead).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let e = TcpStream::connect("not a socket address").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let none: &[SocketAddr] = &[];
        assert_eq!(
            TcpStream::connect(none).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
}

#[test]
fn connect_timeout() {
    both(|_| {
        let (l, a) = listener();
        let e = TcpStream::connect_timeout(&a, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let c = TcpStream::connect_timeout(&a, Duration::from_secs(5)).unwrap();
        assert_eq!(c.peer_addr().unwrap(), a);
        drop(l);
        // A listener that never accepts, with a backlog of 1: once its queue is full, the kernel
        // drops further SYNs, so a connect can only time out.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        sock.listen(1).unwrap();
        let full = sock.local_addr().unwrap().as_socket().unwrap();
        let mut kept = Vec::new();
        let mut timed_out = false;
        for _ in 0..16 {
            let t0 = Instant::now();
            match TcpStream::connect_timeout(&full, Duration::from_millis(100)) {
                Ok(s) => kept.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    assert!(t0.elapsed() >= Duration::from_millis(100));
                    assert!(t0.elapsed() < Duration::from_secs(5));
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(timed_out, "connects to a full backlog should time out");
    });
}

#[test]
fn read_and_write_timeouts() {
    both(|_| {
        let (c, s) = pair();
        assert_eq!(c.read_timeout().unwrap(), None);
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let t0 = Instant::now();
        let e = (&c).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::WouldBlock,
            "std on Unix reports EAGAIN"
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(t0.elapsed() < Duration::from_secs(2));
        // The connection is still usable after a timeout.
        (&s).write_all(b"late").unwrap();
        let mut buf = [0u8; 4];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        // Write timeout: the peer never reads, so the buffers fill up.
        c.set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(50)));
        let chunk = vec![7u8; 64 * 1024];
        let t0 = Instant::now();
        let e = loop {
            match (&c).write(&chunk) {
                Ok(n) => assert!(
                    n > 0 && t0.elapsed() < Duration::from_secs(10),
                    "buffers never filled"
                ),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        c.set_read_timeout(None).unwrap();
        assert_eq!(c.read_timeout().unwrap(), None);
        drop(s);
    });
}

#[test]
fn slowloris_is_cut_off_by_read_timeout() {
    both(|m| {
        let (l, a) = listener();
        let server = m.spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 64];
            let mut got = 0;
            let err = loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("unexpected EOF"),
                    Ok(n) => got += n,
                    Err(e) => break e,
                }
            };
            (got, err.kind())
        });
        let mut c = TcpStream::connect(a).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n").unwrap(); // ... and never more
        let (got, kind) = server.join();
        assert_eq!(got, 16);
        assert_eq!(kind, io::ErrorKind::WouldBlock);
    });
}

#[test]
fn nonblocking_mode() {
    both(|_| {
        let (l, a) = listener();
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let c = TcpStream::connect(a).unwrap();
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        c.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            (&c).read(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no timeout is set: a wait would hang"
        );
        // Shared with clones, as a socket option is in std.
        let c2 = c.try_clone().unwrap();
        assert_eq!(
            (&c2).read(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        c.set_nonblocking(false).unwrap();
        (&s).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&c2).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    });
}

#[test]
fn peek_shutdown_vectored() {
    both(|_| {
        let (mut c, mut s) = pair();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        let n = s.peek(&mut buf).unwrap();
        assert!(n >= 1 && buf[..n] == b"hello"[..n]);
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // Vectored I/O.
        let n = c
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        let (mut x, mut y) = ([0u8; 1], [0u8; 3]);
        let mut got = 0;
        while got < 4 {
            let mut bufs = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
            got += s.read_vectored(&mut bufs).unwrap();
            assert_eq!(got, 4, "loopback delivers both slices at once");
        }
        assert_eq!((&x, &y), (b"a", b"bcd"));
        // Shutdown(Write) gives the peer EOF; Shutdown(Read) makes our reads return 0.
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        s.write_all(b"still works").unwrap();
        let mut back = [0u8; 11];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"still works");
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!(c.read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn socket_options() {
    both(|_| {
        let (c, _s) = pair();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        c.set_ttl(42).unwrap();
        assert_eq!(c.ttl().unwrap(), 42);
        assert!(c.take_error().unwrap().is_none());
        let (l, _) = listener();
        l.set_ttl(7).unwrap();
        assert_eq!(l.ttl().unwrap(), 7);
        assert!(l.take_error().unwrap().is_none());
        let l2 = l.try_clone().unwrap();
        assert_eq!(l2.local_addr().unwrap(), l.local_addr().unwrap());
        assert!(format!("{c:?}").contains("TcpStream"));
    });
}

#[test]
fn try_clone_shares_stream_and_timeouts() {
    both(|m| {
        let (c, s) = pair();
        let c2 = c.try_clone().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(c2.read_timeout().unwrap(), Some(Duration::from_millis(30)));
        c2.set_read_timeout(None).unwrap();
        // Reader on the clone, writer on the original; a megabyte each way.
        const N: usize = 1 << 20;
        let reader = m.spawn(move || {
            let mut c2 = c2;
            let mut total = 0;
            let mut buf = vec![0u8; 16 * 1024];
            while total < N {
                let n = c2.read(&mut buf).unwrap();
                assert!(n > 0);
                assert!(buf[..n].iter().all(|&b| b == 3));
                total += n;
            }
            total
        });
        let echo = m.spawn(move || {
            let mut s = s;
            let mut buf = vec![0u8; 16 * 1024];
            let mut total = 0;
            while total < N {
                let n = s.read(&mut buf).unwrap();
                s.write_all(&buf[..n]).unwrap();
                total += n;
            }
        });
        (&c).write_all(&vec![3u8; N]).unwrap();
        assert_eq!(reader.join(), N);
        echo.join();
    });
}

#[test]
fn drop_while_clone_is_parked() {
    both(|m| {
        let (c, mut s) = pair();
        let c2 = c.try_clone().unwrap();
        let reader = m.spawn(move || {
            let mut c2 = c2;
            let mut buf = [0u8; 5];
            c2.read_exact(&mut buf).unwrap();
            let eof = c2.read(&mut buf).unwrap();
            (buf, eof)
        });
        std::thread::sleep(Duration::from_millis(50)); // let the reader park
        drop(c); // the clone's fd keeps the connection open; the parked reader is unaffected
        s.write_all(b"after").unwrap();
        drop(s); // now EOF
        let (buf, eof) = reader.join();
        assert_eq!(&buf, b"after");
        assert_eq!(eof, 0);
    });
}

#[test]
fn reset_and_broken_pipe_are_errors() {
    both(|_| {
        let (mut c, s) = pair();
        // Reset: the peer closes with SO_LINGER 0 → RST.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(20));
        let e = c.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        // Broken pipe: keep writing to a closed peer.
        let (mut c, s) = pair();
        drop(s);
        std::thread::sleep(Duration::from_millis(20));
        let e = (0..100)
            .find_map(|_| c.write(&[0u8; 1024]).err())
            .expect("writes to a closed peer fail");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
    });
}

#[test]
fn incoming_and_fd_conversions() {
    both(|m| {
        let (l, a) = listener();
        let clients = m.spawn(move || {
            (0..3)
                .map(|_| TcpStream::connect(a).unwrap())
                .collect::<Vec<_>>()
        });
        let accepted: Vec<TcpStream> = l.incoming().take(3).map(Result::unwrap).collect();
        let clients = clients.join();
        assert_eq!(accepted.len(), 3);
        // IntoRawFd / FromRawFd round trip keeps the connection working.
        let fd = clients[0].as_fd().as_raw_fd();
        assert!(fd >= 0);
        let mut it = clients.into_iter();
        let raw = it.next().unwrap().into_raw_fd();
        // SAFETY: `raw` came from `into_raw_fd` just above and is owned by nobody else.
        let mut back = unsafe { TcpStream::from_raw_fd(raw) };
        back.write_all(b"raw").unwrap();
        let mut buf = [0u8; 3];
        let mut found = false;
        for mut s in accepted {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if s.read_exact(&mut buf).is_ok() {
                found = true;
            }
        }
        assert!(found && &buf == b"raw");
    });
}

#[test]
fn adopt_std_sockets() {
    both(|_| {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std_l.local_addr().unwrap();
        let std_c = std::net::TcpStream::connect(a).unwrap();
        std_c
            .set_read_timeout(Some(Duration::from_millis(40)))
            .unwrap();
        let c = TcpStream::from(std_c);
        let t = c.read_timeout().unwrap().unwrap();
        assert!(
            t >= Duration::from_millis(30) && t <= Duration::from_millis(50),
            "{t:?}"
        );
        let t0 = Instant::now();
        assert_eq!(
            (&c).read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(t0.elapsed() >= t);
        let l = TcpListener::from(std_l);
        let (s, _) = l.accept().unwrap();
        // A std socket that was already non-blocking stays non-blocking for its user.
        let std_c2 = std::net::TcpStream::connect(a).unwrap();
        std_c2.set_nonblocking(true).unwrap();
        let c2 = TcpStream::from(std_c2);
        assert_eq!(
            (&c2).read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(s);
    });
}

#[test]
fn many_concurrent_echo_clients() {
    both(|m| {
        let clients: usize = if m == Mode::Thread { 50 } else { 1000 };
        let rounds: usize = if cfg!(debug_assertions) { 20 } else { 200 };
        let (l, a) = listener();
        let server = m.spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..clients {
                let (mut s, _) = l.accept().unwrap();
                conns.push(m.spawn(move || {
                    let mut buf = [0u8; 64];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => s.write_all(&buf[..n]).unwrap(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }));
            }
            for c in conns {
                c.join();
            }
        });
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                m.spawn(move || {
                    let mut c = TcpStream::connect(a).unwrap();
                    let mut msg = [0u8; 64];
                    msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    let mut back = [0u8; 64];
                    for _ in 0..rounds {
                        c.write_all(&msg).unwrap();
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                    }
                    rounds
                })
            })
            .collect();
        let total: usize = tasks.into_iter().map(|t| t.join()).sum();
        assert_eq!(total, clients * rounds);
        server.join();
    });
}

#[test]
fn runtime_dropped_while_a_fiber_is_parked_on_a_shared_socket() {
    support::watchdog(30, || {
        let (c, mut s) = pair();
        let c = std::sync::Arc::new(c);
        let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        let c2 = c.clone();
        rt.spawn(move || {
            let mut buf = [0u8; 1];
            let _ = (&*c2).read(&mut buf); // parks: nothing is ever sent before the shutdown
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(rt); // cancels the parked fiber: it unwinds out of the wait
                  // The socket outlives the runtime and still works, now from a plain thread.
        s.write_all(b"z").unwrap();
        let mut buf = [0u8; 1];
        (&*c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"z");
    });
}

#[test]
fn a_socket_registered_with_one_runtime_still_works_in_another() {
    support::watchdog(30, || {
        let (c, s) = pair();
        let c = std::sync::Arc::new(c);
        let s = std::sync::Arc::new(s);
        let rt_a = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        let rt_b = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for b in [b"a", b"b"] {
                    std::thread::sleep(Duration::from_millis(50));
                    (&*s).write_all(b).unwrap();
                }
            })
        };
        let mut buf = [0u8; 1];
        let c1 = c.clone();
        // Waits in runtime A: registers the socket with A's reactor.
        let got = rt_a.block_on(move || {
            (&*c1).read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(&got, b"a");
        // Waits in runtime B: the documented fallback (poll(2) on B's worker) still delivers.
        let got = rt_b.block_on(move || {
            let mut buf = [0u8; 1];
            (&*c).read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(&got, b"b");
        writer.join().unwrap();
    });
}

/// A short read clears the readiness it consumed (so the next read waits for an edge instead of
/// failing with `EAGAIN`), but a peer's FIN queued behind the data has already had its edge: the
/// next read must still return end-of-stream at once, not wait forever.
#[test]
fn end_of_stream_behind_a_short_read() {
    both(|m| {
        for _ in 0..20 {
            let (l, a) = listener();
            let server = m.spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"a").unwrap();
                let mut ack = [0u8; 1];
                s.read_exact(&mut ack).unwrap();
                s.write_all(b"hello").unwrap();
                // Dropped: FIN follows the data.
            });
            let mut c = TcpStream::connect(a).unwrap();
            let mut buf = [0u8; 4096];
            // Registers with the reactor (inside a fiber) and consumes one readiness edge.
            assert_eq!(c.read(&mut buf).unwrap(), 1);
            c.write_all(b"k").unwrap();
            server.join();
            // Data and FIN are queued, and their event has been seen by the reactor.
            fiber::sleep(Duration::from_millis(5));
            assert_eq!(c.read(&mut buf).unwrap(), 5, "the data, in one short read");
            assert_eq!(c.read(&mut buf).unwrap(), 0, "then end of stream, at once");
        }
    });
}

/// Each worker has its own reactor, and a socket is registered with the reactor of the worker
/// whose fiber first waited on it. A fiber on *another* worker that then waits on the same socket
/// must be woken by its own worker's reactor, even while the first worker is stuck in a fiber that
/// never yields (which keeps that worker from ever polling its reactor).
#[test]
fn a_waiter_on_another_worker_is_woken_while_the_first_worker_is_busy() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    support::watchdog(30, || {
        let (c, mut s) = pair();
        let c = Arc::new(c);
        let rt = fiber::Runtime::builder().worker_threads(2).build().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader_waiting = Arc::new(AtomicBool::new(false));
        let first = rt.spawn({
            let (c, done, reader_waiting) = (c.clone(), done.clone(), reader_waiting.clone());
            move || {
                // Registers the socket with this worker's reactor.
                c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                let mut buf = [0u8; 1];
                let err = (&*c).read(&mut buf).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
                c.set_read_timeout(None).unwrap();
                let me = std::thread::current().name().map(str::to_owned);
                // Start readers until one runs on the other worker.
                let placed = Arc::new(AtomicUsize::new(0));
                let mut readers = Vec::new();
                while placed.load(Ordering::Acquire) == 0 {
                    let (c, done, me, placed, reader_waiting) = (
                        c.clone(),
                        done.clone(),
                        me.clone(),
                        placed.clone(),
                        reader_waiting.clone(),
                    );
                    readers.push(fiber::spawn(move || {
                        if std::thread::current().name().map(str::to_owned) == me
                            || placed.swap(1, Ordering::AcqRel) != 0
                        {
                            return;
                        }
                        reader_waiting.store(true, Ordering::Release);
                        let mut buf = [0u8; 1];
                        (&*c).read_exact(&mut buf).unwrap();
                        assert_eq!(&buf, b"x");
                        done.store(true, Ordering::Release);
                    }));
                    fiber::sleep(Duration::from_millis(1));
                }
                // Hog this worker (no yield, so no reactor poll here) until the reader is done.
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while !done.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                    std::hint::spin_loop();
                }
                let woken_meanwhile = done.load(Ordering::Acquire);
                for r in readers {
                    r.join().unwrap();
                }
                woken_meanwhile
            }
        });
        while !reader_waiting.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20)); // let the reader park
        s.write_all(b"x").unwrap();
        assert!(
            first.join().unwrap(),
            "the reader on the other worker was not woken while the first worker was busy"
        );
    });
}

/// After a short read the socket's readiness is cleared, so a later blocking read waits for the
/// reactor's next edge. In the user's non-blocking mode that shortcut must not apply: as with std,
/// a read returns the bytes the kernel holds even if the reactor has not reported them yet (here
/// the worker is kept from polling by a blocking sleep).
#[test]
fn a_nonblocking_read_sees_bytes_the_reactor_has_not_reported_yet() {
    support::watchdog(30, || {
        let (c, s) = pair();
        let s = std::sync::Arc::new(s);
        let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
        let got = rt.block_on(move || {
            let writer = {
                let s = s.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    (&*s).write_all(b"a").unwrap();
                })
            };
            let mut buf = [0u8; 16];
            // Waits (registers with the reactor), then a short read clears readiness.
            assert_eq!((&c).read(&mut buf).unwrap(), 1);
            writer.join().unwrap();
            c.set_nonblocking(true).unwrap();
            (&*s).write_all(b"b").unwrap();
            // Keep the worker from polling its reactor while the byte arrives.
            std::thread::sleep(Duration::from_millis(20));
            let n = (&c)
                .read(&mut buf)
                .expect("the byte is in the kernel's queue");
            buf[..n].to_vec()
        });
        assert_eq!(got, b"b");
    });
}
