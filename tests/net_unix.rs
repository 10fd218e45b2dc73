//! Unix domain sockets, on plain threads and inside fibers.
mod support;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use support::both;

fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("fiber-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn stream_echo_and_addresses() {
    both(|m| {
        let path = temp_path("echo");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let server = m.spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 256];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).unwrap();
            }
        });
        let mut c = UnixStream::connect(&path).unwrap();
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
        for i in 0..100u8 {
            c.write_all(&[i; 10]).unwrap();
            let mut back = [0u8; 10];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, [i; 10]);
        }
        c.shutdown(Shutdown::Write).unwrap();
        server.join();
        assert_eq!(
            UnixStream::connect(temp_path("nobody")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn pair_timeouts_nonblocking_peek_clone() {
    both(|m| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            (&a).read(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(t0.elapsed() >= Duration::from_millis(40));
        a.set_read_timeout(None).unwrap();
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            (&a).read(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.set_nonblocking(false).unwrap();
        (&b).write_all(b"peek").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(a.peek(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"peek");
        let a2 = a.try_clone().unwrap();
        let r = m.spawn(move || {
            let mut buf = [0u8; 4];
            (&a2).read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(&r.join(), b"peek");
        assert!(a.take_error().unwrap().is_none());
        assert_eq!(a.write_timeout().unwrap(), None);
        // Write timeout: nobody reads b.
        a.set_write_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let e = loop {
            match (&a).write(&chunk) {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(b);
        // Peer gone: a write is an error (EPIPE), not a panic.
        let e = (&a).write(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn listener_incoming_nonblocking() {
    both(|m| {
        let path = temp_path("incoming");
        let l = UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        l.set_nonblocking(false).unwrap();
        let p2 = path.clone();
        let clients = m.spawn(move || {
            (0..3)
                .map(|_| UnixStream::connect(&p2).unwrap())
                .collect::<Vec<_>>()
        });
        let got: Vec<_> = l.incoming().take(3).map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(clients.join().len(), 3);
        let l2 = l.try_clone().unwrap();
        assert!(l2.take_error().unwrap().is_none());
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn datagrams() {
    both(|m| {
        let pa = temp_path("dga");
        let pb = temp_path("dgb");
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let rx = m.spawn(move || {
            let mut buf = [0u8; 16];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            (
                buf[..n].to_vec(),
                from.as_pathname().map(|p| p.to_path_buf()),
            )
        });
        std::thread::sleep(Duration::from_millis(20)); // let the receiver park first
        assert_eq!(a.send_to(b"dgram", &pb).unwrap(), 5);
        let (data, from) = rx.join();
        assert_eq!(
            (data.as_slice(), from.as_deref()),
            (&b"dgram"[..], Some(pa.as_path()))
        );
        let (x, y) = UnixDatagram::pair().unwrap();
        x.send(b"one").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(y.recv(&mut buf).unwrap(), 3);
        y.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(
            y.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        y.set_nonblocking(true).unwrap();
        assert_eq!(
            y.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let u = UnixDatagram::unbound().unwrap();
        u.connect(&pa).unwrap();
        assert_eq!(u.peer_addr().unwrap().as_pathname(), Some(pa.as_path()));
        u.shutdown(Shutdown::Both).unwrap();
        let x2 = x.try_clone().unwrap();
        assert!(x2.local_addr().unwrap().is_unnamed());
        assert!(x2.take_error().unwrap().is_none());
        drop(a);
        let _ = (std::fs::remove_file(&pa), std::fs::remove_file(&pb));
    });
}
