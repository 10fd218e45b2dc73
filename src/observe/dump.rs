//! `fiber::dump()`: every live fiber of every runtime, what it waits for, and the cycles of the
//! wait-for graph; printed grouped by state and wait reason, in the manner of Go's goroutine dump.
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use super::collect::FiberState;
use super::collect::{self, Raw};
use super::deadlock;
use super::reason::{decode, WaitReason};
use super::registry;
use crate::task::reason::now_stamp;
use crate::task::{FiberId, Task};

/// One fiber in a [`Dump`].
#[derive(Clone, Debug)]
pub struct FiberInfo {
    pub(crate) id: FiberId,
    pub(crate) name: Option<String>,
    pub(crate) state: FiberState,
    pub(crate) reason: Option<WaitReason>,
    pub(crate) spawn_site: &'static Location<'static>,
    pub(crate) park_site: Option<&'static Location<'static>>,
    pub(crate) runtime: usize,
    pub(crate) worker: usize,
    pub(crate) since: Duration,
}

impl FiberInfo {
    /// The fiber's id.
    pub fn id(&self) -> FiberId {
        self.id
    }

    /// Its name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Running, runnable or waiting.
    pub fn state(&self) -> FiberState {
        self.state
    }

    /// What it waits for, if it is waiting and the wait is described (every blocking API of the
    /// crate describes its waits; see docs/observability.md).
    pub fn reason(&self) -> Option<&WaitReason> {
        self.reason.as_ref()
    }

    /// Where it was spawned (`spawn`, `Builder::spawn*`, `Scope::spawn`, `Group::spawn`,
    /// `Runtime::spawn`, `block_on`).
    pub fn spawn_site(&self) -> &'static Location<'static> {
        self.spawn_site
    }

    /// Where it waits (the call of the blocking API), if it waits and the API records it.
    pub fn park_site(&self) -> Option<&'static Location<'static>> {
        self.park_site
    }

    /// Its home worker's index in its runtime.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Its runtime's index in the dump (runtimes in order of creation, dropped ones left out).
    pub fn runtime(&self) -> usize {
        self.runtime
    }

    /// How long since it last switched in or out (coarse: its worker's clock is read every
    /// maintenance tick, so a few milliseconds off, more after a long run without a tick).
    pub fn time_in_state(&self) -> Duration {
        self.since
    }
}

/// A cycle of the wait-for graph: each fiber waits for the next (a lock it holds, its end), the
/// last for the first. Found twice in a row before it is reported (see `deadlock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub(crate) fibers: Vec<FiberId>,
}

impl Cycle {
    /// The fibers of the cycle, in wait order, starting at the smallest id.
    pub fn fibers(&self) -> &[FiberId] {
        &self.fibers
    }
}

/// A snapshot of every live fiber of every runtime ([`dump`]).
///
/// `Display` prints it grouped by state and wait reason, identical fibers (same state, reason
/// kind, park site and spawn site) collapsed after the first three; the alternate form (`{:#}`)
/// prints every fiber. [`to_json`](Dump::to_json) gives the whole dump as JSON.
#[derive(Clone, Debug)]
pub struct Dump {
    pub(crate) fibers: Vec<FiberInfo>,
    pub(crate) cycles: Vec<Cycle>,
    pub(crate) unstarted: usize,
    pub(crate) unlisted: usize,
    pub(crate) runtimes: usize,
    pub(crate) taken_at: SystemTime,
    pub(crate) took: Duration,
}

impl Dump {
    /// The fibers, by runtime, worker and id.
    pub fn fibers(&self) -> impl Iterator<Item = &FiberInfo> {
        self.fibers.iter()
    }

    /// The fiber with this id, if the dump has it.
    pub fn fiber(&self, id: FiberId) -> Option<&FiberInfo> {
        self.fibers.iter().find(|f| f.id == id)
    }

    /// The cycles of the wait-for graph (deadlocks).
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    /// Fibers queued but not started yet (counted, not listed).
    pub fn unstarted(&self) -> usize {
        self.unstarted
    }

    /// Started fibers a worker had not published yet (counted, not listed; see
    /// docs/observability.md).
    pub fn unlisted(&self) -> usize {
        self.unlisted
    }

    /// How many runtimes the dump covers.
    pub fn runtimes(&self) -> usize {
        self.runtimes
    }

    /// How long taking the dump took.
    pub fn took(&self) -> Duration {
        self.took
    }

    /// The dump as one JSON object (docs/observability.md has the shape).
    pub fn to_json(&self) -> String {
        super::json::to_json(self)
    }

    /// The text of one cycle, each fiber with what it waits for.
    pub(crate) fn describe_cycle(&self, cycle: &Cycle, out: &mut impl fmt::Write) -> fmt::Result {
        for id in &cycle.fibers {
            match self.fiber(*id) {
                Some(f) => {
                    write!(out, "  ")?;
                    label(out, f)?;
                    match &f.reason {
                        Some(r) => write!(out, " waits for {r}")?,
                        None => write!(out, " waits")?,
                    }
                    if let Some(site) = f.park_site {
                        write!(out, " at {site}")?;
                    }
                    writeln!(out)?;
                }
                None => writeln!(out, "  fiber {}", id.as_u64())?,
            }
        }
        Ok(())
    }
}

/// `fiber 12 "name"`.
fn label(out: &mut impl fmt::Write, f: &FiberInfo) -> fmt::Result {
    write!(out, "fiber {}", f.id.as_u64())?;
    if let Some(name) = &f.name {
        write!(out, " {name:?}")?;
    }
    Ok(())
}

