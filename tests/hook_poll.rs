//! The interposed readiness family (`--features hook`): `poll`, `ppoll`, `__poll_chk`, `select`,
//! `epoll_wait` on any fds (pipes, sockets, an epoll fd) park only the fiber: another fiber on the
//! one worker keeps running; timeouts, `POLLNVAL`, `POLLHUP`, negative fds and the sets written
//! back are libc's; no fd leaks; plain threads get libc; a runtime dropped mid-wait neither aborts
//! nor hangs.
//!
//! Every test opens fds, and one counts them, so they take `FDS` one at a time.
mod support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::{runtime, watchdog};

static FDS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(e: i32) {
    // SAFETY: no preconditions; this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: valid and only this thread's.
    unsafe { *slot = e };
}

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and ours.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (r, w)
}

fn put(fd: RawFd) {
    // SAFETY: one readable byte.
    assert_eq!(unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }, 1);
}

fn pfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0x7f, // garbage: poll must overwrite it
    }
}

fn poll(pfds: &mut [libc::pollfd], timeout: i32) -> i32 {
    // SAFETY: `pfds` is a valid, writable array of its length.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) }
}

/// A fiber that counts 5 ms sleeps until the guard drops: ticks during a wait prove the wait
/// left the carrier free (on a one-worker runtime).
struct Ticker {
    ticks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<fiber::JoinHandle<()>>,
}

impl Ticker {
    fn start() -> Ticker {
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            fiber::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    fiber::sleep(Duration::from_millis(5));
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Let it start.
        while ticks.load(Ordering::SeqCst) == 0 {
            fiber::yield_now();
        }
        Ticker {
            ticks,
            stop,
            handle: Some(handle),
        }
    }

    fn ticks(&self) -> usize {
        self.ticks.load(Ordering::SeqCst)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Writes a byte to `fd` from another fiber after `after`.
fn put_later(fd: OwnedFd, after: Duration) -> fiber::JoinHandle<OwnedFd> {
    fiber::spawn(move || {
        fiber::sleep(after);
        put(fd.as_raw_fd());
        fd
    })
}

/// Asserts that `wait` (which returns once an fd written 100 ms after its spawn is ready) let a ticker on
/// the one worker run meanwhile, and returns its result.
fn parks_only_the_fiber<T>(wait: impl FnOnce() -> T) -> T {
    let ticker = Ticker::start();
    let before = ticker.ticks();
    let t0 = Instant::now();
    let result = wait();
    let took = t0.elapsed();
    let ticked = ticker.ticks() - before;
    // The writer sleeps 100 ms from its spawn, a little before this.
    assert!(took >= Duration::from_millis(50), "returned after {took:?}");
    assert!(took < Duration::from_secs(4), "returned after {took:?}");
    // About 20 ticks in 100 ms on an idle machine. A blocked carrier gives exactly none: this
    // fiber does not yield between the two reads but in `wait`.
    assert!(
        ticked >= 1,
        "the carrier was blocked: {ticked} ticks in {took:?}"
    );
    result
}

#[test]
fn poll_on_two_pipes_parks_only_the_fiber() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-pipes").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let writer = put_later(bw, Duration::from_millis(100));
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(b.as_raw_fd(), libc::POLLIN),
            ];
            set_errno(4242);
            let r = parks_only_the_fiber(|| poll(&mut pfds, 5_000));
            assert_eq!(r, 1);
            assert_eq!(errno(), 4242, "a successful poll leaves errno alone");
            assert_eq!(pfds[0].revents, 0);
            assert_eq!(pfds[1].revents, libc::POLLIN);
            drop(writer.join().unwrap());
        });
    });
}

#[test]
fn poll_on_two_sockets_parks_only_the_fiber() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-socks").block_on(|| {
            let (a, _a_peer) = UnixStream::pair().unwrap();
            let (b, mut b_peer) = UnixStream::pair().unwrap();
            let writer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                b_peer.write_all(b"y").unwrap();
                b_peer
            });
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(b.as_raw_fd(), libc::POLLIN),
            ];
            let r = parks_only_the_fiber(|| poll(&mut pfds, 5_000));
            assert_eq!(r, 1);
            assert_eq!(pfds[0].revents, 0);
            assert_eq!(pfds[1].revents, libc::POLLIN);
            let _peer = writer.join().unwrap();
            // And one socket alone, through its own registration.
            let mut one = [pfd(a.as_raw_fd(), libc::POLLIN | libc::POLLOUT)];
            assert_eq!(poll(&mut one, 5_000), 1);
            assert_eq!(one[0].revents, libc::POLLOUT);
        });
    });
}

