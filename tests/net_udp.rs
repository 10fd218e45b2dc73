//! UDP behaviour, ported from what std documents, on plain threads and inside fibers.
mod support;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fiber::net::UdpSocket;
use support::both;

fn socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[test]
fn send_to_recv_from_peek_from() {
    both(|m| {
        let (a, aa) = socket();
        let (b, ba) = socket();
        let rx = m.spawn(move || {
            let mut buf = [0u8; 16];
            let (n, from) = b.peek_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"hello"[..], aa));
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"hello"[..], aa));
            b
        });
        std::thread::sleep(Duration::from_millis(20)); // let the receiver park first
        assert_eq!(a.send_to(b"hello", ba).unwrap(), 5);
        let b = rx.join();
        // Name resolution in send_to / bind.
        assert_eq!(
            b.send_to(b"x", format!("localhost:{}", aa.port())).unwrap(),
            1
        );
        let mut buf = [0u8; 4];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (1, ba));
        let none: &[SocketAddr] = &[];
        assert_eq!(
            a.send_to(b"x", none).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
}

#[test]
fn connected_send_recv_peek() {
    both(|_| {
        let (a, aa) = socket();
        let (b, ba) = socket();
        a.connect(ba).unwrap();
        b.connect(aa).unwrap();
        assert_eq!(a.peer_addr().unwrap(), ba);
        a.send(b"one").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.peek(&mut buf).unwrap(), 3);
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        let (c, _) = socket();
        assert_eq!(
            c.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    });
}

#[test]
fn timeouts_nonblocking_clone_options() {
    both(|_| {
        let (a, _) = socket();
        a.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
        assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(40)));
        assert_eq!(
            a.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let t0 = Instant::now();
        let e = a.recv_from(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(t0.elapsed() >= Duration::from_millis(40));
        a.set_read_timeout(None).unwrap();
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            a.recv(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let a2 = a.try_clone().unwrap();
        assert_eq!(a2.local_addr().unwrap(), a.local_addr().unwrap());
        assert_eq!(
            a2.recv(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_ttl(9).unwrap();
        assert_eq!(a.ttl().unwrap(), 9);
        a.set_multicast_loop_v4(false).unwrap();
        assert!(!a.multicast_loop_v4().unwrap());
        a.set_multicast_ttl_v4(3).unwrap();
        assert_eq!(a.multicast_ttl_v4().unwrap(), 3);
        assert!(a.take_error().unwrap().is_none());
        a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));
        let _ = a.join_multicast_v4(&Ipv4Addr::new(239, 1, 2, 3), &Ipv4Addr::UNSPECIFIED);
    });
}

#[test]
fn many_datagrams_between_tasks() {
    both(|m| {
        let (a, aa) = socket();
        let (b, ba) = socket();
        let n = 200u32;
        let echo = m.spawn(move || {
            let mut buf = [0u8; 4];
            for _ in 0..n {
                let (k, from) = b.recv_from(&mut buf).unwrap();
                b.send_to(&buf[..k], from).unwrap();
            }
        });
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for i in 0..n {
            a.send_to(&i.to_le_bytes(), ba).unwrap();
            let mut buf = [0u8; 4];
            let (k, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!((k, from, u32::from_le_bytes(buf)), (4, ba, i));
        }
        let _ = aa;
        echo.join();
    });
}

#[test]
fn adopt_and_raw_fd() {
    both(|_| {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let std_s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_s
            .set_read_timeout(Some(Duration::from_millis(40)))
            .unwrap();
        let s = UdpSocket::from(std_s);
        // The kernel keeps SO_RCVTIMEO in jiffies; std reports what it kept.
        let t = s.read_timeout().unwrap().unwrap();
        assert!(
            t >= Duration::from_millis(30) && t <= Duration::from_millis(50),
            "{t:?}"
        );
        let addr = s.local_addr().unwrap();
        let fd = s.into_raw_fd();
        // SAFETY: `fd` was just released by `into_raw_fd` and is owned by nobody else.
        let s = unsafe { UdpSocket::from_raw_fd(fd) };
        assert_eq!(s.local_addr().unwrap(), addr);
        assert!(format!("{s:?}").contains("UdpSocket"));
    });
}
