//! The watchdog: a monitor thread per runtime that reports a fiber holding its worker too long
//! (docs/observability.md, "Watchdog").
//!
//! The workers publish, per resume, a sequence number, the fiber's id and a pointer to its name
//! field, null between resumes (`scheduler::stats`); no clock is read per switch. Every
//! `threshold / 4` the monitor compares each worker's number with the one it saw before: a
//! number unchanged for at least the threshold with the pointer set is one *episode*, reported
//! once. The report says which fiber, for how long, how
//! many started fibers wait behind it on that worker (they cannot move), and what the carrier
//! thread is doing, read from `/proc/self/task/<tid>/syscall` and `wchan`.
use std::fmt;
use std::io;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::scheduler::stats::WorkerStats;
use crate::scheduler::Handle;

/// The threshold when neither the builder nor `FIBER_WATCHDOG_MS` sets one.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(100);
/// The environment variable that sets the threshold in milliseconds (`0`: off) for runtimes
/// whose builder does not set it.
pub(crate) const ENV: &str = "FIBER_WATCHDOG_MS";

/// One watchdog report: a fiber held its worker past the threshold. `Display` gives the message;
/// without a handler (`RuntimeBuilder::on_watchdog_report`) it is a warn event of target
/// `fiber::report` under the `tracing` feature with a subscriber, else written to stderr as
/// `fiber: watchdog: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchdogReport {
    /// The worker the fiber holds.
    pub worker: usize,
    /// The fiber's id ([`FiberId::as_u64`](crate::FiberId::as_u64)).
    pub fiber_id: u64,
    /// The fiber's name, if it has one (and the process allows reading it: see
    /// docs/observability.md).
    pub fiber_name: Option<String>,
    /// Where the fiber was spawned (`file:line:column`, its `#[track_caller]` spawn site), if the
    /// process allows reading it (as the name).
    pub spawn_site: Option<String>,
    /// How long the fiber had held the worker when it was reported (at least this long).
    pub held: Duration,
    /// The threshold in force.
    pub threshold: Duration,
    /// Fibers woken from other threads that wait in the worker's inbox, behind this one (ready
    /// fibers already in its run queue when the episode began are not counted: the run queue is
    /// the worker's own). They cannot move to another worker (their stacks and thread-locals are
    /// this worker's).
    pub ready_waiting: u64,
    /// Other started, unfinished fibers of that worker (ready or waiting): none can run until
    /// this one lets the worker go.
    pub started_here: u64,
    /// Unstarted fibers in the worker's deque: idle workers steal these.
    pub unstarted_queued: u64,
    /// What the carrier thread is doing.
    pub carrier: CarrierState,
}

/// What a worker thread is doing, from `/proc/self/task/<tid>/syscall` (and `wchan`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarrierState {
    /// On a CPU: user code (a loop, a long computation), not blocked in the kernel.
    Running,
    /// Blocked in a system call.
    Syscall {
        /// The system call number (of this architecture).
        number: i64,
        /// Its name, for common calls on x86_64.
        name: Option<&'static str>,
    },
    /// Blocked in the kernel, not in a system call (a page fault, say); `wchan` if known.
    Blocked {
        /// The kernel function it waits in (`/proc/.../wchan`), if readable.
        wchan: Option<String>,
    },
    /// Could not be read (not Linux, or /proc not mounted).
    Unknown,
}

