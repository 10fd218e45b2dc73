//! CPU accounting (a process's CPU time) and pinning a thread to one CPU.

use std::time::Duration;

/// CPU time (user + system) consumed so far by process `pid`, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(f.iter().sum::<u64>() * 1_000_000_000 / hz)
}

/// Pins the calling thread to CPU 0; returns the previous mask.
pub fn pin_to_cpu0() -> Option<libc::cpu_set_t> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data, for which all zeroes is a valid (empty) set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the call writes at most `size` bytes into `old`, which is that large.
    if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
        return None;
    }
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is within the set's bounds.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: the call only reads `size` bytes of `set`.
    unsafe { libc::sched_setaffinity(0, size, &set) };
    Some(old)
}

/// Restores the CPU mask [`pin_to_cpu0`] returned.
pub fn restore_affinity(old: Option<libc::cpu_set_t>) {
    if let Some(old) = old {
        // SAFETY: as in `pin_to_cpu0`.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    }
}