#[test]
fn poll_on_an_eventfd_a_timerfd_and_an_epoll_fd() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-kinds").block_on(|| {
            // SAFETY: no pointers.
            let ev = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            // SAFETY: no pointers.
            let tfd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
            assert!(ev >= 0 && tfd >= 0);
            // SAFETY: fresh and ours.
            let ev = unsafe { OwnedFd::from_raw_fd(ev) };
            // SAFETY: as above.
            let tfd = unsafe { OwnedFd::from_raw_fd(tfd) };
            let (p, pw) = pipe();
            let ep = epoll_with(&[p.as_raw_fd()]);
            let mut pfds = [
                pfd(ev.as_raw_fd(), libc::POLLIN),
                pfd(tfd.as_raw_fd(), libc::POLLIN),
                pfd(ep.as_raw_fd(), libc::POLLIN),
            ];
            // The timer fires in 100 ms.
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                },
            };
            // SAFETY: a valid itimerspec; the old value is not asked for.
            let rc =
                unsafe { libc::timerfd_settime(tfd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
            assert_eq!(rc, 0);
            assert_eq!(parks_only_the_fiber(|| poll(&mut pfds, 5_000)), 1);
            assert_eq!(pfds.map(|p| p.revents), [0, libc::POLLIN, 0]);
            // The pipe inside the epoll fd becomes readable: the epoll fd is.
            let writer = put_later(pw, Duration::from_millis(100));
            let mut pfds = [
                pfd(ev.as_raw_fd(), libc::POLLIN),
                pfd(ep.as_raw_fd(), libc::POLLIN),
            ];
            assert_eq!(parks_only_the_fiber(|| poll(&mut pfds, 5_000)), 1);
            assert_eq!(pfds.map(|p| p.revents), [0, libc::POLLIN]);
            drop(writer.join().unwrap());
            // An eventfd written by another fiber.
            let evfd = ev.as_raw_fd();
            let writer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                let one = 1u64.to_ne_bytes();
                // SAFETY: eight readable bytes.
                let rc = unsafe { libc::write(evfd, one.as_ptr().cast(), 8) };
                assert_eq!(rc, 8);
            });
            let (q, _qw) = pipe();
            let mut pfds = [
                pfd(q.as_raw_fd(), libc::POLLIN),
                pfd(ev.as_raw_fd(), libc::POLLIN),
            ];
            assert_eq!(parks_only_the_fiber(|| poll(&mut pfds, 5_000)), 1);
            assert_eq!(pfds.map(|p| p.revents), [0, libc::POLLIN]);
            writer.join().unwrap();
        });
    });
}

#[test]
fn std_command_output_parks_only_the_fiber() {
    // std reads a child's stdout and stderr with `poll` on both pipes (`read2`).
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-command").block_on(|| {
            let out = parks_only_the_fiber(|| {
                Command::new("sh")
                    .args(["-c", "sleep 0.2; echo out; echo err >&2"])
                    .output()
                    .expect("sh runs")
            });
            assert!(out.status.success());
            assert_eq!(
                (&out.stdout[..], &out.stderr[..]),
                (&b"out\n"[..], &b"err\n"[..])
            );
        });
    });
}

#[test]
fn a_socket_registered_by_another_runtime_still_parks() {
    // The socket's registration belongs to runtime `a`, whose reactor would not wake a fiber of
    // `b`: `b`'s poll and read wait in a temporary set on `b`'s reactor instead.
    let _one = one_at_a_time();
    watchdog(60, || {
        let (s, mut peer) = UnixStream::pair().unwrap();
        let fd = s.as_raw_fd();
        runtime(1, "hook-poll-rt-a").block_on(move || {
            let mut one = [pfd(fd, libc::POLLIN)];
            assert_eq!(poll(&mut one, 20), 0); // registers it with a's reactor
        });
        let mut s = s;
        runtime(1, "hook-poll-rt-b").block_on(move || {
            let writer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                peer.write_all(b"ab").unwrap();
                fiber::sleep(Duration::from_millis(100));
                peer.write_all(b"c").unwrap();
                peer
            });
            let mut one = [pfd(fd, libc::POLLIN)];
            assert_eq!(parks_only_the_fiber(|| poll(&mut one, 5_000)), 1);
            assert_eq!(one[0].revents, libc::POLLIN);
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ab");
            // A read that waits goes through the same way.
            let mut c = [0u8; 1];
            parks_only_the_fiber(|| s.read_exact(&mut c)).unwrap();
            assert_eq!(&c, b"c");
            let _peer = writer.join().unwrap();
        });
    });
}

