//! The machine a report ran on, and its load: everything from `/proc` or the tools on `PATH`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The facts stated at the top of the report.
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) kernel: String,
    pub(crate) cpu: String,
    pub(crate) mem_gib: f64,
    pub(crate) rustc: String,
    pub(crate) commit: String,
    pub(crate) date: String,
    pub(crate) max_map_count: u64,
}

impl Machine {
    pub(crate) fn read() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
                .unwrap_or_else(|| "unknown".into()),
            mem_gib: mem_kib / (1024.0 * 1024.0),
            rustc: tool(&["rustc", "--version"]),
            commit: tool(&["git", "rev-parse", "--short", "HEAD"]),
            date: utc_now(),
            max_map_count: max_map_count(),
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first line a tool prints, or "unknown".
fn tool(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// `vm.max_map_count`: bounds how many guarded stacks (threads, may coroutines) a process maps.
pub(crate) fn max_map_count() -> u64 {
    read("/proc/sys/vm/max_map_count")
        .trim()
        .parse()
        .unwrap_or(65_530)
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load() -> [f64; 3] {
    let s = read("/proc/loadavg");
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [(); 3].map(|_| it.next().unwrap_or(f64::NAN))
}

/// Now, as `YYYY-MM-DD HH:MM UTC` (civil date from days since the epoch, Howard Hinnant's method).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// How many OS threads a measurement may start at once, and why.
pub(crate) struct ThreadBudget {
    pub(crate) threads: u64,
    pub(crate) why: String,
}

/// Half of what the limits allow: each thread maps a stack and a guard page (2 of
/// `vm.max_map_count`), and counts against `ulimit -u`, which the user's other processes share.
pub(crate) fn thread_budget() -> ThreadBudget {
    let maps = max_map_count();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by pointer, which is valid and owned here.
    let nproc = if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        u64::MAX
    };
    let threads = (maps / 2).min(nproc) / 2;
    let nproc = if nproc == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        nproc.to_string()
    };
    ThreadBudget {
        threads,
        why: format!(
            "half of the thread limit here: vm.max_map_count {maps} at 2 maps per thread, \
             ulimit -u {nproc} shared with the user's other processes"
        ),
    }
}