/// Takes a dump of every live fiber of every runtime of the process.
///
/// Safe to call from anywhere (a fiber, a plain thread, the `FIBER_DUMP_SIGNAL` thread) and while
/// workers are stuck: it asks no worker, it reads their registries (docs/observability.md). A
/// waiting fiber whose wait names a lock or a socket is held in its park for the moment its owner
/// or peer is read, then given back (if it was woken meanwhile, it is requeued). Costs roughly
/// a microsecond per fiber on the calling thread; the workers are not stopped.
pub fn dump() -> Dump {
    let start = Instant::now();
    let taken_at = SystemTime::now();
    let mut entries: Vec<(FiberInfo, Arc<Task>)> = Vec::new();
    let (mut unstarted, mut unlisted) = (0, 0);
    let runtimes = registry::all_runtimes();
    let now = now_stamp();
    for (rt_index, rt) in runtimes.iter().enumerate() {
        unstarted += rt.unstarted();
        for worker in 0..rt.workers() {
            let mut found = 0;
            for task in rt.fibers(worker) {
                let Some(raw) = collect::read(&task) else {
                    continue;
                };
                found += 1;
                entries.push((info(&task, &raw, rt_index, now), task));
            }
            unlisted += rt.started(worker).saturating_sub(found);
        }
    }
    entries.sort_unstable_by_key(|(f, _)| (f.runtime, f.worker, f.id));
    let (fibers, tasks): (Vec<FiberInfo>, Vec<Arc<Task>>) = entries.into_iter().unzip();
    let cycles = deadlock::confirmed_cycles(&fibers, &tasks);
    // The references are let go before the dump is returned (a dump holds no task).
    drop(tasks);
    Dump {
        fibers,
        cycles,
        unstarted,
        unlisted,
        runtimes: runtimes.len(),
        taken_at,
        took: start.elapsed(),
    }
}

/// The public view of one read.
pub(crate) fn info(task: &Task, raw: &Raw, runtime: usize, now: u32) -> FiberInfo {
    let waiting = raw.state == FiberState::Waiting;
    let since = now.wrapping_sub(raw.since) % (crate::task::reason::ON_CPU - 1);
    FiberInfo {
        id: task.id,
        name: task.name().map(str::to_owned),
        state: raw.state,
        reason: if waiting {
            decode(raw.word, raw.owner, raw.peer)
        } else {
            None
        },
        spawn_site: task.label.site(),
        park_site: if waiting { raw.park_site() } else { None },
        runtime,
        worker: raw.home as usize,
        since: Duration::from_millis(u64::from(since)),
    }
}

/// Fibers alike in the text: the same park site (file, line) and spawn site.
type SiteKey<'a> = (Option<(&'a str, u32)>, (&'a str, u32));

/// The text group a fiber goes in: state, then wait kind.
fn group_of(f: &FiberInfo) -> (FiberState, &'static str) {
    (f.state, f.reason.as_ref().map_or("", WaitReason::kind))
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |s| self.fibers.iter().filter(|x| x.state == s).count();
        writeln!(
            f,
            "fiber dump: {} fibers ({} running, {} runnable, {} waiting), {} not started, {} \
             runtime(s), taken in {:.1?}",
            self.fibers.len(),
            count(FiberState::Running),
            count(FiberState::Runnable),
            count(FiberState::Waiting),
            self.unstarted,
            self.runtimes,
            self.took,
        )?;
        if self.unlisted > 0 {
            writeln!(
                f,
                "({} fibers started since their worker's last registry pass are not listed)",
                self.unlisted
            )?;
        }
        for (i, cycle) in self.cycles.iter().enumerate() {
            writeln!(
                f,
                "\ndeadlock {}: {} fibers wait for each other:",
                i + 1,
                cycle.fibers.len()
            )?;
            self.describe_cycle(cycle, f)?;
        }
        let mut groups: BTreeMap<(FiberState, &'static str), Vec<&FiberInfo>> = BTreeMap::new();
        for fiber in &self.fibers {
            groups.entry(group_of(fiber)).or_default().push(fiber);
        }
        for ((state, kind), members) in groups {
            let what = if kind.is_empty() {
                state.as_str().to_string()
            } else {
                format!("{}: {kind}", state.as_str())
            };
            writeln!(f, "\n== {what} ({} fibers)", members.len())?;
            // Identical entries (same park and spawn sites) collapse after three, unless `{:#}`.
            let mut shown: HashMap<SiteKey<'_>, usize> = HashMap::new();
            let mut hidden: BTreeMap<SiteKey<'_>, usize> = BTreeMap::new();
            for fiber in members {
                let key = (
                    fiber.park_site.map(|l| (l.file(), l.line())),
                    (fiber.spawn_site.file(), fiber.spawn_site.line()),
                );
                let n = shown.entry(key).or_default();
                *n += 1;
                if *n > 3 && !f.alternate() {
                    *hidden.entry(key).or_default() += 1;
                    continue;
                }
                writeln!(f)?;
                label(f, fiber)?;
                write!(f, " [{}", state.as_str())?;
                if let Some(r) = &fiber.reason {
                    write!(f, ": {r}")?;
                }
                writeln!(
                    f,
                    ", {:.1?}] runtime {} worker {}",
                    fiber.since, fiber.runtime, fiber.worker
                )?;
                if let Some(site) = fiber.park_site {
                    writeln!(f, "    waits at {site}")?;
                }
                writeln!(f, "    spawned at {}", fiber.spawn_site)?;
            }
            for ((park, spawn), n) in hidden {
                write!(f, "\n... and {n} more like the above")?;
                if let Some((file, line)) = park {
                    write!(f, " (waiting at {file}:{line},")?;
                } else {
                    write!(f, " (")?;
                }
                writeln!(f, " spawned at {}:{})", spawn.0, spawn.1)?;
            }
        }
        Ok(())
    }
}