#[test]
fn a_thousand_fibers_poll_two_fds_each_in_one_latency() {
    let _one = one_at_a_time();
    watchdog(120, || {
        let rt = runtime(2, "hook-poll-many");
        let (ready, took) = rt.block_on(|| {
            let mut writers = Vec::new();
            let polls: Vec<_> = (0..1000)
                .map(|_| {
                    let (a, aw) = pipe();
                    let (b, bw) = pipe();
                    writers.push(bw);
                    fiber::spawn(move || {
                        let mut pfds = [
                            pfd(a.as_raw_fd(), libc::POLLIN),
                            pfd(b.as_raw_fd(), libc::POLLIN),
                        ];
                        let r = poll(&mut pfds, 10_000);
                        drop(aw);
                        r == 1 && pfds[0].revents == 0 && pfds[1].revents == libc::POLLIN
                    })
                })
                .collect();
            // Every poller has parked by now (or will find its byte at once).
            fiber::sleep(Duration::from_millis(100));
            let t0 = Instant::now();
            for w in &writers {
                put(w.as_raw_fd());
            }
            let ready = polls
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count();
            (ready, t0.elapsed())
        });
        assert_eq!(ready, 1000);
        // Blocked carriers would never see the writes (10 s time-outs, two at a time).
        assert!(took < Duration::from_secs(2), "1000 wake-ups took {took:?}");
        eprintln!("1000 fibers × 2 fds: all woken {took:?} after the writes began");
    });
}

#[test]
fn poll_times_out_with_nothing_ready() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-timeout").block_on(|| {
            let (a, _aw) = pipe();
            let (b, _bw) = pipe();
            let ticker = Ticker::start();
            for fds in [
                vec![a.as_raw_fd(), b.as_raw_fd()],
                vec![a.as_raw_fd()],
                vec![],
            ] {
                let mut pfds: Vec<_> = fds.iter().map(|&fd| pfd(fd, libc::POLLIN)).collect();
                set_errno(4242);
                let before = ticker.ticks();
                let t0 = Instant::now();
                let r = poll(&mut pfds, 150);
                let took = t0.elapsed();
                assert_eq!(r, 0, "{} fds", fds.len());
                assert_eq!(errno(), 4242);
                assert!(
                    took >= Duration::from_millis(150),
                    "timed out after {took:?}"
                );
                assert!(took < Duration::from_secs(2), "timed out after {took:?}");
                assert!(pfds.iter().all(|p| p.revents == 0));
                assert!(ticker.ticks() > before, "the carrier was blocked");
            }
            // `poll(NULL, 0, ms)`, the C sleep idiom.
            let before = ticker.ticks();
            let t0 = Instant::now();
            // SAFETY: no fds, so no array.
            assert_eq!(unsafe { libc::poll(std::ptr::null_mut(), 0, 120) }, 0);
            assert!(t0.elapsed() >= Duration::from_millis(120));
            assert!(ticker.ticks() > before, "the carrier was blocked");
        });
    });
}

#[test]
fn negative_fds_are_ignored() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-neg").block_on(|| {
            let (a, aw) = pipe();
            let writer = put_later(aw, Duration::from_millis(100));
            let mut pfds = [
                pfd(-1, libc::POLLIN),
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(-5, 0),
            ];
            let r = parks_only_the_fiber(|| poll(&mut pfds, 5_000));
            assert_eq!(r, 1);
            assert_eq!([pfds[0].revents, pfds[2].revents], [0, 0]);
            assert_eq!(pfds[1].revents, libc::POLLIN);
            drop(writer.join().unwrap());
        });
    });
}

#[test]
fn a_closed_fd_is_pollnval() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-nval").block_on(|| {
            let (a, _aw) = pipe();
            // A number no fd has (the tests hold far fewer).
            let closed = 19_000;
            // SAFETY: F_GETFD takes no argument.
            assert_eq!(unsafe { libc::fcntl(closed, libc::F_GETFD) }, -1);
            let mut pfds = [pfd(a.as_raw_fd(), libc::POLLIN), pfd(closed, libc::POLLIN)];
            let t0 = Instant::now();
            assert_eq!(poll(&mut pfds, 5_000), 1);
            assert!(t0.elapsed() < Duration::from_secs(1));
            assert_eq!(pfds[0].revents, 0);
            assert_eq!(pfds[1].revents, libc::POLLNVAL);
        });
    });
}

