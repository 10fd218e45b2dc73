//! `Runtime::metrics`: counters and gauges summed from what each worker publishes
//! (`scheduler::stats`), cheap enough to leave on (docs/observability.md, "Metrics").
use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use std::time::Duration;

use crate::scheduler::Handle;
use crate::task::reason::{self, KINDS};

/// Set by the blocking pool when it starts: its thread count and queue length. The pool is a
/// module above the core, so it registers itself here instead of being called from here.
pub(crate) static BLOCKING_PROBE: OnceLock<fn() -> (usize, usize)> = OnceLock::new();

/// A snapshot of a runtime's counters and gauges, from [`Runtime::metrics`](crate::Runtime::metrics)
/// or [`fiber::metrics`](crate::metrics).
///
/// Counters (`_total` in [`Metrics::to_prometheus`]) only grow; gauges are the current value.
/// Each worker's values are read with relaxed loads, one worker after the other, so a snapshot
/// taken while fibers run is not atomic across fields; at quiescence (no fiber running or
/// queued) `fibers_spawned == fibers_finished + fibers_live` holds exactly and `fibers_live`
/// equals `fibers_started_live + fibers_queued`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Worker threads of the runtime, spare workers started included.
    pub workers: usize,
    /// Spare workers started because every worker was held by a fiber (docs/observability.md).
    pub spare_workers: usize,
    /// Time since the runtime was built.
    pub uptime: Duration,
    /// Fibers spawned (counter).
    pub fibers_spawned: u64,
    /// Fibers that finished, including unstarted fibers dropped unrun (counter).
    pub fibers_finished: u64,
    /// `fibers_spawned - fibers_finished`: fibers that exist, started or not (gauge).
    pub fibers_live: u64,
    /// Started fibers that have not finished, summed over the workers (gauge).
    pub fibers_started_live: u64,
    /// Unstarted fibers waiting in the injector and the workers' deques (gauge).
    pub fibers_queued: u64,
    /// Resumes of a fiber by its worker: each is one switch in and one out (counter).
    pub switches: u64,
    /// Times a fiber stopped to wait (park, sleep, I/O, lock, join...) (counter).
    pub parks: u64,
    /// `parks` by what the fiber waited for (the wait kinds of a dump, `WaitReason::kind`:
    /// `sleep`, `mutex`, `channel_recv`, `fd_read`, ...; `other` for a wait nobody described),
    /// the kinds seen at least once (counters).
    pub parks_by_reason: Vec<(&'static str, u64)>,
    /// Times a fiber yielded (explicitly or when its cooperative budget ran out) (counter).
    pub yields: u64,
    /// Resumes that ran 100 µs or more on a worker with I/O sources: the fiber then waits behind
    /// the ones with short slices (src/scheduler/README.md, "Long-running fibers") (counter).
    pub long_slices: u64,
    /// Successful steals of unstarted fibers by an idle worker (counter; one steal may take a
    /// batch).
    pub steals: u64,
    /// Reactor polls, blocking or not (counter).
    pub reactor_polls: u64,
    /// I/O readiness events those polls dispatched (counter).
    pub reactor_events: u64,
    /// Timers (sleeps, timeouts, deadlines) pending, as of each worker's last maintenance pass
    /// or sleep (gauge).
    pub timers_pending: u64,
    /// Threads of the blocking pool, which the whole process shares (gauge).
    pub blocking_threads: usize,
    /// Jobs queued for the blocking pool and not yet taken by a thread (gauge).
    pub blocking_queued: usize,
    /// Watchdog reports made: fibers that held their worker past the threshold (counter).
    pub watchdog_reports: u64,
    /// The same figures per worker.
    pub per_worker: Vec<WorkerMetrics>,
}

/// One worker's share of [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// The worker's index (its thread is named `<thread_name>-<index>`).
    pub index: usize,
    /// Time not spent asleep in the reactor: running fibers, scheduling, searching for work.
    pub busy: Duration,
    /// Time spent asleep in the reactor's poll, waiting for work.
    pub idle: Duration,
    /// Fibers spawned from this worker.
    pub spawned: u64,
    /// Fibers that finished on this worker (or were dropped unrun by it).
    pub finished: u64,
    /// Started, unfinished fibers whose home is this worker (gauge).
    pub started_live: u64,
    /// Unstarted fibers in this worker's deque (gauge; other workers may steal them).
    pub queued: u64,
    /// Started fibers woken from other threads and not yet taken by the worker (gauge).
    pub inbox: u64,
    /// Resumes of a fiber by this worker.
    pub switches: u64,
    /// Resumes that ended in a wait.
    pub parks: u64,
    /// Resumes that ended in a yield.
    pub yields: u64,
    /// Resumes that ran 100 µs or more while this worker had I/O sources.
    pub long_slices: u64,
    /// Successful steals by this worker.
    pub steals: u64,
    /// Polls of this worker's reactor.
    pub reactor_polls: u64,
    /// I/O events those polls dispatched.
    pub reactor_events: u64,
    /// Timers this worker holds, as of its last maintenance pass or sleep (gauge).
    pub timers_pending: u64,
}

