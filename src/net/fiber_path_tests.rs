//! The fiber path (registration, readiness slots, park/unpark from `dispatch`) driven by a test
//! reactor thread: each test thread "enters" the reactor and then behaves as a fiber would.
use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use super::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use crate::driver::io::slots_in_use;
use crate::driver::io::test_support::{fd_test as watchdog, TestReactor};

/// `watchdog` around a test that wants a reactor and a listener on a loopback port.
fn with_listener(secs: u64, f: impl FnOnce(TestReactor, TcpListener, SocketAddr) + Send + 'static) {
    watchdog(secs, || {
        let reactor = TestReactor::start();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        f(reactor, l, a)
    })
}

/// Spawns a "fiber": a thread that waits through `reactor`.
fn spawn_in<T: Send + 'static>(
    reactor: &TestReactor,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let h = reactor.handle.clone();
    thread::spawn(move || {
        crate::driver::io::test_support::enter_handle(h);
        f()
    })
}

#[test]
fn ping_pong_never_loses_an_edge() {
    with_listener(60, |reactor, l, a| {
        let rounds = if cfg!(debug_assertions) {
            5_000
        } else {
            50_000
        };
        let server = spawn_in(&reactor, move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            for _ in 0..rounds {
                s.read_exact(&mut b).unwrap();
                s.write_all(&b).unwrap();
            }
        });
        let client = spawn_in(&reactor, move || {
            let mut c = TcpStream::connect(a).unwrap();
            let mut b = [0u8; 1];
            for i in 0..rounds {
                c.write_all(&[i as u8]).unwrap();
                c.read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8);
            }
        });
        client.join().unwrap();
        server.join().unwrap();
    });
}

#[test]
fn concurrent_echo_clients() {
    with_listener(60, |reactor, l, a| {
        let n = 64;
        let server = spawn_in(&reactor, move || {
            let mut hs = Vec::new();
            let h = crate::driver::io::test_support::current_test_handle();
            for _ in 0..n {
                let (mut s, _) = l.accept().unwrap();
                let h = h.clone();
                hs.push(thread::spawn(move || {
                    crate::driver::io::test_support::enter_handle(h);
                    let mut buf = [0u8; 64];
                    loop {
                        match s.read(&mut buf).unwrap() {
                            0 => break,
                            k => s.write_all(&buf[..k]).unwrap(),
                        }
                    }
                }));
            }
            hs.into_iter().for_each(|h| h.join().unwrap());
        });
        let clients: Vec<_> = (0..n)
            .map(|i| {
                spawn_in(&reactor, move || {
                    let mut c = TcpStream::connect(a).unwrap();
                    let msg = [i as u8; 64];
                    let mut back = [0u8; 64];
                    for _ in 0..200 {
                        c.write_all(&msg).unwrap();
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                    }
                })
            })
            .collect();
        clients.into_iter().for_each(|h| h.join().unwrap());
        server.join().unwrap();
    });
}

#[test]
fn timeouts_and_nonblocking_in_fiber_mode() {
    with_listener(30, |reactor, l, a| {
        spawn_in(&reactor, move || {
            let c = TcpStream::connect(a).unwrap();
            let (s, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let t0 = Instant::now();
            let e = (&c).read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert!(t0.elapsed() >= Duration::from_millis(50));
            // No timeout: in blocking mode this read would hang (and trip the watchdog).
            c.set_read_timeout(None).unwrap();
            c.set_nonblocking(true).unwrap();
            let e = (&c).read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            c.set_nonblocking(false).unwrap();
            (&s).write_all(b"ok").unwrap();
            let mut b = [0u8; 2];
            (&c).read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ok");
            // UDP too.
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            let e = u.recv_from(&mut [0u8; 8]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        })
        .join()
        .unwrap();
    });
}

#[test]
fn registrations_are_released() {
    with_listener(60, |reactor, l, a| {
        spawn_in(&reactor, move || {
            let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
            // Warm up: registers the listener.
            l.set_nonblocking(true).unwrap();
            let _ = l.accept();
            l.set_nonblocking(false).unwrap();
            let (fd0, slots0) = (fds(), slots_in_use());
            for _ in 0..500 {
                let c = TcpStream::connect(a).unwrap();
                let (s, _) = l.accept().unwrap();
                // Force both to register: a read that has to wait.
                s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                let _ = (&s).read(&mut [0u8; 1]);
                drop(c);
                drop(s);
            }
            assert_eq!(fds(), fd0, "fd leak");
            assert_eq!(slots_in_use(), slots0, "slot leak");
        })
        .join()
        .unwrap();
    });
}

#[test]
fn two_readers_on_one_socket_never_lose_a_wakeup() {
    with_listener(60, |reactor, l, a| {
        let n: usize = if cfg!(debug_assertions) {
            3_000
        } else {
            30_000
        };
        let writer = spawn_in(&reactor, move || {
            let mut c = TcpStream::connect(a).unwrap();
            for i in 0..n {
                c.write_all(&[1]).unwrap();
                if i % 64 == 0 {
                    thread::yield_now();
                }
            }
        });
        let (s, _) = l.accept().unwrap();
        let s = std::sync::Arc::new(s);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                spawn_in(&reactor, move || {
                    let mut got = 0;
                    let mut buf = [0u8; 16];
                    loop {
                        match (&*s).read(&mut buf).unwrap() {
                            0 => return got,
                            k => got += k,
                        }
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        let total: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(total, n);
    });
}
