//! Reading one fiber from another thread, soundly: only atomics and immutable fields of its
//! task, never its coroutine or its `Cell`s; an object the fiber waits on is read only while the
//! fiber is pinned in its park (`Task::while_pinned`, see `task::reason` for why that is sound).
use std::net::SocketAddr;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::peer;
use super::reason::{is_lock, needs_pin};
use crate::task::reason::{self, kind, Owner, FINISHED, ON_CPU};
use crate::task::Task;

/// The state of a fiber in a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FiberState {
    /// On a worker right now.
    Running,
    /// Ready to run, waiting for its worker (woken, or yielded).
    Runnable,
    /// Parked or sleeping: see its [`WaitReason`](crate::WaitReason).
    Waiting,
}

impl FiberState {
    /// "running", "runnable" or "waiting".
    pub fn as_str(&self) -> &'static str {
        match self {
            FiberState::Running => "running",
            FiberState::Runnable => "runnable",
            FiberState::Waiting => "waiting",
        }
    }
}

/// What one read of a fiber found.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    pub(crate) state: FiberState,
    pub(crate) word: u64,
    pub(crate) site: u32,
    /// The owner of the lock it waits on, read while pinned (0: none or unknown).
    pub(crate) owner: u64,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) home: u32,
    pub(crate) since: u32,
}

impl Raw {
    pub(crate) fn park_site(&self) -> Option<&'static Location<'static>> {
        reason::decode_site(self.site)
    }
}

/// Reads `task`; `None` if it has finished. The caller holds `task` (an `Arc`): a pin may
/// requeue it.
pub(crate) fn read(task: &Arc<Task>) -> Option<Raw> {
    let since = task.since.load(Ordering::Relaxed);
    if since == FINISHED {
        return None;
    }
    let (parked, sleeping) = task.park.observe();
    let state = if parked || sleeping {
        FiberState::Waiting
    } else if since & ON_CPU != 0 {
        FiberState::Running
    } else {
        FiberState::Runnable
    };
    // Acquire: pairs with nothing in particular; the words are only a description, and a pin
    // below re-reads them after its acquiring transition.
    let mut word = task.wait.load(Ordering::Acquire);
    let mut site = task.park_site.load(Ordering::Relaxed);
    let mut owner = 0;
    let mut peer_addr = None;
    if parked && needs_pin(word) {
        let pinned = task.while_pinned(|| {
            // Re-read under the pin: this is the wait the fiber is suspended in.
            let word = task.wait.load(Ordering::Relaxed);
            let site = task.park_site.load(Ordering::Relaxed);
            let payload = reason::payload_of(word);
            let mut owner = 0;
            let mut peer_addr = None;
            if is_lock(word) {
                let ptr = std::ptr::with_exposed_provenance::<Owner>(payload as usize);
                // SAFETY: a lock wait word holds the exposed address of the lock's `Owner`, and
                // the fiber is suspended (we hold its run token) inside the scope that set the
                // word, which borrows the lock: it is alive until the fiber runs again
                // (`task::reason`, module docs). `Owner` is an atomic.
                owner = unsafe { &*ptr }.get();
            } else if matches!(reason::kind_of(word), kind::FD_READ | kind::FD_WRITE) {
                // The fd is open while its waiter is suspended on it (the waiting source
                // borrows it); getpeername neither blocks nor touches the fiber.
                peer_addr = peer::peer_of(payload as u32 as i32);
            }
            (word, site, owner, peer_addr)
        });
        if let Some(read) = pinned {
            (word, site, owner, peer_addr) = read;
        }
    }
    Some(Raw {
        state,
        word,
        site,
        owner,
        peer: peer_addr,
        home: u32::from(task.home.load(Ordering::Relaxed)),
        since: since & !ON_CPU,
    })
}