#[test]
fn a_peer_close_is_pollhup() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-hup").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let (s, s_peer) = UnixStream::pair().unwrap();
            let closer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                drop(bw);
                fiber::sleep(Duration::from_millis(20));
                drop(s_peer);
            });
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(b.as_raw_fd(), libc::POLLIN),
            ];
            assert_eq!(parks_only_the_fiber(|| poll(&mut pfds, 5_000)), 1);
            assert_eq!(pfds[0].revents, 0);
            assert_eq!(pfds[1].revents, libc::POLLHUP);
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(s.as_raw_fd(), libc::POLLRDHUP),
            ];
            assert_eq!(poll(&mut pfds, 5_000), 1);
            assert_eq!(pfds[1].revents, libc::POLLRDHUP | libc::POLLHUP);
            closer.join().unwrap();
        });
    });
}

fn fd_set(fds: &[RawFd]) -> libc::fd_set {
    // SAFETY: an all-zero fd_set is the empty set.
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    for &fd in fds {
        // SAFETY: `fd` is below FD_SETSIZE (the tests' fds are small).
        unsafe { libc::FD_SET(fd, &mut set) };
    }
    set
}

fn members(set: &libc::fd_set, of: &[RawFd]) -> Vec<RawFd> {
    // SAFETY: `set` is a valid fd_set, the fds are below FD_SETSIZE.
    of.iter()
        .copied()
        .filter(|&fd| unsafe { libc::FD_ISSET(fd, set) })
        .collect()
}

/// A pipe whose write end is full (non-blocking, written until `EAGAIN`).
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = pipe();
    // SAFETY: F_SETFL with an int.
    let rc = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    assert_eq!(rc, 0);
    let chunk = [0u8; 4096];
    // SAFETY: `chunk` is readable.
    while unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    assert_eq!(errno(), libc::EAGAIN);
    (r, w)
}

#[test]
fn the_same_fd_twice_waits_for_both_entries_events() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-poll-dup").block_on(|| {
            let (full_r, full_w) = full_pipe();
            let drainer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                let mut full = std::fs::File::from(full_r);
                let mut buf = vec![0u8; 1 << 20];
                let _ = full.read(&mut buf).unwrap();
                full
            });
            // A write end is never readable: only the second entry's POLLOUT can end this.
            let w = full_w.as_raw_fd();
            let mut pfds = [pfd(w, libc::POLLIN), pfd(w, libc::POLLOUT)];
            assert_eq!(parks_only_the_fiber(|| poll(&mut pfds, 5_000)), 1);
            assert_eq!((pfds[0].revents, pfds[1].revents), (0, libc::POLLOUT));
            drop(drainer.join().unwrap());
        });
    });
}

#[test]
fn select_reports_urgent_data_in_the_except_set() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-select-oob").block_on(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (s, _) = listener.accept().unwrap();
            let sender = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                // SAFETY: one readable byte.
                let rc =
                    unsafe { libc::send(c.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
                assert_eq!(rc, 1);
                c
            });
            let fd = s.as_raw_fd();
            let mut e = fd_set(&[fd]);
            let mut tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            // SAFETY: a valid set and timeval.
            let rc = parks_only_the_fiber(|| unsafe {
                libc::select(
                    fd + 1,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut e,
                    &mut tv,
                )
            });
            assert_eq!(rc, 1);
            assert_eq!(members(&e, &[fd]), vec![fd]);
            let _c = sender.join().unwrap();
        });
    });
}