impl fmt::Display for WatchdogReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fiber {}", self.fiber_id)?;
        match &self.fiber_name {
            Some(name) => write!(f, " \"{name}\"")?,
            None => write!(f, " (unnamed)")?,
        }
        write!(
            f,
            " has held worker {} for {} ms (threshold {} ms)",
            self.worker,
            self.held.as_millis(),
            self.threshold.as_millis()
        )?;
        match &self.spawn_site {
            Some(site) => write!(f, "; spawned at {site}")?,
            None => write!(f, "; spawn site not recorded")?,
        }
        write!(
            f,
            "; {} woken fiber(s) wait behind it in this worker's inbox, of {} other fiber(s) \
             started here (started fibers cannot move), {} unstarted fiber(s) queued there \
             (other workers take these); the carrier thread ",
            self.ready_waiting, self.started_here, self.unstarted_queued
        )?;
        match &self.carrier {
            CarrierState::Running => write!(
                f,
                "is running user code: a loop or long computation without a yield point \
                 (call fiber::yield_now, or move it to spawn_blocking)"
            ),
            CarrierState::Syscall { number, name } => {
                match name {
                    Some(name) => write!(f, "is blocked in the system call {name} ({number})")?,
                    None => write!(f, "is blocked in system call number {number}")?,
                }
                match *name {
                    Some("futex") => write!(
                        f,
                        ": usually a std::sync or parking_lot lock (or condvar, or a thread \
                         join) that blocks the whole worker; if its holder is a fiber on this \
                         worker it cannot run to release it (use fiber::sync)"
                    ),
                    _ => write!(
                        f,
                        ": a blocking call the hook layer does not turn into a fiber wait \
                         (move it to spawn_blocking or use fiber's own I/O)"
                    ),
                }
            }
            CarrierState::Blocked { wchan } => write!(
                f,
                "is blocked in the kernel outside a system call (wchan {})",
                wchan.as_deref().unwrap_or("unknown")
            ),
            CarrierState::Unknown => write!(f, "is in an unknown state"),
        }
    }
}

/// Who receives reports: the builder's handler, else stderr.
#[derive(Clone)]
pub(crate) struct ReportHandler(pub(crate) Arc<dyn Fn(&WatchdogReport) + Send + Sync>);

impl fmt::Debug for ReportHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportHandler(..)")
    }
}

/// The threshold a builder that did not set one gets: `FIBER_WATCHDOG_MS`, else the default.
pub(crate) fn threshold_from_env() -> Option<Duration> {
    match std::env::var(ENV) {
        Err(_) => Some(DEFAULT_THRESHOLD),
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                eprintln!(
                    "fiber: {ENV}={value:?} is not a number of milliseconds; using {} ms",
                    DEFAULT_THRESHOLD.as_millis()
                );
                Some(DEFAULT_THRESHOLD)
            }
        },
    }
}

/// A running monitor thread; [`Watchdog::stop`] ends it.
pub(crate) struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the monitor of `shared`'s workers.
    pub(crate) fn start(
        shared: Arc<Handle>,
        threshold: Duration,
        handler: Option<ReportHandler>,
        thread_name: &str,
    ) -> io::Result<Watchdog> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{thread_name}-watchdog"))
            .spawn(move || monitor(&shared, threshold, handler, &stop2))?;
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the monitor and waits for it.
    pub(crate) fn stop(mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the monitor remembers of one worker between samples.
#[derive(Clone, Copy)]
struct Seen {
    seq: u64,
    since: Instant,
    reported: bool,
}

fn monitor(
    shared: &Arc<Handle>,
    threshold: Duration,
    handler: Option<ReportHandler>,
    stop: &(Mutex<bool>, Condvar),
) {
    let period = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let mut seen = vec![
        Seen {
            seq: 0,
            since: Instant::now(),
            reported: false,
        };
        shared.remotes.len()
    ];
    let mut stopped = stop.0.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        stopped = stop
            .1
            .wait_timeout(stopped, period)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped || shared.is_shutdown() {
            return;
        }
        let now = Instant::now();
        let mut held_workers = 0;
        let active = shared.active();
        for (worker, remote) in shared.remotes[..active].iter().enumerate() {
            let seq = remote.stats.seq.load(Ordering::Acquire);
            let running = !remote.stats.name.load(Ordering::Relaxed).is_null();
            let s = &mut seen[worker];
            if seq != s.seq || !running {
                *s = Seen {
                    seq,
                    since: now,
                    reported: false,
                };
                continue;
            }
            let held = now - s.since;
            if held >= threshold {
                held_workers += 1;
            }
            if s.reported || held < threshold {
                continue;
            }
            s.reported = true;
            let Some((fiber_id, fiber_name, spawn_site)) = read_running(&remote.stats, seq) else {
                continue; // the fiber left the worker meanwhile
            };
            let report = WatchdogReport {
                worker,
                fiber_id,
                fiber_name,
                spawn_site,
                held,
                threshold,
                ready_waiting: remote.inbox.len() as u64,
                started_here: (remote.live.load(Ordering::Relaxed) as u64).saturating_sub(1),
                unstarted_queued: remote.stealer.len() as u64,
                carrier: carrier_state(remote.stats.tid.load(Ordering::Relaxed)),
            };
            shared.watchdog_reports.fetch_add(1, Ordering::Relaxed);
            match &handler {
                Some(handler) => (handler.0)(&report),
                None => crate::task::trace::report_warn("watchdog", &report.to_string()),
            }
        }
        // Every worker held and unstarted work waiting: start a spare (at most one per sample;
        // the next sample sees it running; `seen` has an entry for every slot).
        if held_workers == active && shared.has_unstarted_work() {
            if let Err(err) = shared.start_spare() {
                let text = format!("could not start a spare worker: {err}");
                crate::task::trace::report_warn("watchdog", &text);
            }
        }
    }
}

