//! A group member cancelled inside an interposed libc call (`--features hook`,
//! docs/cancellation.md, "Groups"): the call returns `ECANCELED`, so blocking std code returns
//! its own error (the member's outcome is that `Err`) or, for `std::thread::sleep`, panics on
//! std's assertion (`Panicked`). Either way the group ends promptly.
mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use fiber::group::{self, Outcome};
use support::{payload_text, watchdog};

const HOUR: Duration = Duration::from_secs(3600);

/// The hooks must be there for this test to mean anything (FIBER_HOOK=0 turns them off).
fn hooks_active() -> bool {
    let active = fiber::hook::is_active();
    if !active && std::env::var_os("CI").is_some() {
        panic!("the hook layer is not active (FIBER_HOOK?)");
    }
    active
}

#[test]
fn members_blocked_in_std_calls_get_ecanceled_when_the_group_fails() {
    if !hooks_active() {
        return;
    }
    watchdog(30, || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let start = Instant::now();
        let result = group::fail_fast(|g| {
            g.spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                match stream.read(&mut [0; 16]) {
                    Ok(n) => Ok(n),
                    Err(e) => Err(format!("read: {:?}", e.raw_os_error())),
                }
            });
            g.spawn(|| {
                std::thread::sleep(HOUR);
                Ok(0)
            });
            g.spawn(|| {
                fiber::sleep(Duration::from_millis(50));
                Err("the failure".to_owned())
            });
        });
        let err = result.unwrap_err();
        assert_eq!(err.index(), 2);
        assert_eq!(err.error().map(String::as_str), Some("the failure"));
        let outcomes = err.into_outcomes();
        match &outcomes[0] {
            Outcome::Err(e) => assert_eq!(*e, format!("read: {:?}", Some(libc::ECANCELED))),
            other => panic!("the std read: {other:?}"),
        }
        match &outcomes[1] {
            Outcome::Panicked(p) => assert!(payload_text(&**p).contains("assertion")),
            other => panic!("the std sleep: {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
        drop(listener);
    });
}