#[test]
fn select_with_read_and_write_sets() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-select").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let (full_r, full_w) = full_pipe();
            let (ra, rb, wf) = (a.as_raw_fd(), b.as_raw_fd(), full_w.as_raw_fd());
            let nfds = ra.max(rb).max(wf) + 1;
            let select = |r: &mut libc::fd_set, w: &mut libc::fd_set, tv: &mut libc::timeval| {
                // SAFETY: valid sets and timeval; nfds covers them.
                unsafe { libc::select(nfds, r, w, std::ptr::null_mut(), tv) }
            };
            // Nothing ready: 0 after the timeout, empty sets, no time left.
            let (mut r, mut w) = (fd_set(&[ra, rb]), fd_set(&[wf]));
            let mut tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 150_000,
            };
            let ticker = Ticker::start();
            let before = ticker.ticks();
            let t0 = Instant::now();
            assert_eq!(select(&mut r, &mut w, &mut tv), 0);
            assert!(t0.elapsed() >= Duration::from_millis(150));
            assert!(ticker.ticks() > before, "the carrier was blocked");
            assert_eq!(
                (members(&r, &[ra, rb]), members(&w, &[wf])),
                (vec![], vec![])
            );
            assert_eq!((tv.tv_sec, tv.tv_usec), (0, 0));
            // No fds at all: a sleep, that parks only the fiber too.
            let mut tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 120_000,
            };
            let before = ticker.ticks();
            let t0 = Instant::now();
            // SAFETY: no sets, a valid timeval.
            let rc = unsafe {
                libc::select(
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut tv,
                )
            };
            assert_eq!(rc, 0);
            assert!(t0.elapsed() >= Duration::from_millis(120));
            assert!(ticker.ticks() > before, "the carrier was blocked");
            drop(ticker);
            // The second read fd becomes ready: only it is reported, the time left written back.
            let writer = put_later(bw, Duration::from_millis(100));
            let (mut r, mut w) = (fd_set(&[ra, rb]), fd_set(&[wf]));
            let mut tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            set_errno(4242);
            assert_eq!(parks_only_the_fiber(|| select(&mut r, &mut w, &mut tv)), 1);
            assert_eq!(errno(), 4242);
            assert_eq!(
                (members(&r, &[ra, rb]), members(&w, &[wf])),
                (vec![rb], vec![])
            );
            let left = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
            assert!(
                left <= Duration::from_millis(4_950) && left > Duration::from_secs(3),
                "{left:?}"
            );
            drop(writer.join().unwrap());
            // The full pipe drains: the write set is reported.
            let drainer = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(100));
                let mut full = std::fs::File::from(full_r);
                let mut buf = vec![0u8; 1 << 20];
                let _ = full.read(&mut buf).unwrap();
                full
            });
            let (mut r, mut w) = (fd_set(&[ra]), fd_set(&[wf]));
            let mut tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            assert_eq!(parks_only_the_fiber(|| select(&mut r, &mut w, &mut tv)), 1);
            assert_eq!((members(&r, &[ra]), members(&w, &[wf])), (vec![], vec![wf]));
            drop(drainer.join().unwrap());
            // Bad arguments fail as libc's.
            assert_eq!(bad_selects(), on_a_thread(bad_selects));
            assert_eq!(bad_selects(), [libc::EINVAL; 3]);
        });
    });
}

/// The errnos of a negative nfds, negative microseconds and negative seconds.
fn bad_selects() -> [i32; 3] {
    [(-1, 0, 1_000), (1, 0, -1), (1, -1, 0)].map(|(nfds, sec, usec)| {
        let mut tv = libc::timeval {
            tv_sec: sec,
            tv_usec: usec,
        };
        let mut r = fd_set(&[0]);
        set_errno(0);
        // SAFETY: a valid set and timeval.
        let rc = unsafe {
            libc::select(
                nfds,
                &mut r,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut tv,
            )
        };
        assert_eq!(rc, -1);
        errno()
    })
}

fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn ppoll_and_poll_chk_park_only_the_fiber() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-ppoll").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let writer = put_later(bw, Duration::from_millis(100));
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(b.as_raw_fd(), libc::POLLIN),
            ];
            let ts = libc::timespec {
                tv_sec: 5,
                tv_nsec: 0,
            };
            // SAFETY: valid pollfds and timespec, no mask.
            let r = parks_only_the_fiber(|| unsafe {
                libc::ppoll(pfds.as_mut_ptr(), 2, &ts, std::ptr::null())
            });
            assert_eq!(r, 1);
            assert_eq!((pfds[0].revents, pfds[1].revents), (0, libc::POLLIN));
            let bw = writer.join().unwrap();
            // A time-out of 120 ms in a timespec.
            let mut pfds = [pfd(a.as_raw_fd(), libc::POLLIN)];
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 120_000_000,
            };
            let t0 = Instant::now();
            // SAFETY: as above.
            let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), 1, &ts, std::ptr::null()) };
            assert_eq!(rc, 0);
            assert!(t0.elapsed() >= Duration::from_millis(120));
            // An invalid timespec is libc's EINVAL.
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 2_000_000_000,
            };
            // SAFETY: as above.
            let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), 1, &ts, std::ptr::null()) };
            assert_eq!(rc, -1);
            assert_eq!(errno(), libc::EINVAL);
            // glibc's fortified poll.
            let (c, cw) = pipe();
            let writer = put_later(cw, Duration::from_millis(100));
            let mut pfds = [
                pfd(a.as_raw_fd(), libc::POLLIN),
                pfd(c.as_raw_fd(), libc::POLLIN),
            ];
            let len = std::mem::size_of_val(&pfds);
            // SAFETY: two valid pollfds in `len` bytes.
            let r =
                parks_only_the_fiber(|| unsafe { __poll_chk(pfds.as_mut_ptr(), 2, 5_000, len) });
            assert_eq!(r, 1);
            assert_eq!(pfds[1].revents, libc::POLLIN);
            drop((writer.join().unwrap(), bw));
        });
    });
}