/// What a report names: the fiber's id, name and spawn site.
type Running = (u64, Option<String>, Option<String>);

/// The id, name and spawn site of the fiber of resume `seq`, if that resume is still going;
/// `None` if the fiber has left the worker. Name and site are unknown (`None`) if the process
/// cannot issue the barrier that makes reading them safe.
fn read_running(stats: &WorkerStats, seq: u64) -> Option<Running> {
    // The resume `seq` is going on if, in this order, `name` is set and `seq` is unchanged: the
    // worker bumps `seq` before it publishes `name` (Release), so a `name` of a later resume
    // comes with a later `seq`.
    // `fiber` is stored before `name` too: read after it, it is this resume's fiber's id.
    let current = |stats: &WorkerStats| {
        let field = stats.name.load(Ordering::Acquire);
        let id = stats.fiber.load(Ordering::Relaxed);
        (!field.is_null() && stats.seq.load(Ordering::Relaxed) == seq).then_some((field, id))
    };
    if !membarrier_ready() {
        return current(stats).map(|(_, id)| (id, None, None));
    }
    stats.hazard.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    // The asymmetric fence (see `WorkerStats::leave`): after it, either the worker's `leave` store
    // is visible below, or its hazard load will see `true` and it waits for us.
    let fenced = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    fence(Ordering::SeqCst);
    let result = match current(stats) {
        Some((field, id)) if fenced => {
            // SAFETY: `field` points at the label of the task of the resume going on (checked
            // above). The worker holds a reference to the task until that resume's `leave`, and
            // `leave` cannot return while `hazard` is set: either its null store was visible to
            // `current` after the barrier (then we would not be here), or its hazard load comes
            // after the barrier and sees `true`. So the task is alive, and its label is
            // immutable after spawn.
            let label = unsafe { &*field };
            Some((id, label.name().cloned(), Some(label.site().to_string())))
        }
        Some((_, id)) => Some((id, None, None)),
        None => None,
    };
    stats.hazard.store(false, Ordering::Release);
    result
}

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

fn membarrier(cmd: libc::c_int) -> bool {
    // SAFETY: membarrier takes no pointers; an unsupported command fails with an error code.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    rc >= 0
}

/// Registers the process for private expedited barriers, once (Linux 4.14+); false if not
/// available, in which case reports carry no fiber name.
fn membarrier_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        // SAFETY: as in `membarrier`.
        let supported = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
        supported > 0
            && supported as libc::c_int & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)
    })
}

