//! Where a dump finds the fibers: per worker, a list of its started fibers behind a short lock,
//! and one process-wide list of runtimes.
//!
//! A dump must work while a worker is stuck (in a syscall, in a CPU loop), so it cannot ask the
//! workers; it reads these lists instead. To keep the lock off the spawn path, a worker does not
//! take it for every fiber: it keeps the fibers it started since its last publication in a list
//! of its own (`Worker::started`, worker-local) and publishes them, together with the removal of
//! those that finished meanwhile, in one locked pass ([`Registry::publish`]) every maintenance
//! tick and before it goes to sleep. A fiber that starts and finishes between two passes (most
//! short-lived ones) never touches the lock. The price: a dump may miss fibers started on a
//! worker since its last pass (at most 61 scheduling ticks; a worker stuck in a fiber has not
//! started any since), and sees fibers that finished since then, which it skips
//! (`reason::FINISHED` in their `since` word). The dump reports the missing ones as a count
//! ([`Source::started`] minus what it found).
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::task::Task;

/// The fibers one worker has published (see the module docs). Each task's `live_index` is its
/// position here (written only by the worker, under the lock).
#[derive(Default)]
pub(crate) struct Registry {
    fibers: parking_lot::Mutex<Vec<Arc<Task>>>,
}

impl Registry {
    /// The worker's pass: removes `finished` (published before, their `live_index` valid) and
    /// appends `started`, emptying both. Called only by the registry's worker, on its thread.
    pub(crate) fn publish(&self, started: &mut Vec<Arc<Task>>, finished: &mut Vec<Arc<Task>>) {
        let mut fibers = self.fibers.lock();
        for task in finished.iter() {
            let index = task.live_index.get() as usize;
            fibers.swap_remove(index);
            if let Some(moved) = fibers.get(index) {
                moved.live_index.set(index as u32);
            }
        }
        for (k, task) in started.iter().enumerate() {
            // More than 2^31 live fibers on one worker would need more than 8 TiB of stacks.
            let index = u32::try_from(fibers.len() + k).expect("fewer than 2^31 fibers per worker");
            task.live_index.set(index);
        }
        fibers.append(started);
        drop(fibers);
        // Dropped outside the lock: a dropped task may run destructors of its closure's result.
        finished.clear();
    }

    /// A copy of the published list (the lock is held only while the references are cloned).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Task>> {
        self.fibers.lock().clone()
    }

    /// Takes the whole list (the worker, at shutdown, after its last `publish`).
    pub(crate) fn take_all(&self) -> Vec<Arc<Task>> {
        std::mem::take(&mut *self.fibers.lock())
    }
}

/// What a dump asks a runtime (implemented by the scheduler's `Handle`).
pub(crate) trait Source: Send + Sync {
    /// The number of workers.
    fn workers(&self) -> usize;
    /// Worker `index`'s published fibers.
    fn fibers(&self, index: usize) -> Vec<Arc<Task>>;
    /// How many fibers worker `index` carries (started, not finished), published or not.
    fn started(&self, index: usize) -> usize;
    /// How many fibers wait in the queues unstarted (injector and deques).
    fn unstarted(&self) -> usize;
}

/// Every runtime of the process that has not been dropped (dropped ones are pruned lazily).
fn runtimes() -> &'static Mutex<Vec<Weak<dyn Source>>> {
    static RUNTIMES: OnceLock<Mutex<Vec<Weak<dyn Source>>>> = OnceLock::new();
    RUNTIMES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Adds a runtime to the process-wide list (at its start).
pub(crate) fn add_runtime(source: Weak<dyn Source>) {
    let mut list = runtimes().lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|w| w.strong_count() > 0);
    list.push(source);
}

/// The live runtimes, in order of creation.
pub(crate) fn all_runtimes() -> Vec<Arc<dyn Source>> {
    let list = runtimes().lock().unwrap_or_else(|e| e.into_inner());
    list.iter().filter_map(Weak::upgrade).collect()
}