fn epoll_with(fds: &[RawFd]) -> OwnedFd {
    // SAFETY: no pointers.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    for &fd in fds {
        epoll_add(ep, fd);
    }
    // SAFETY: fresh and ours.
    unsafe { OwnedFd::from_raw_fd(ep) }
}

/// Adds `fd` to `ep` for reading, with `fd` as the event's data.
fn epoll_add(ep: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: a valid event.
    let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(rc, 0);
}

extern "C" {
    /// glibc's `poll` under `_FORTIFY_SOURCE`.
    fn __poll_chk(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: i32, fdslen: usize) -> i32;
    /// glibc 2.35's; the libc crate may not declare it.
    fn epoll_pwait2(
        fd: RawFd,
        events: *mut libc::epoll_event,
        max: i32,
        timeout: *const libc::timespec,
        mask: *const libc::sigset_t,
    ) -> i32;
}

/// `epoll_wait` for at most 8 events: the count and the first event's data.
fn epoll_wait(ep: RawFd, timeout: i32) -> (i32, u64) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
    // SAFETY: room for 8 events.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 8, timeout) };
    (n, evs[0].u64)
}

#[test]
fn epoll_wait_on_a_user_epoll_fd_parks_only_the_fiber() {
    let _one = one_at_a_time();
    watchdog(60, || {
        runtime(1, "hook-epoll").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let ep = epoll_with(&[a.as_raw_fd(), b.as_raw_fd()]);
            let writer = put_later(bw, Duration::from_millis(100));
            set_errno(4242);
            let got = parks_only_the_fiber(|| epoll_wait(ep.as_raw_fd(), 5_000));
            assert_eq!(got, (1, b.as_raw_fd() as u64));
            assert_eq!(errno(), 4242);
            let _bw = writer.join().unwrap();
            // epoll_pwait2 with a timespec and no mask: the same.
            let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
            let ts = libc::timespec {
                tv_sec: 5,
                tv_nsec: 0,
            };
            // SAFETY: room for 8 events, a valid timespec, no mask.
            let n =
                unsafe { epoll_pwait2(ep.as_raw_fd(), evs.as_mut_ptr(), 8, &ts, std::ptr::null()) };
            assert_eq!((n, evs[0].u64), (1, b.as_raw_fd() as u64));
            // Level-triggered: still ready, at once.
            assert_eq!(epoll_wait(ep.as_raw_fd(), 5_000), (1, b.as_raw_fd() as u64));
            // A time-out with nothing ready.
            let quiet = epoll_with(&[a.as_raw_fd()]);
            let t0 = Instant::now();
            assert_eq!(epoll_wait(quiet.as_raw_fd(), 120).0, 0);
            assert!(t0.elapsed() >= Duration::from_millis(120));
            // epoll_pwait2's timespec, no mask: the same, and the carrier stays free.
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 120_000_000,
            };
            let ticker = Ticker::start();
            let before = ticker.ticks();
            let t0 = Instant::now();
            // SAFETY: room for 8 events, a valid timespec, no mask.
            let n = unsafe {
                epoll_pwait2(
                    quiet.as_raw_fd(),
                    evs.as_mut_ptr(),
                    8,
                    &ts,
                    std::ptr::null(),
                )
            };
            assert_eq!(n, 0);
            assert!(t0.elapsed() >= Duration::from_millis(120));
            assert!(ticker.ticks() > before, "the carrier was blocked");
            drop(ticker);
            // Closed through the hooks, its number reused by a new epoll fd: the registration
            // went with the close (a stale one would never wake, and the watchdog would fire).
            let old = quiet.as_raw_fd();
            drop(quiet);
            // The tests take fds one at a time: the lowest free number is the one just closed.
            let reused = epoll_with(&[]);
            assert_eq!(reused.as_raw_fd(), old);
            let (c, cw) = pipe();
            epoll_add(reused.as_raw_fd(), c.as_raw_fd());
            let writer = put_later(cw, Duration::from_millis(100));
            let got = parks_only_the_fiber(|| epoll_wait(reused.as_raw_fd(), 5_000));
            assert_eq!(got, (1, c.as_raw_fd() as u64));
            drop(writer.join().unwrap());
            // Not an epoll fd: libc's error.
            assert_eq!(epoll_wait(a.as_raw_fd(), 100).0, -1);
            assert_eq!(errno(), libc::EINVAL);
        });
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_thousand_polls_leak_no_fd() {
    let _one = one_at_a_time();
    watchdog(120, || {
        runtime(1, "hook-poll-leak").block_on(|| {
            let (a, _aw) = pipe();
            let (b, bw) = pipe();
            let before = open_fds();
            let mut timed_out = 0;
            let mut woken = 0;
            for i in 0..1000 {
                let mut pfds = [
                    pfd(a.as_raw_fd(), libc::POLLIN),
                    pfd(b.as_raw_fd(), libc::POLLIN),
                ];
                if i % 2 == 0 {
                    timed_out += usize::from(poll(&mut pfds, 1) == 0);
                } else {
                    let bw = bw.as_raw_fd();
                    let w = fiber::spawn(move || put(bw));
                    woken += usize::from(poll(&mut pfds, 5_000) == 1);
                    w.join().unwrap();
                    let mut x = [0u8; 1];
                    // SAFETY: one writable byte.
                    let rc = unsafe { libc::read(b.as_raw_fd(), x.as_mut_ptr().cast(), 1) };
                    assert_eq!(rc, 1);
                }
            }
            assert_eq!((timed_out, woken), (500, 500));
            assert_eq!(open_fds(), before, "open fds before and after 1000 polls");
        });
    });
}

