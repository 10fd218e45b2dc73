//! The interposed sleep family (`--features hook`): unchanged `std::thread::sleep` and libc's
//! sleeps park only the fiber; plain threads get libc's behaviour; errors are libc's; a runtime
//! dropped mid-sleep ends the call with `ECANCELED` and unwinds the fiber at its next park.
mod support;

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{runtime, watchdog};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

fn monotonic_now() -> Duration {
    let mut now = ts(0, 0);
    // SAFETY: `now` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Two fibers on one worker: the first sleeps in `sleep`, the second (which can only run while
/// the first is parked, not blocking the carrier) sets a flag. Returns whether the sleeper saw it.
fn sleeper_lets_its_worker_run(sleep: fn()) -> bool {
    let rt = runtime(1, "hook-one");
    rt.block_on(move || {
        let started = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (started, ran) = (started.clone(), ran.clone());
            fiber::spawn(move || {
                started.store(true, Ordering::SeqCst);
                sleep();
                ran.load(Ordering::SeqCst)
            })
        };
        let other = fiber::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                fiber::yield_now();
            }
            ran.store(true, Ordering::SeqCst);
        });
        other.join().unwrap();
        sleeper.join().unwrap()
    })
}

#[test]
fn the_hooks_are_active_by_default() {
    if std::env::var_os("FIBER_HOOK").is_none() {
        assert!(fiber::hook::is_active());
    }
}

#[test]
fn std_sleep_parks_only_the_fiber() {
    watchdog(60, || {
        assert!(sleeper_lets_its_worker_run(|| std::thread::sleep(
            Duration::from_millis(300)
        )));
        assert!(sleeper_lets_its_worker_run(|| {
            // SAFETY: no pointers.
            assert_eq!(unsafe { libc::usleep(300_000) }, 0);
        }));
        assert!(sleeper_lets_its_worker_run(|| {
            let req = ts(0, 300_000_000);
            // SAFETY: `req` is readable; `rem` may be null.
            let r = unsafe {
                libc::clock_nanosleep(libc::CLOCK_REALTIME, 0, &req, std::ptr::null_mut())
            };
            assert_eq!(r, 0);
        }));
    });
}

#[test]
fn a_thousand_std_sleeps_overlap() {
    watchdog(120, || {
        let rt = runtime(2, "hook-many");
        let t0 = Instant::now();
        let n = rt.block_on(|| {
            let hs: Vec<_> = (0..1000)
                .map(|_| fiber::spawn(|| std::thread::sleep(Duration::from_millis(100))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).count()
        });
        assert_eq!(n, 1000);
        // Blocking the carriers would take 1000 × 100 ms / 2 workers = 50 s.
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "1000 sleeps of 100 ms took {took:?}"
        );
    });
}

#[test]
fn sleeps_last_as_long_as_asked() {
    watchdog(60, || {
        fiber::run(|| {
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_millis(50));
            assert!(t0.elapsed() >= Duration::from_millis(50));

            let deadline = monotonic_now() + Duration::from_millis(40);
            let req = ts(deadline.as_secs() as i64, deadline.subsec_nanos() as i64);
            // SAFETY: `req` is readable; `rem` may be null.
            let r = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &req,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(r, 0);
            assert!(
                monotonic_now() >= deadline,
                "woke before the absolute deadline"
            );

            // A deadline in the past returns at once.
            let past = ts(0, 1);
            // SAFETY: as above.
            let r = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &past,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(r, 0);

            let t0 = Instant::now();
            // SAFETY: no pointers.
            assert_eq!(unsafe { libc::sleep(1) }, 0);
            assert!(t0.elapsed() >= Duration::from_secs(1));
            // SAFETY: no pointers.
            assert_eq!(unsafe { libc::sleep(0) }, 0);
        });
    });
}

/// The errors of bad arguments, on a plain thread (libc's own) and in a fiber (the hook's).
fn bad_argument_errors() -> Vec<(i32, i32)> {
    let mut rem = ts(0, 0);
    let bad = [ts(0, 1_000_000_000), ts(0, -1), ts(-1, 0)];
    let mut seen = Vec::new();
    for req in &bad {
        // SAFETY: `req` and `rem` are valid.
        let r = unsafe { libc::nanosleep(req, &mut rem) };
        seen.push((r, errno()));
        // SAFETY: as above; clock_nanosleep returns the error number.
        let r = unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, req, &mut rem) };
        seen.push((r, 0));
    }
    // SAFETY: a null `req` is passed on purpose: the call must fail with EFAULT, not crash.
    let r = unsafe { libc::nanosleep(std::ptr::null(), &mut rem) };
    seen.push((r, errno()));
    seen
}

