//! The blocking pool: an elastic set of OS threads for work that would block a worker (file system
//! calls, name resolution, user code that cannot be made fiber-aware).
//!
//! Threads are started on demand, up to [`MAX_THREADS`]; a thread that has been idle for
//! [`KEEP_ALIVE`] exits. Jobs beyond the bound wait in a FIFO queue.
//!
//! Idle protocol: a thread that finds the queue empty counts itself in `idle` and waits on the
//! condition variable. `execute` hands a new job to an idle thread by moving one unit from `idle` to
//! `notified` before notifying, so two jobs submitted back to back wake two threads (a notify cannot
//! be "absorbed" by a thread that was already going to run the first job). A waking thread consumes
//! one unit of `notified` if there is one; otherwise its wake-up was a time-out (it exits, if the
//! queue is still empty) or spurious (it waits again).
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::driver::wait::park_while_not;

/// Upper bound on the number of blocking-pool threads.
pub(crate) const MAX_THREADS: usize = 512;
/// How long an idle blocking-pool thread waits for work before it exits.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    notified: usize,
}

fn pool() -> &'static Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(Pool {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        })
    })
}

impl Pool {
    fn execute(self: &Arc<Self>, job: Job) {
        let mut st = self.state.lock();
        st.queue.push_back(job);
        if st.idle > 0 {
            st.idle -= 1;
            st.notified += 1;
            self.cond.notify_one();
        } else if st.threads < MAX_THREADS {
            st.threads += 1;
            drop(st);
            let pool = self.clone();
            let spawned = thread::Builder::new()
                .name("fiber-blocking".into())
                .spawn(move || pool.run());
            if spawned.is_err() {
                // Out of threads: the job stays queued for the threads we have (if none, it runs
                // when one is started by a later call).
                self.state.lock().threads -= 1;
            }
        }
    }

    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job(); // never unwinds: jobs catch their own panics
                st = self.state.lock();
                continue;
            }
            st.idle += 1;
            loop {
                let timed_out = self.cond.wait_for(&mut st, KEEP_ALIVE).timed_out();
                if st.notified > 0 {
                    st.notified -= 1;
                    break; // `execute` already took us out of `idle`
                }
                if timed_out {
                    st.idle -= 1;
                    if st.queue.is_empty() {
                        st.threads -= 1;
                        return;
                    }
                    break;
                }
            }
        }
    }
}

struct Completion<T> {
    result: Mutex<Option<thread::Result<T>>>,
}

/// Runs `f` on the blocking pool and parks the calling fiber until it returns its value.
///
/// A panic in `f` is caught on the pool thread and resumed in the caller. Outside a fiber (on a
/// plain OS thread) there is no worker to protect, so `f` simply runs on the calling thread.
///
/// ```
/// let n = fiber::spawn_blocking(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0));
/// assert!(n > 0);
/// ```
pub fn spawn_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !crate::is_fiber() {
        return f();
    }
    spawn_blocking_slow(f)
}

#[cold]
fn spawn_blocking_slow<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let done = Arc::new(Completion {
        result: Mutex::new(None),
    });
    let done2 = done.clone();
    let waiter = crate::current();
    pool().execute(Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        *done2.result.lock() = Some(result);
        waiter.unpark();
    }));
    let mut result = None;
    park_while_not(
        || {
            result = done.result.lock().take();
            result.is_some()
        },
        None,
    );
    match result.expect("park_while_not returns once ready") {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Number of blocking-pool threads alive right now (for tests).
#[cfg(test)]
pub(crate) fn pool_threads() -> usize {
    pool().state.lock().threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_pool_in_a_fiber_inline_on_a_thread() {
        let _serial = crate::driver::io::test_support::FD_TESTS.lock();
        let me = thread::current().id();
        assert_eq!(
            spawn_blocking(move || thread::current().id()),
            me,
            "a plain thread runs f itself"
        );
        let rt = crate::Runtime::builder()
            .worker_threads(2)
            .build()
            .expect("runtime");
        rt.block_on(|| {
            let me = thread::current().id();
            let other = spawn_blocking(move || thread::current().id() != me);
            assert!(other, "inside a fiber, f runs on a pool thread");
            assert!(pool_threads() >= 1);
            let r = panic::catch_unwind(|| spawn_blocking(|| -> u32 { panic!("boom") }));
            let payload = r.unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
            // Many at once: all complete.
            let hs: Vec<_> = (0..32u64)
                .map(|i| {
                    crate::spawn(move || {
                        spawn_blocking(move || {
                            thread::sleep(Duration::from_millis(5));
                            i * 2
                        })
                    })
                })
                .collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, (0..32u64).map(|i| i * 2).sum());
        });
    }
}