#[test]
fn plain_threads_get_libc() {
    let _one = one_at_a_time();
    watchdog(60, || {
        let (a, _aw) = pipe();
        let (b, bw) = pipe();
        let t0 = Instant::now();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            put(bw.as_raw_fd());
            bw
        });
        let mut pfds = [
            pfd(a.as_raw_fd(), libc::POLLIN),
            pfd(b.as_raw_fd(), libc::POLLIN),
        ];
        assert_eq!(poll(&mut pfds, 5_000), 1);
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert_eq!((pfds[0].revents, pfds[1].revents), (0, libc::POLLIN));
        drop(writer.join().unwrap());
        // A time-out.
        let mut pfds = [pfd(a.as_raw_fd(), libc::POLLIN)];
        set_errno(4242);
        let t0 = Instant::now();
        assert_eq!(poll(&mut pfds, 100), 0);
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert_eq!(errno(), 4242);
        // select and epoll_wait: the same.
        let ep = epoll_with(&[a.as_raw_fd(), b.as_raw_fd()]);
        assert_eq!(epoll_wait(ep.as_raw_fd(), 5_000), (1, b.as_raw_fd() as u64));
        let mut r = fd_set(&[a.as_raw_fd(), b.as_raw_fd()]);
        let mut tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        let nfds = a.as_raw_fd().max(b.as_raw_fd()) + 1;
        // SAFETY: a valid set and timeval.
        let rc = unsafe {
            libc::select(
                nfds,
                &mut r,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut tv,
            )
        };
        assert_eq!(rc, 1);
        assert_eq!(
            members(&r, &[a.as_raw_fd(), b.as_raw_fd()]),
            vec![b.as_raw_fd()]
        );
    });
}

