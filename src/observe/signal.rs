//! `FIBER_DUMP_SIGNAL=USR1` (or `QUIT`, `USR2`, `SIGUSR1`, a number): that signal writes a dump
//! to stderr.
//!
//! Nothing but one `write(2)` of a byte to a pipe runs in the signal handler (async-signal-safe);
//! a dedicated thread (`fiber-dump-signal`) reads the pipe and takes the dump. A handler rather
//! than `sigwait` on a blocked signal: blocking a signal with `pthread_sigmask` covers only the
//! threads started after, and a process-directed signal that finds one thread not blocking it
//! (the test harness's, a library's) would take its default action there, which for `USR1` is to
//! kill the process.
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// The pipe's write end (-1 until installed).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// Reads `FIBER_DUMP_SIGNAL` and installs its handler (once per process; at runtime start).
pub(crate) fn install_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(value) = std::env::var("FIBER_DUMP_SIGNAL") else {
            return;
        };
        match parse(&value) {
            Some(signal) => {
                if let Err(err) = install(signal) {
                    eprintln!(
                        "fiber: FIBER_DUMP_SIGNAL={value}: cannot install the handler: {err}"
                    );
                }
            }
            None => eprintln!("fiber: FIBER_DUMP_SIGNAL={value}: unknown signal (try USR1)"),
        }
    });
}

/// A signal by name (`USR1`, `SIGUSR1`, `quit`) or number.
pub(crate) fn parse(name: &str) -> Option<libc::c_int> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "QUIT" => libc::SIGQUIT,
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        n => {
            let n: libc::c_int = n.parse().ok()?;
            if n <= 0 || n >= 65 || n == libc::SIGKILL || n == libc::SIGSTOP {
                return None;
            }
            n
        }
    })
}

extern "C" fn on_signal(_: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // errno is saved and restored around the write, as a handler must.
        // SAFETY: __errno_location has no preconditions.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: the calling thread's errno location, valid for the thread's life.
        let saved = unsafe { *errno };
        // SAFETY: write(2) is async-signal-safe; `byte` is a valid one-byte buffer. A full pipe
        // (a dump already pending) drops the byte, which is what we want.
        unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) };
        // SAFETY: as above.
        unsafe { *errno = saved };
    }
}

fn install(signal: libc::c_int) -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // The read end blocks (the thread waits on it); the write end stays non-blocking.
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(read_fd, libc::F_SETFL, 0) };
    WRITE_FD.store(write_fd, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("fiber-dump-signal".into())
        .spawn(move || loop {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a buffer of its length, from our pipe.
            let n = unsafe { libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                return;
            }
            let text = super::dump::dump().to_string();
            eprintln!("{text}");
        })?;
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: installs a handler that only writes to a pipe (async-signal-safe).
    if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
