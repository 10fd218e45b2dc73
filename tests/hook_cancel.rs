//! Cancelling a fiber inside an interposed libc call (`--features hook`, docs/cancellation.md):
//! the call returns `ECANCELED` (unwinding cannot cross its `extern "C"` frame) and the fiber
//! unwinds at its next runtime park. Unchanged std code that asserts on the error panics, and
//! that panic unwinds normally: nothing aborts.
mod support;

use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{one_worker_runtime, payload_text, spawn_parked, watchdog, DropCounter};

const HOUR: Duration = Duration::from_secs(3600);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The hooks must be there for these tests to mean anything (FIBER_HOOK=0 turns them off).
fn hooks_active() -> bool {
    let active = fiber::hook::is_active();
    if !active && std::env::var_os("CI").is_some() {
        panic!("the hook layer is not active (FIBER_HOOK?)");
    }
    active
}

/// `std::thread::sleep` in a fiber sleeps in `nanosleep`; cancelled, the call fails with
/// `ECANCELED` and std's `assert_eq!(errno, EINTR)` panics: an ordinary panic, which unwinds.
#[test]
fn a_cancelled_std_sleep_panics_and_unwinds() {
    if !hooks_active() {
        return;
    }
    watchdog(30, || {
        let rt = one_worker_runtime();
        let drops = DropCounter::new();
        let guard = drops.guard();
        let handle = spawn_parked(&rt, move || {
            let _guard = guard;
            std::thread::sleep(HOUR);
        });
        handle.cancel();
        let err = handle.join().expect_err("the sleep was cancelled");
        assert!(
            !err.is::<fiber::Cancelled>(),
            "std's own assertion panics, the fiber is not unwound from the C frame"
        );
        let text = payload_text(&*err);
        assert!(text.contains("assertion"), "unexpected payload: {text}");
        assert_eq!(drops.get(), 1);
    });
}

/// A libc call that reports the error: it gets `ECANCELED`, and the fiber unwinds with
/// `Cancelled` at its next park.
#[test]
fn a_cancelled_libc_call_returns_ecanceled_then_the_next_park_unwinds() {
    if !hooks_active() {
        return;
    }
    watchdog(30, || {
        let rt = one_worker_runtime();
        let seen = Arc::new(AtomicI32::new(0));
        let handle = spawn_parked(&rt, {
            let seen = seen.clone();
            move || {
                // SAFETY: no pointer arguments.
                let r = unsafe { libc::usleep(3_600_000_000) };
                seen.store(if r == 0 { 0 } else { errno() }, Ordering::SeqCst);
                // Later hooked calls fail at once too (the fiber is cancelled)...
                // SAFETY: as above.
                let again = unsafe { libc::usleep(3_600_000_000) };
                assert_eq!((again, errno()), (-1, libc::ECANCELED));
                // ...and the first runtime park unwinds.
                fiber::park();
                unreachable!("the park was cancelled");
            }
        });
        handle.cancel();
        let result = handle.join();
        assert_eq!(seen.load(Ordering::SeqCst), libc::ECANCELED);
        match result {
            Err(e) => assert!(e.is::<fiber::Cancelled>(), "{}", payload_text(&*e)),
            Ok(()) => panic!("the fiber finished"),
        }
    });
}

/// Blocking std I/O (a `read` on a socket that never gets data) gets an `ECANCELED` error.
#[test]
fn a_cancelled_std_read_gets_an_error() {
    if !hooks_active() {
        return;
    }
    watchdog(30, || {
        let rt = one_worker_runtime();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = spawn_parked(&rt, move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            let err = stream.read(&mut [0; 16]).expect_err("nobody writes");
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{err}");
            fiber::yield_now();
            unreachable!("the yield was cancelled");
        });
        handle.cancel();
        match handle.join() {
            Err(e) => assert!(e.is::<fiber::Cancelled>(), "{}", payload_text(&*e)),
            Ok(()) => panic!("the fiber finished"),
        }
        drop(listener);
    });
}

/// Cancelled while running, before it enters a blocking call: the call fails at once with
/// `ECANCELED` (it does not wait, nor report a time-out or spin).
#[test]
fn a_blocking_call_made_after_the_cancel_fails_at_once() {
    if !hooks_active() {
        return;
    }
    watchdog(30, || {
        let rt = support::runtime(1, "hook-cancel-early");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (cancelled_tx, cancelled_rx) = std::sync::mpsc::channel::<()>();
        let handle = rt.spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            // Blocks the carrier (a std channel is not hooked) until the test has cancelled us.
            cancelled_rx.recv().unwrap();
            let err = stream.read(&mut [0; 16]).expect_err("nobody writes");
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{err}");
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let err = (&a).read(&mut [0; 4]).expect_err("nobody writes");
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{err}");
            drop(b);
            fiber::yield_now();
            unreachable!("the yield was cancelled");
        });
        handle.cancel();
        cancelled_tx.send(()).unwrap();
        match handle.join() {
            Err(e) => assert!(e.is::<fiber::Cancelled>(), "{}", payload_text(&*e)),
            Ok(()) => panic!("the fiber finished"),
        }
        drop(listener);
    });
}
