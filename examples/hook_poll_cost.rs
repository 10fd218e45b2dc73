//! What a readiness wait costs inside a fiber: round trips between two fibers on one worker over a
//! Unix socket pair, each side waiting for its byte with a hooked read alone, `poll` on the one
//! socket (its own registration), `poll` on the socket and an idle pipe (a temporary epoll set per
//! wait), or `epoll_wait` on an epoll fd holding the socket (the epoll fd's registration).
//!
//! `cargo run --release --example hook_poll_cost`
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
enum How {
    ReadOnly,
    PollOneSocket,
    PollTwoFds,
    EpollWait,
}

/// What one side waits with: an idle pipe and an epoll fd holding its socket.
struct Side {
    sock: UnixStream,
    idle: (OwnedFd, OwnedFd),
    ep: OwnedFd,
}

impl Side {
    fn new(sock: UnixStream) -> Side {
        let mut p = [0; 2];
        // SAFETY: room for two fds.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        // SAFETY: fresh and ours.
        let idle_r = unsafe { OwnedFd::from_raw_fd(p[0]) };
        // SAFETY: as above.
        let idle_w = unsafe { OwnedFd::from_raw_fd(p[1]) };
        let idle = (idle_r, idle_w);
        // SAFETY: no pointers.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: a valid event.
        let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) };
        assert_eq!(rc, 0);
        // SAFETY: fresh and ours.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        Side { sock, idle, ep }
    }

    fn wait(&self, how: How) {
        let fd = self.sock.as_raw_fd();
        let pfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        match how {
            How::ReadOnly => {}
            How::PollOneSocket => {
                let mut p = [pfd(fd)];
                // SAFETY: one valid pollfd.
                assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 1, -1) }, 1);
            }
            How::PollTwoFds => {
                let mut p = [pfd(self.idle.0.as_raw_fd()), pfd(fd)];
                // SAFETY: two valid pollfds.
                assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 2, -1) }, 1);
            }
            How::EpollWait => {
                let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
                // SAFETY: room for four events.
                let n = unsafe { libc::epoll_wait(self.ep.as_raw_fd(), ev.as_mut_ptr(), 4, -1) };
                assert_eq!(n, 1);
            }
        }
    }

    fn recv(&mut self, how: How) {
        self.wait(how);
        let mut b = [0u8; 1];
        self.sock.read_exact(&mut b).unwrap();
    }
}

/// Microseconds per round trip.
fn round_trip_us(how: How, n: u32) -> f64 {
    let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(move || {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Side::new(a), Side::new(b));
        let echo = fiber::spawn(move || {
            for _ in 0..n {
                b.recv(how);
                b.sock.write_all(b"y").unwrap();
            }
        });
        let t0 = Instant::now();
        for _ in 0..n {
            a.sock.write_all(b"x").unwrap();
            a.recv(how);
        }
        let took = t0.elapsed();
        echo.join().unwrap();
        took.as_secs_f64() * 1e6 / f64::from(n)
    })
}

fn main() {
    let n = 20_000;
    println!("round trips between two fibers on one worker, {n} each, best of 5");
    for how in [
        How::ReadOnly,
        How::PollOneSocket,
        How::PollTwoFds,
        How::EpollWait,
    ] {
        let best = (0..5)
            .map(|_| round_trip_us(how, n))
            .fold(f64::INFINITY, f64::min);
        println!("{:<14} {best:>6.2} µs", format!("{how:?}"));
    }
}