#[test]
fn a_runtime_dropped_mid_wait_cancels_the_calls() {
    let _one = one_at_a_time();
    watchdog(60, || {
        let (a, _aw) = pipe();
        let (b, _bw) = pipe();
        let ep = epoll_with(&[a.as_raw_fd()]);
        let (ra, rb, rep) = (a.as_raw_fd(), b.as_raw_fd(), ep.as_raw_fd());
        let rt = runtime(1, "hook-poll-drop");
        let waits: [fn(RawFd, RawFd, RawFd) -> i32; 4] = [
            |a, b, _| poll(&mut [pfd(a, libc::POLLIN), pfd(b, libc::POLLIN)], -1),
            |a, _, _| poll(&mut [pfd(a, libc::POLLIN)], -1),
            |a, b, _| {
                let mut r = fd_set(&[a, b]);
                // SAFETY: a valid set; no timeout.
                unsafe {
                    libc::select(
                        a.max(b) + 1,
                        &mut r,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                }
            },
            |_, _, ep| epoll_wait(ep, -1).0,
        ];
        let entered = Arc::new(AtomicUsize::new(0));
        let errnos: Arc<[AtomicI32; 4]> = Arc::new(Default::default());
        let unwound = Arc::new(AtomicUsize::new(0));
        for (i, wait) in waits.into_iter().enumerate() {
            let (entered, errnos, unwound) = (entered.clone(), errnos.clone(), unwound.clone());
            rt.spawn(move || {
                struct Count(Arc<AtomicUsize>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _count = Count(unwound);
                entered.fetch_add(1, Ordering::SeqCst);
                let r = wait(ra, rb, rep);
                errnos[i].store(if r == -1 { errno() } else { -r - 1000 }, Ordering::SeqCst);
                fiber::park(); // the next runtime park unwinds
                unreachable!("the fiber was cancelled");
            });
        }
        while entered.load(Ordering::SeqCst) < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        drop(rt);
        let errnos: Vec<_> = errnos.iter().map(|e| e.load(Ordering::SeqCst)).collect();
        assert_eq!(errnos, [libc::ECANCELED; 4]);
        assert_eq!(unwound.load(Ordering::SeqCst), 4);
        drop(ep);
    });
}

const CHILD: &str = "FIBER_HOOK_POLL_CHILD";

/// Run by `fiber_hook_0_gives_libc_poll` in a child process with `FIBER_HOOK=0`.
#[test]
fn hook_off_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // only meaningful in the child
    }
    assert!(!fiber::hook::is_active());
    // No spare worker: the ticker, not started yet when poll blocks, would start on one.
    support::runtime_without_spares(1, "hook-poll-off").block_on(|| {
        let (a, _aw) = pipe();
        let (b, _bw) = pipe();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            fiber::spawn(move || {
                for _ in 0..10 {
                    fiber::sleep(Duration::from_millis(5));
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        fiber::yield_now();
        let before = ticks.load(Ordering::SeqCst);
        let mut pfds = [
            pfd(a.as_raw_fd(), libc::POLLIN),
            pfd(b.as_raw_fd(), libc::POLLIN),
        ];
        set_errno(4242);
        assert_eq!(poll(&mut pfds, 200), 0);
        assert_eq!(errno(), 4242);
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            before,
            "with FIBER_HOOK=0 poll blocks its worker, as libc's"
        );
        ticker.join().unwrap();
    });
}

#[test]
fn fiber_hook_0_gives_libc_poll() {
    let _one = one_at_a_time(); // the child's pipes are fds too
    support::run_hooks_off_child("hook_off_child", CHILD);
}

const OVERFLOW_CHILD: &str = "FIBER_HOOK_POLL_OVERFLOW_CHILD";

/// Run by `an_overflowing_poll_chk_is_glibcs_to_report` in a child process: must abort.
#[test]
fn poll_chk_overflow_child() {
    if std::env::var_os(OVERFLOW_CHILD).is_none() {
        return; // only meaningful in the child
    }
    fiber::run(|| {
        let (a, _aw) = pipe();
        let mut pfds = [
            pfd(a.as_raw_fd(), libc::POLLIN),
            pfd(a.as_raw_fd(), libc::POLLIN),
        ];
        let one = std::mem::size_of::<libc::pollfd>();
        // SAFETY: glibc checks `n` against the stated length before it touches the array.
        unsafe { __poll_chk(pfds.as_mut_ptr(), 2, 1_000, one) };
    });
    unreachable!("__poll_chk let an overflow through");
}

#[test]
fn an_overflowing_poll_chk_is_glibcs_to_report() {
    let _one = one_at_a_time(); // the child's pipes are fds too
    let exe = std::env::current_exe().unwrap();
    let out = watchdog(60, move || {
        Command::new(exe)
            .args([
                "poll_chk_overflow_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(OVERFLOW_CHILD, "1")
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(stderr.contains("buffer overflow detected"), "{stderr}");
}
