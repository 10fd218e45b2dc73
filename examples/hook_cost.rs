//! What the libc hooks cost a plain OS thread: each call measured through the symbol every caller
//! in the binary reaches (the hook, with the `hook` feature) and through libc's own (found with
//! `dlsym(RTLD_NEXT)`), in the same run, alternating, best of several rounds. (`nanosleep(0)` still
//! sleeps the thread's timer slack, about 50-100 µs, in both.)
//!
//! `cargo run --release --example hook_cost` (hooks on: the default), and
//! `cargo run --release --no-default-features --example hook_cost` (hooks compiled out: both
//! columns are libc's, so the ratios show the method's own noise, and the first column's
//! figures are the feature-off ones to hold the feature-on run against).
use std::ffi::CStr;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::time::Instant;

use libc::{c_int, c_void, size_t, ssize_t, timespec};

type Nanosleep = unsafe extern "C" fn(*const timespec, *mut timespec) -> c_int;
type Read = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type Write = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type Recv = unsafe extern "C" fn(c_int, *mut c_void, size_t, c_int) -> ssize_t;
type Send = unsafe extern "C" fn(c_int, *const c_void, size_t, c_int) -> ssize_t;
/// A call's name, calls per round, the hooked call and libc's.
type Measured<'a> = (&'a str, u32, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);

fn libc_symbol(name: &CStr) -> usize {
    // SAFETY: a NUL-terminated name; RTLD_NEXT from the executable finds libc's definition.
    let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    assert_ne!(addr, 0, "libc has no {name:?}");
    addr
}

/// Rounds per figure: on a shared machine noise only adds time, so the best of many short rounds
/// is the figure least disturbed by other load.
const ROUNDS: u32 = 21;

/// Time per call of `f` over one round of `n` calls, in ns.
fn per_call(n: u32, f: &dyn Fn()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    t0.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Best time per call of `hooked` and of `real`, their rounds alternating (so that a burst of
/// load hits both alike), in ns.
fn best_pair(n: u32, hooked: &dyn Fn(), real: &dyn Fn()) -> (f64, f64) {
    (0..ROUNDS).fold((f64::INFINITY, f64::INFINITY), |(h, r), _| {
        (h.min(per_call(n, hooked)), r.min(per_call(n, real)))
    })
}

fn row(name: &str, hooked: f64, real: f64) {
    println!(
        "{name:<34} {hooked:>9.1} {real:>9.1} {:>8.3}×",
        hooked / real
    );
}

/// Makes a std TCP connection in fibers first, through the hooks, and keeps its listener: the fd
/// table is then in use, as in any program that runs std sockets in fibers, and the plain-thread
/// calls measured after it take the path that such a program's plain threads take. Without the
/// hooks it only runs the runtime (the blocking accept would hold the one worker, and the
/// connecting fiber never run): the process is multi-threaded either way, which matters because
/// glibc's socket calls cost about 20 ns more once a process has ever had a second thread (they
/// are cancellation points), so on/off figures compare alike only in alike processes.
fn use_the_hooks_in_fibers() -> Option<std::net::TcpListener> {
    use std::io::{Read, Write};
    let rt = fiber::Runtime::builder()
        .worker_threads(1)
        .build()
        .expect("runtime");
    if !cfg!(feature = "hook") {
        rt.block_on(|| ());
        return None;
    }
    Some(rt.block_on(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = fiber::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            c.write_all(b"x").expect("write");
        });
        let (mut conn, _) = listener.accept().expect("accept");
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte).expect("read");
        client.join().expect("client");
        listener
    }))
}

