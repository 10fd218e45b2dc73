//! Deadlocks: the cycles of the wait-for graph a dump finds, and the report of a global deadlock.
//!
//! The graph: a waiting fiber has at most one edge, to the fiber it waits for (the owner of the
//! lock it waits on, the fiber it joins). So each fiber is on at most one cycle, and one walk
//! finds them all in O(n). A dump reads the fibers one after the other, not at one instant: a
//! fiber read early may have moved on by the time a later one is read, and the pieces can look
//! like a cycle that never existed (under contention, owners change all the time). So a cycle is
//! reported only if each of its fibers, read again twice a couple of milliseconds later, still
//! waits exactly as before (same wait, same owner). A real deadlock does not change; a
//! coincidence that survives three reads of every member is not one we could tell apart anyway.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::collect::{self, FiberState};
use super::dump::{info, Cycle, FiberInfo};
use crate::task::reason::now_stamp;
use crate::task::{FiberId, Task};

/// Re-reads of a candidate cycle before it counts.
const CONFIRMATIONS: usize = 2;
/// The pause before each re-read.
const CONFIRM_PAUSE: Duration = Duration::from_millis(2);

/// The cycles of the wait-for graph of `fibers` (as indices into it), each starting at its
/// smallest id.
pub(crate) fn find(fibers: &[FiberInfo]) -> Vec<Vec<usize>> {
    let index: HashMap<FiberId, usize> =
        fibers.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
    let next: Vec<Option<usize>> = fibers
        .iter()
        .map(|f| {
            if f.state != FiberState::Waiting {
                return None;
            }
            let to = f.reason.as_ref()?.waits_for()?;
            index.get(&to).copied()
        })
        .collect();
    // 0: not visited; else the number of the walk that visited it (walks are numbered from 1).
    let mut walk_of = vec![0usize; fibers.len()];
    let mut cycles = Vec::new();
    for start in 0..fibers.len() {
        if walk_of[start] != 0 {
            continue;
        }
        let walk = start + 1;
        let mut at = start;
        loop {
            walk_of[at] = walk;
            let Some(n) = next[at] else { break };
            if walk_of[n] == walk {
                // Closed a cycle on this walk: it starts at `n`.
                let mut cycle = vec![n];
                let mut c = next[n].expect("on a cycle");
                while c != n {
                    cycle.push(c);
                    c = next[c].expect("on a cycle");
                }
                let min = (0..cycle.len())
                    .min_by_key(|&i| fibers[cycle[i]].id)
                    .expect("not empty");
                cycle.rotate_left(min);
                cycles.push(cycle);
                break;
            }
            if walk_of[n] != 0 {
                break; // joins an earlier walk: no new cycle
            }
            at = n;
        }
    }
    cycles.sort_by_key(|c| fibers[c[0]].id);
    cycles
}

/// The cycles of `fibers` (read from `tasks`, index for index) that survive [`CONFIRMATIONS`]
/// re-reads (see the module docs).
pub(crate) fn confirmed_cycles(fibers: &[FiberInfo], tasks: &[Arc<Task>]) -> Vec<Cycle> {
    let mut candidates = find(fibers);
    for _ in 0..CONFIRMATIONS {
        if candidates.is_empty() {
            break;
        }
        crate::driver::wait::sleep(CONFIRM_PAUSE);
        let now = now_stamp();
        candidates.retain(|cycle| {
            cycle.iter().all(|&i| {
                let (task, before) = (&tasks[i], &fibers[i]);
                match collect::read(task) {
                    Some(raw) => {
                        let again = info(task, &raw, before.runtime, now);
                        again.state == FiberState::Waiting && again.reason == before.reason
                    }
                    None => false,
                }
            })
        });
    }
    candidates
        .into_iter()
        .map(|cycle| Cycle {
            fibers: cycle.into_iter().map(|i| fibers[i].id).collect(),
        })
        .collect()
}

/// Whether a global deadlock was reported already (once per process; see [`report_global`]).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// How long every worker must have slept with nothing to wake it, while a thread waits for a
/// fiber, before the global deadlock is reported: a plain OS thread that is not waiting for a
/// fiber could still wake one (a fiber waiting on a channel a thread sends on), and the runtime
/// cannot see that; a second of total stillness is taken as the answer.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// Should workers watch for a global deadlock? Not after one was reported (no periodic
/// wake-ups), nor with `FIBER_DEADLOCK_REPORT=0`.
pub(crate) fn watching() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !REPORTED.load(Ordering::Relaxed)
        && *ENABLED
            .get_or_init(|| std::env::var_os("FIBER_DEADLOCK_REPORT").is_none_or(|v| v != "0"))
}

/// Reports a global deadlock on stderr (a `tracing` warn event under that feature), once per process: Go's "all goroutines are asleep"
/// message, the cycles a dump finds, and the dump's summary of what every fiber waits for.
/// Returns the text (for the caller's panic, if it was asked to panic), or `None` if a report was
/// made before.
pub(crate) fn report_global(detail: &str) -> Option<String> {
    if REPORTED.swap(true, Ordering::Relaxed) {
        return None;
    }
    let dump = super::dump::dump();
    let mut text = format!("all fibers are asleep - deadlock! ({detail})\n");
    if dump.cycles().is_empty() {
        text.push_str(
            "no cycle in the wait-for graph: every fiber waits for something nobody will do\n",
        );
    }
    text.push_str(&dump.to_string());
    crate::task::trace::report_warn("deadlock", &text);
    Some(text)
}
