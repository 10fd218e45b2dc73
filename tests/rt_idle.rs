//! An idle runtime sleeps: no busy polling, no periodic wake-ups.
mod support;

use std::time::Duration;

/// CPU time (user + system) this process has used, from /proc/self/stat (clock ticks).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

#[test]
fn idle_workers_use_no_cpu() {
    support::watchdog(60, idle_workers_use_no_cpu_body);
}

fn idle_workers_use_no_cpu_body() {
    let rt = fiber::Runtime::builder()
        .worker_threads(4)
        .build()
        .expect("runtime");
    // Let the workers finish starting and searching, then measure a quiet second.
    rt.block_on(|| fiber::sleep(Duration::from_millis(50)));
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - before;
    // Clock ticks are 10 ms each; a spinning or periodically polling worker
    // would burn tens of ticks in a second. Allow a couple for noise.
    assert!(
        used <= 3,
        "an idle runtime with 4 workers used {used} ticks (10 ms each) of CPU in 1 s"
    );
    // Still responsive after the idle period.
    assert_eq!(rt.block_on(|| fiber::spawn(|| 7).join().unwrap()), 7);
}
