//! No fd leaks: connect/accept/close cycles leave `/proc/self/fd` as it was.
mod support;

use std::io::{Read, Write};
use std::sync::Mutex;

use fiber::net::{TcpListener, TcpStream};
use support::Mode;

/// The tests in this binary count fds, so they must not run at the same time.
static SERIAL: Mutex<()> = Mutex::new(());

fn cycles(m: Mode, n: usize) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    // Warm up (lazily created state: the blocking pool, registrations, the runtime's fds).
    drop(TcpStream::connect(a).unwrap());
    drop(l.accept().unwrap());
    let before = support::open_fds();
    let server = m.spawn(move || {
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            // Waits for the byte (registers the accepted socket in fiber mode), echoes, closes.
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
        l
    });
    for _ in 0..n {
        let mut c = TcpStream::connect(a).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    let l = server.join();
    assert_eq!(support::open_fds(), before, "fds leaked over {n} cycles");
    drop(l);
}

#[test]
fn connect_close_cycles_small() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::both_timeout(60, |m| {
        cycles(
            m,
            if cfg!(debug_assertions) {
                2_000
            } else {
                20_000
            },
        )
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "100k cycles: run with --release (or --ignored)"
)]
fn connect_close_cycles_100k() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::both_timeout(600, |m| cycles(m, 100_000));
}