/// Reads one per-worker figure, for the Prometheus text.
type PerWorker = fn(&WorkerMetrics) -> f64;

/// Reads the metrics of the runtime `shared`.
pub(crate) fn collect(shared: &Handle) -> Metrics {
    let uptime = shared.started.elapsed();
    let mut m = Metrics {
        workers: shared.active(),
        spare_workers: shared.active() - (shared.remotes.len() - shared.spares.slots()),
        uptime,
        // Read before the workers' counters: a fiber spawned meanwhile is counted as spawned
        // before it can be counted as finished, so `finished <= spawned` in any snapshot.
        fibers_finished: shared.finished_outside.load(Relaxed),
        fibers_queued: shared.injector.len() as u64,
        watchdog_reports: shared.watchdog_reports.load(Relaxed),
        ..Metrics::default()
    };
    let mut by_reason = [0u64; KINDS];
    for (index, remote) in shared.remotes[..shared.active()].iter().enumerate() {
        let s = &remote.stats;
        // A sleep going on counts up to now.
        let asleep = match s.asleep_since.load(Relaxed) {
            0 => 0,
            since => (uptime.as_nanos() as u64).saturating_sub(since - 1),
        };
        let idle = Duration::from_nanos(s.idle_ns.load(Relaxed) + asleep).min(uptime);
        let w = WorkerMetrics {
            index,
            busy: uptime.saturating_sub(idle),
            idle,
            finished: s.finished.load(Relaxed),
            spawned: s.spawned.load(Relaxed),
            started_live: remote.live.load(Relaxed) as u64,
            queued: remote.stealer.len() as u64,
            inbox: remote.inbox.len() as u64,
            switches: s.seq.load(Relaxed),
            parks: s.parks.iter().map(|c| c.load(Relaxed)).sum(),
            yields: s.yields.load(Relaxed),
            long_slices: s.long_slices.load(Relaxed),
            steals: s.steals.load(Relaxed),
            reactor_polls: s.polls.load(Relaxed),
            reactor_events: s.events.load(Relaxed),
            timers_pending: s.timers.load(Relaxed),
        };
        m.fibers_finished += w.finished;
        m.fibers_started_live += w.started_live;
        m.fibers_queued += w.queued;
        m.switches += w.switches;
        m.parks += w.parks;
        for (kind, counter) in s.parks[..KINDS].iter().enumerate() {
            by_reason[kind] += counter.load(Relaxed);
        }
        m.yields += w.yields;
        m.long_slices += w.long_slices;
        m.steals += w.steals;
        m.reactor_polls += w.reactor_polls;
        m.reactor_events += w.reactor_events;
        m.timers_pending += w.timers_pending;
        m.per_worker.push(w);
    }
    m.parks_by_reason = by_reason
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(kind, &n)| (reason::kind_name(kind as u8).unwrap_or("other"), n))
        .collect();
    // Spawn counts last (see above). A worker's spawned count lives with its other counters.
    m.fibers_spawned =
        shared.spawned_outside.load(Relaxed) + m.per_worker.iter().map(|w| w.spawned).sum::<u64>();
    m.fibers_live = m.fibers_spawned.saturating_sub(m.fibers_finished);
    if let Some(probe) = BLOCKING_PROBE.get() {
        (m.blocking_threads, m.blocking_queued) = probe();
    }
    m
}

