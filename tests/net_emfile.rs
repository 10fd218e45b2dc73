//! `accept` under fd exhaustion returns the error (EMFILE), in a fiber and on a thread; after fds
//! are freed, the pending connection is accepted. Lowers RLIMIT_NOFILE, so it has its own binary.
mod support;

use fiber::net::{TcpListener, TcpStream};
use support::Mode;

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, exclusively borrowed rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(r: &libc::rlimit) {
    // SAFETY: `r` is a valid rlimit; lowering/restoring the soft limit affects only this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, r) }, 0);
}

fn body(_m: Mode) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let saved = nofile();
    // Open a client, then exhaust the fds: the listener's accept has nowhere to put the socket.
    let c = TcpStream::connect(a).unwrap();
    let open = support::open_fds() as u64;
    set_nofile(&libc::rlimit {
        rlim_cur: open + 8,
        rlim_max: saved.rlim_max,
    });
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    let e = l.accept().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
    drop(hog);
    set_nofile(&saved);
    // The pending connection is still there and is accepted now.
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    drop((s, c));
}

#[test]
fn accept_reports_emfile_then_recovers() {
    support::both(body);
}
