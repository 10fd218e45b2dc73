//! The sleep family: `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`. In a fiber they sleep on
//! the worker's timers (`driver::wait`), so only the fiber waits; errors are libc's (`EFAULT`,
//! `EINVAL`), and a cancellation is `ECANCELED` with the time left where the call reports it.
use std::time::{Duration, Instant};

use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

use super::real::real;
use super::{in_hooked_fiber, set_errno};
use crate::task::context::without_unwinding;

real!(
    REAL_NANOSLEEP,
    real_nanosleep,
    c"nanosleep",
    fn(req: *const timespec, rem: *mut timespec) -> c_int,
    {
        set_errno(libc::ENOSYS);
        -1
    }
);
real!(
    REAL_CLOCK_NANOSLEEP,
    real_clock_nanosleep,
    c"clock_nanosleep",
    fn(clock: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec) -> c_int,
    libc::ENOSYS
);
real!(
    REAL_USLEEP,
    real_usleep,
    c"usleep",
    fn(usec: useconds_t) -> c_int,
    {
        set_errno(libc::ENOSYS);
        -1
    }
);
real!(
    REAL_SLEEP,
    real_sleep,
    c"sleep",
    fn(secs: c_uint) -> c_uint,
    secs
);

/// `nanosleep(2)`.
///
/// # Safety
/// As libc's: `req` points to a readable `timespec`, `rem` is null or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_nanosleep(req, rem) };
    }
    // SAFETY: the caller passes a readable `timespec` or null (checked here, as the kernel does).
    let dur = match unsafe { read_timespec(req) } {
        Ok(dur) => dur,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    match sleep_for(dur) {
        Ok(()) => 0,
        Err(left) => {
            // SAFETY: `rem` is null or writable (the caller's contract).
            unsafe { write_timespec(rem, left) };
            set_errno(libc::ECANCELED);
            -1
        }
    }
}

/// `clock_nanosleep(2)`: `CLOCK_MONOTONIC` and `CLOCK_REALTIME`, relative or `TIMER_ABSTIME`;
/// other clocks go to libc. Returns the error number, as libc's does (errno is not set).
///
/// # Safety
/// As libc's: `req` points to a readable `timespec`, `rem` is null or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let known_clock = clock == libc::CLOCK_MONOTONIC || clock == libc::CLOCK_REALTIME;
    if !known_clock || !in_hooked_fiber() {
        // SAFETY: forwarded under the caller's contract.
        return unsafe { real_clock_nanosleep(clock, flags, req, rem) };
    }
    // SAFETY: as in `nanosleep`.
    let time = match unsafe { read_timespec(req) } {
        Ok(time) => time,
        Err(e) => return e,
    };
    let absolute = flags & libc::TIMER_ABSTIME != 0;
    // An absolute REALTIME deadline is converted once: a clock step during the sleep is not
    // followed (documented in docs/hook.md).
    let dur = if absolute {
        time.saturating_sub(clock_now(clock))
    } else {
        time
    };
    match sleep_for(dur) {
        Ok(()) => 0,
        Err(left) => {
            if !absolute {
                // SAFETY: `rem` is null or writable (the caller's contract).
                unsafe { write_timespec(rem, left) };
            }
            libc::ECANCELED
        }
    }
}

/// `usleep(3)`.
///
/// # Safety
/// None beyond libc's (it takes no pointer).
#[no_mangle]
pub(crate) unsafe extern "C" fn usleep(usec: useconds_t) -> c_int {
    if !in_hooked_fiber() {
        // SAFETY: no pointer arguments.
        return unsafe { real_usleep(usec) };
    }
    match sleep_for(Duration::from_micros(u64::from(usec))) {
        Ok(()) => 0,
        Err(_) => {
            set_errno(libc::ECANCELED);
            -1
        }
    }
}

/// `sleep(3)`: returns the whole seconds left unslept (0 when it slept them all).
///
/// # Safety
/// None beyond libc's (it takes no pointer).
#[no_mangle]
pub(crate) unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if !in_hooked_fiber() {
        // SAFETY: no pointer arguments.
        return unsafe { real_sleep(secs) };
    }
    match sleep_for(Duration::from_secs(u64::from(secs))) {
        Ok(()) => 0,
        Err(left) => {
            set_errno(libc::ECANCELED);
            // Rounded up, as glibc's: a call cut short never claims to have slept in full.
            let whole = left.as_secs() + u64::from(left.subsec_nanos() != 0);
            c_uint::try_from(whole).unwrap_or(secs).min(secs)
        }
    }
}

/// Sleeps the calling fiber for `dur`; `Err(time left)` if it was cancelled.
fn sleep_for(dur: Duration) -> Result<(), Duration> {
    let deadline = Instant::now().checked_add(dur);
    let ((), cancelled) = without_unwinding(|| crate::sleep(dur));
    if cancelled {
        Err(deadline.map_or(dur, |d| d.saturating_duration_since(Instant::now())))
    } else {
        Ok(())
    }
}

/// Reads a `timespec` as the kernel validates it: `EFAULT` for null, `EINVAL` for a negative
/// time or nanoseconds outside 0..1e9.
///
/// # Safety
/// `ts` is null or points to a readable `timespec`.
unsafe fn read_timespec(ts: *const timespec) -> Result<Duration, c_int> {
    // SAFETY: null or readable (the caller's contract).
    let Some(ts) = (unsafe { ts.as_ref() }) else {
        return Err(libc::EFAULT);
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Writes `dur` to `ts` unless it is null.
///
/// # Safety
/// `ts` is null or points to a writable `timespec`.
unsafe fn write_timespec(ts: *mut timespec, dur: Duration) {
    let value = timespec {
        tv_sec: dur.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: dur.subsec_nanos().into(),
    };
    // SAFETY: null or writable (the caller's contract).
    if let Some(ts) = unsafe { ts.as_mut() } {
        *ts = value;
    }
}

/// The current time of `clock` (MONOTONIC or REALTIME) as a duration since its epoch.
fn clock_now(clock: clockid_t) -> Duration {
    let mut now = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is one the kernel knows.
    unsafe { libc::clock_gettime(clock, &mut now) };
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