impl fmt::Display for Metrics {
    /// A small table: the totals, then one line per worker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fibers: {} spawned, {} finished, {} live ({} started, {} queued)",
            self.fibers_spawned,
            self.fibers_finished,
            self.fibers_live,
            self.fibers_started_live,
            self.fibers_queued
        )?;
        writeln!(
            f,
            "switches {}  parks {}  yields {}  long slices {}  steals {}  polls {}  events {}  timers {}",
            self.switches,
            self.parks,
            self.yields,
            self.long_slices,
            self.steals,
            self.reactor_polls,
            self.reactor_events,
            self.timers_pending
        )?;
        if !self.parks_by_reason.is_empty() {
            let by: Vec<String> = self
                .parks_by_reason
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            writeln!(f, "parks by reason: {}", by.join(", "))?;
        }
        writeln!(
            f,
            "blocking pool: {} threads, {} queued; watchdog reports: {}; spare workers: {}; \
             uptime {:.3} s",
            self.blocking_threads,
            self.blocking_queued,
            self.watchdog_reports,
            self.spare_workers,
            self.uptime.as_secs_f64()
        )?;
        write!(
            f,
            "worker      busy s    idle s  switches     parks    steals   polls  live  queued"
        )?;
        for w in &self.per_worker {
            write!(
                f,
                "\n{:>6} {:>9.3} {:>9.3} {:>9} {:>9} {:>9} {:>7} {:>5} {:>7}",
                w.index,
                w.busy.as_secs_f64(),
                w.idle.as_secs_f64(),
                w.switches,
                w.parks,
                w.steals,
                w.reactor_polls,
                w.started_live,
                w.queued
            )?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The metrics in the Prometheus text exposition format (version 0.0.4): a `# HELP` and
    /// `# TYPE` line per metric, counters named `..._total`, per-worker series labelled
    /// `worker="<index>"`. All names start with `fiber_`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP fiber_{name} {help}\n# TYPE fiber_{name} {kind}\nfiber_{name} {value}"
            );
        };
        one("workers", "gauge", "Worker threads.", self.workers as f64);
        one(
            "spare_workers",
            "gauge",
            "Spare workers started because every worker was held.",
            self.spare_workers as f64,
        );
        one(
            "uptime_seconds",
            "gauge",
            "Seconds since the runtime was built.",
            self.uptime.as_secs_f64(),
        );
        let counters = [
            (
                "fibers_spawned_total",
                "Fibers spawned.",
                self.fibers_spawned,
            ),
            (
                "fibers_finished_total",
                "Fibers finished or dropped unrun.",
                self.fibers_finished,
            ),
            ("switches_total", "Fiber resumes.", self.switches),
            ("parks_total", "Times a fiber stopped to wait.", self.parks),
            ("yields_total", "Times a fiber yielded.", self.yields),
            (
                "long_slices_total",
                "Fiber resumes of 100 us or more on workers with I/O.",
                self.long_slices,
            ),
            ("steals_total", "Steals of unstarted fibers.", self.steals),
            ("reactor_polls_total", "Reactor polls.", self.reactor_polls),
            (
                "reactor_events_total",
                "I/O events dispatched.",
                self.reactor_events,
            ),
            (
                "watchdog_reports_total",
                "Fibers reported for holding their worker.",
                self.watchdog_reports,
            ),
        ];
        for (name, help, value) in counters {
            one(name, "counter", help, value as f64);
        }
        let gauges = [
            (
                "fibers_live",
                "Fibers spawned and not finished.",
                self.fibers_live,
            ),
            (
                "fibers_started_live",
                "Started fibers not finished.",
                self.fibers_started_live,
            ),
            (
                "fibers_queued",
                "Unstarted fibers queued.",
                self.fibers_queued,
            ),
            ("timers_pending", "Timers pending.", self.timers_pending),
            (
                "blocking_threads",
                "Blocking-pool threads (process-wide).",
                self.blocking_threads as u64,
            ),
            (
                "blocking_queued",
                "Jobs queued for the blocking pool.",
                self.blocking_queued as u64,
            ),
        ];
        for (name, help, value) in gauges {
            one(name, "gauge", help, value as f64);
        }
        let per_worker: [(&str, &str, PerWorker); 3] = [
            (
                "worker_busy_seconds_total",
                "Seconds a worker was not asleep.",
                |w| w.busy.as_secs_f64(),
            ),
            (
                "worker_idle_seconds_total",
                "Seconds a worker slept in its reactor.",
                |w| w.idle.as_secs_f64(),
            ),
            ("worker_switches_total", "Fiber resumes per worker.", |w| {
                w.switches as f64
            }),
        ];
        let _ = writeln!(
            out,
            "# HELP fiber_parks_by_reason_total Times a fiber stopped to wait, by what it waited \
             for.\n# TYPE fiber_parks_by_reason_total counter"
        );
        for (reason, n) in &self.parks_by_reason {
            let _ = writeln!(
                out,
                "fiber_parks_by_reason_total{{reason=\"{reason}\"}} {n}"
            );
        }
        for (name, help, value) in per_worker {
            let _ = writeln!(
                out,
                "# HELP fiber_{name} {help}\n# TYPE fiber_{name} counter"
            );
            for w in &self.per_worker {
                let _ = writeln!(out, "fiber_{name}{{worker=\"{}\"}} {}", w.index, value(w));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, WorkerMetrics};

    #[test]
    fn the_prometheus_text_has_help_type_and_total_counters() {
        let metrics = Metrics {
            workers: 2,
            fibers_spawned: 3,
            per_worker: (0..2)
                .map(|index| WorkerMetrics {
                    index,
                    ..WorkerMetrics::default()
                })
                .collect(),
            ..Metrics::default()
        };
        let text = metrics.to_prometheus();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "counter" || kind == "gauge", "{line}");
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "counters and only counters end in _total: {line}"
                );
                assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(series.starts_with("fiber_"), "{line}");
                value.parse::<f64>().unwrap();
            }
        }
        assert!(text.contains("fiber_worker_busy_seconds_total{worker=\"1\"}"));
    }
}