#[test]
fn bad_arguments_fail_as_libc_does() {
    watchdog(30, || {
        let on_thread = bad_argument_errors();
        assert_eq!(on_thread[0], (-1, libc::EINVAL));
        assert_eq!(on_thread[1], (libc::EINVAL, 0));
        assert_eq!(on_thread.last(), Some(&(-1, libc::EFAULT)));
        let in_fiber = fiber::run(bad_argument_errors);
        assert_eq!(in_fiber, on_thread);
    });
}

#[test]
fn plain_threads_sleep_in_libc() {
    watchdog(30, || {
        // errno is left alone by a successful pass-through call.
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(!fiber::is_fiber());
    });
}

#[test]
fn a_runtime_dropped_mid_sleep_cancels_the_call() {
    watchdog(60, || {
        let rt = runtime(1, "hook-drop");
        let entered = Arc::new(AtomicBool::new(false));
        let result = Arc::new(AtomicI32::new(i32::MIN));
        let unwound = Arc::new(AtomicBool::new(false));
        let std_unwound = Arc::new(AtomicBool::new(false));
        {
            let (entered, result, unwound) = (entered.clone(), result.clone(), unwound.clone());
            rt.spawn(move || {
                struct Flag(Arc<AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _flag = Flag(unwound);
                entered.store(true, Ordering::SeqCst);
                let req = ts(3600, 0);
                let mut rem = ts(0, 0);
                // SAFETY: `req` and `rem` are valid.
                let r = unsafe { libc::nanosleep(&req, &mut rem) };
                result.store(if r == 0 { 0 } else { errno() }, Ordering::SeqCst);
                // Cancelled inside the call: the next runtime park unwinds.
                fiber::sleep(Duration::from_secs(3600));
                unreachable!("the fiber was cancelled");
            });
        }
        {
            // std's sleep asserts EINTR on failure: ECANCELED makes it panic, which unwinds the
            // fiber from Rust code (no abort).
            let std_unwound = std_unwound.clone();
            rt.spawn(move || {
                struct Flag(Arc<AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _flag = Flag(std_unwound);
                std::thread::sleep(Duration::from_secs(3600));
            });
        }
        let parker_unwound = Arc::new(AtomicBool::new(false));
        {
            // Cancelled in the call, then parking: the park unwinds before it takes the park
            // state (it used to release a run token it was never given: a use after free).
            let parker_unwound = parker_unwound.clone();
            rt.spawn(move || {
                struct Flag(Arc<AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _flag = Flag(parker_unwound);
                // SAFETY: no pointer arguments.
                let r = unsafe { libc::usleep(3_600_000_000) };
                assert_eq!((r, errno()), (-1, libc::ECANCELED));
                fiber::park();
                unreachable!("the fiber was cancelled");
            });
        }
        while !entered.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        drop(rt);
        assert!(
            parker_unwound.load(Ordering::SeqCst),
            "the parker was not unwound"
        );
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert_eq!(result.load(Ordering::SeqCst), libc::ECANCELED);
        assert!(unwound.load(Ordering::SeqCst), "the fiber was not unwound");
        assert!(
            std_unwound.load(Ordering::SeqCst),
            "the std sleeper was not unwound"
        );
    });
}

const CHILD: &str = "FIBER_HOOK_TEST_CHILD";

/// Run by `fiber_hook_0_turns_the_hooks_off` in a child process with `FIBER_HOOK=0`.
#[test]
fn hook_off_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // only meaningful in the child
    }
    assert!(!fiber::hook::is_active());
    assert!(
        !sleeper_lets_its_worker_run(|| std::thread::sleep(Duration::from_millis(200))),
        "with FIBER_HOOK=0 a std sleep blocks its worker, as without the feature"
    );
}

#[test]
fn fiber_hook_0_turns_the_hooks_off() {
    support::run_hooks_off_child("hook_off_child", CHILD);
}