fn main() {
    let _listener = use_the_hooks_in_fibers();
    assert!(!fiber::is_fiber());
    // SAFETY: the addresses are libc's definitions of these symbols, with these C signatures.
    let real_nanosleep: Nanosleep = unsafe { std::mem::transmute(libc_symbol(c"nanosleep")) };
    // SAFETY: as above.
    let real_read: Read = unsafe { std::mem::transmute(libc_symbol(c"read")) };
    // SAFETY: as above.
    let real_write: Write = unsafe { std::mem::transmute(libc_symbol(c"write")) };
    // SAFETY: as above.
    let real_recv: Recv = unsafe { std::mem::transmute(libc_symbol(c"recv")) };
    // SAFETY: as above.
    let real_send: Send = unsafe { std::mem::transmute(libc_symbol(c"send")) };

    let zero = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(true).expect("nonblocking");
    let fd = sock.as_raw_fd();
    // A connected UDP pair whose receiver never reads: once its buffer is full the kernel drops
    // the datagrams, and each send still succeeds at once.
    let sink_sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sender
        .connect(sink_sock.local_addr().expect("addr"))
        .expect("connect");
    let sfd = sender.as_raw_fd();
    // A UDP socket connected to itself: each send queues a datagram the next recv takes.
    let looped = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    looped
        .connect(looped.local_addr().expect("addr"))
        .expect("connect");
    let lfd = looped.as_raw_fd();
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let nfd = null.as_raw_fd();
    let mut buf = [0u8; 64];

    println!(
        "plain-thread cost, ns per call (best of {ROUNDS} alternating rounds); hooks {}",
        if cfg!(feature = "hook") {
            "compiled in (first column: the hook)"
        } else {
            "compiled out (both columns: libc)"
        }
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "call", "hooked", "libc", "ratio"
    );
    let null_ts = std::ptr::null_mut();
    let buf = buf.as_mut_ptr().cast::<c_void>();
    // Each pair: the hooked symbol, then libc's. SAFETY (every call below): valid arguments
    // (a zero timespec, an empty non-blocking UDP socket that says EAGAIN, /dev/null, a
    // connected UDP socket); the calls only read and write them.
    let calls: [Measured; 6] = [
        (
            "nanosleep(0)",
            500,
            // SAFETY: see above.
            Box::new(|| sink(unsafe { libc::nanosleep(&zero, null_ts) })),
            // SAFETY: see above.
            Box::new(|| sink(unsafe { real_nanosleep(&zero, null_ts) })),
        ),
        (
            "read, socket EAGAIN",
            50_000,
            // SAFETY: see above.
            Box::new(|| sink(unsafe { libc::read(fd, buf, 64) })),
            // SAFETY: see above.
            Box::new(|| sink(unsafe { real_read(fd, buf, 64) })),
        ),
        (
            "recv, socket EAGAIN",
            50_000,
            // SAFETY: see above.
            Box::new(|| sink(unsafe { libc::recv(fd, buf, 64, 0) })),
            // SAFETY: see above.
            Box::new(|| sink(unsafe { real_recv(fd, buf, 64, 0) })),
        ),
        (
            "send, 64 B UDP datagram",
            20_000,
            // SAFETY: see above.
            Box::new(|| sink(unsafe { libc::send(sfd, buf, 64, 0) })),
            // SAFETY: see above.
            Box::new(|| sink(unsafe { real_send(sfd, buf, 64, 0) })),
        ),
        (
            "send + recv, 64 B datagram",
            20_000,
            Box::new(|| {
                // SAFETY: see above.
                sink(unsafe { libc::send(lfd, buf, 64, 0) });
                // SAFETY: see above.
                sink(unsafe { libc::recv(lfd, buf, 64, 0) });
            }),
            Box::new(|| {
                // SAFETY: see above.
                sink(unsafe { real_send(lfd, buf, 64, 0) });
                // SAFETY: see above.
                sink(unsafe { real_recv(lfd, buf, 64, 0) });
            }),
        ),
        (
            "write, /dev/null",
            50_000,
            // SAFETY: see above.
            Box::new(|| sink(unsafe { libc::write(nfd, buf, 64) })),
            // SAFETY: see above.
            Box::new(|| sink(unsafe { real_write(nfd, buf, 64) })),
        ),
    ];
    for _ in 0..2 {
        for (name, n, hooked, real) in &calls {
            let (hooked_ns, real_ns) = best_pair(*n, hooked, real);
            row(name, hooked_ns, real_ns);
        }
    }
}

/// Consumes a value the optimizer must not see through.
fn sink<T>(v: T) {
    black_box(v);
}
