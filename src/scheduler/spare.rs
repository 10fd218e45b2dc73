//! Compensating workers: when every worker is held by a fiber (the watchdog sees it), the runtime
//! starts a spare worker, at most as many as it was built with, so that unstarted fibers still
//! start (docs/observability.md, "What moves while a worker is stuck").
//!
//! The slots are reserved at build: a spare has its `Remote` (stealer, inbox, stats) from the
//! start, so indices and the `remotes` slice never change; its deque waits here and its reactor
//! (three fds) is created only when it starts. `Handle::active` counts the started workers;
//! stealing, spawn placement and the search limit look at that many. A started spare runs like
//! any worker until the runtime is dropped: fibers it started live on it (carrier affinity).
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_deque::Worker as Deque;
use parking_lot::Mutex;

use super::{worker, Handle};
use crate::task::Task;

/// The spare slots of a runtime that have not started, and the threads of those that have.
pub(crate) struct Spares {
    /// Deques of the slots not started yet, the next one last.
    deques: Mutex<Vec<Deque<Arc<Task>>>>,
    /// How many spare slots the runtime has (started or not).
    slots: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_name: String,
}

impl Spares {
    /// `deques` belong to the slots after the `base` workers, in index order.
    pub(crate) fn new(mut deques: Vec<Deque<Arc<Task>>>, thread_name: String) -> Spares {
        deques.reverse();
        Spares {
            slots: deques.len(),
            deques: Mutex::new(deques),
            threads: Mutex::new(Vec::new()),
            thread_name,
        }
    }

    /// Spare slots, started or not.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// Threads of the spares started so far (for the runtime's drop to join).
    pub(crate) fn take_threads(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.threads.lock())
    }
}

impl Handle {
    /// Workers started: the ones built, plus spares started since.
    #[inline]
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Is there unstarted work a new worker could take?
    pub(crate) fn has_unstarted_work(&self) -> bool {
        !self.injector.is_empty()
            || self.remotes[..self.active()]
                .iter()
                .any(|r| !r.stealer.is_empty())
    }

    /// Starts the next spare worker; `Ok(false)` if none is left or the runtime shuts down.
    pub(crate) fn start_spare(self: &Arc<Self>) -> io::Result<bool> {
        let mut deques = self.spares.deques.lock();
        if self.is_shutdown() || deques.is_empty() {
            return Ok(false);
        }
        let index = self.active();
        let (reactor, poller) = crate::driver::new_reactor(self.runtime_id)?;
        if self.remotes[index].reactor.set(reactor).is_err() {
            unreachable!("a spare slot's reactor is set once, under the spares lock");
        }
        let deque = deques.pop().expect("checked above");
        let shared = self.clone();
        let name = format!("{}-{index}", self.spares.thread_name);
        // Counted before it runs: it searches as one of `active` workers, and others may steal
        // from its deque from now on (it is empty).
        self.active.store(index + 1, Ordering::Release);
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || worker::run(shared, index, deque, poller))
        {
            Ok(thread) => {
                self.spares.threads.lock().push(thread);
                Ok(true)
            }
            Err(err) => {
                // The slot stays counted but never runs: nothing can be queued only there (its
                // deque is gone, no fiber has it as home), and stealing from its empty stealer
                // finds nothing. Further spares are not tried.
                deques.clear();
                Err(err)
            }
        }
    }
}