/// What thread `tid` of this process is doing.
pub(crate) fn carrier_state(tid: i32) -> CarrierState {
    if tid == 0 {
        return CarrierState::Unknown;
    }
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else {
        return CarrierState::Unknown;
    };
    parse_syscall(&text).unwrap_or_else(|| CarrierState::Blocked {
        wchan: std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan"))
            .ok()
            .filter(|w| !w.is_empty() && w != "0"),
    })
}

/// Parses `/proc/<pid>/task/<tid>/syscall`: `running`, or the call number and its arguments, or
/// `-1 sp pc` (blocked, not in a system call: `None`).
fn parse_syscall(text: &str) -> Option<CarrierState> {
    let first = text.split_whitespace().next()?;
    if first == "running" {
        return Some(CarrierState::Running);
    }
    let number: i64 = first.parse().ok()?;
    (number >= 0).then(|| CarrierState::Syscall {
        number,
        name: syscall_name(number),
    })
}

/// Names of common blocking system calls (x86_64 numbers).
#[cfg(target_arch = "x86_64")]
fn syscall_name(number: i64) -> Option<&'static str> {
    Some(match number {
        0 => "read",
        1 => "write",
        2 => "open",
        7 => "poll",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        23 => "select",
        24 => "sched_yield",
        35 => "nanosleep",
        42 => "connect",
        43 => "accept",
        44 => "sendto",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        61 => "wait4",
        73 => "flock",
        74 => "fsync",
        75 => "fdatasync",
        202 => "futex",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        247 => "waitid",
        257 => "openat",
        270 => "pselect6",
        271 => "ppoll",
        281 => "epoll_pwait",
        288 => "accept4",
        299 => "recvmmsg",
        307 => "sendmmsg",
        426 => "io_uring_enter",
        441 => "epoll_pwait2",
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn syscall_name(_number: i64) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syscall_file_is_parsed() {
        assert_eq!(parse_syscall("running\n"), Some(CarrierState::Running));
        assert_eq!(parse_syscall("-1 0x7ffd 0x7f12\n"), None);
        let futex = parse_syscall("202 0x55d 0x80 0x2 0x0 0x0 0x0 0x7ffd 0x7f12\n");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            futex,
            Some(CarrierState::Syscall {
                number: 202,
                name: Some("futex")
            })
        );
        assert!(matches!(
            futex,
            Some(CarrierState::Syscall { number: 202, .. })
        ));
    }

    #[test]
    fn a_thread_blocked_on_a_std_lock_shows_futex() {
        let lock = Arc::new(std::sync::Mutex::new(()));
        let held = lock.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lock2 = lock.clone();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            drop(lock2.lock().unwrap());
        });
        let tid = rx.recv().unwrap();
        // Until the thread is seen in the kernel (no timing assumption; /proc may be unreadable
        // in a sandbox, then Unknown).
        let give_up = Instant::now() + Duration::from_secs(20);
        let state = loop {
            let state = carrier_state(tid);
            if !matches!(state, CarrierState::Running) || Instant::now() > give_up {
                break state;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(held);
        t.join().unwrap();
        #[cfg(target_arch = "x86_64")]
        assert!(
            matches!(
                state,
                CarrierState::Syscall {
                    name: Some("futex"),
                    ..
                } | CarrierState::Unknown
            ),
            "{state:?}"
        );
        let report = WatchdogReport {
            worker: 0,
            fiber_id: 7,
            fiber_name: Some("locker".into()),
            spawn_site: None,
            held: Duration::from_millis(250),
            threshold: DEFAULT_THRESHOLD,
            ready_waiting: 2,
            started_here: 3,
            unstarted_queued: 0,
            carrier: CarrierState::Syscall {
                number: 202,
                name: Some("futex"),
            },
        }
        .to_string();
        assert!(
            report.contains("fiber 7 \"locker\" has held worker 0 for 250 ms"),
            "{report}"
        );
        assert!(report.contains("parking_lot lock"), "{report}");
    }
}
