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
        // `Runtime::metrics` reads the pool's size through this.
        let _ = crate::monitor::metrics::BLOCKING_PROBE.set(|| {
            let st = pool().state.lock();
            (st.threads, st.queue.len())
        });
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
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !crate::is_fiber() {
        return f();
    }
    spawn_blocking_slow(f, std::panic::Location::caller())
}

#[cold]
fn spawn_blocking_slow<F, T>(f: F, site: &'static std::panic::Location<'static>) -> T
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
    let _wait = crate::task::reason::enter(
        crate::task::reason::word(crate::task::reason::kind::BLOCKING, 0),
        site,
    );
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

/// A bound on the blocking pool for one kind of job: at most `limit` of its jobs run at once; the
/// others wait, in FIFO order, in the lane's own queue, holding no thread. A pool thread that
/// finishes a lane job runs the lane's next queued one, so a burst of jobs occupies `limit`
/// threads, however long the queue.
#[cfg(fiber_hook)]
pub(crate) struct Lane {
    limit: usize,
    state: Mutex<LaneState>,
}

#[cfg(fiber_hook)]
struct LaneState {
    running: usize,
    queue: VecDeque<Job>,
}

#[cfg(fiber_hook)]
impl Lane {
    pub(crate) const fn new(limit: usize) -> Lane {
        assert!(limit > 0, "a lane runs at least one job");
        Lane {
            limit,
            state: Mutex::new(LaneState {
                running: 0,
                queue: VecDeque::new(),
            }),
        }
    }

    fn submit(&'static self, job: Job) {
        let mut st = self.state.lock();
        if st.running == self.limit {
            st.queue.push_back(job);
            return;
        }
        st.running += 1;
        drop(st);
        pool().execute(Box::new(move || self.run(job)));
    }

    fn run(&self, mut job: Job) {
        loop {
            job(); // never unwinds: lane jobs catch their own panics
            let mut st = self.state.lock();
            match st.queue.pop_front() {
                Some(next) => job = next,
                None => {
                    st.running -= 1;
                    return;
                }
            }
        }
    }
}

/// A lane job's state: the caller withdraws it (`QUEUED → WITHDRAWN`) or the pool thread starts
/// it (`QUEUED → STARTED`), whichever comes first.
#[cfg(fiber_hook)]
const QUEUED: u8 = 0;
#[cfg(fiber_hook)]
const STARTED: u8 = 1;
#[cfg(fiber_hook)]
const WITHDRAWN: u8 = 2;

/// Runs `job` on the blocking pool through `lane` and parks the calling fiber until it has
/// returned its value; on a plain thread, `job` runs inline. For jobs that use memory the
/// caller's frame owns (raw pointers into a fiber's stack, in the libc interposition), so the
/// wait neither unwinds nor ends before the job is done: runtime shutdown is remembered
/// (`cancel_pending`: the fiber unwinds at its next cancellable park) and the value returned as
/// usual. Only a job still queued in the lane is withdrawn on cancellation (it never runs):
/// `Err(Cancelled)`, as when a cancellation is pending already (the job is not submitted).
/// A panic in `job` resumes in the caller, which aborts in an `extern "C"` frame: such jobs must
/// not panic.
#[cfg(fiber_hook)]
pub(crate) fn run_on_pool_uncancellable<F, T>(
    lane: &'static Lane,
    job: F,
) -> Result<T, crate::task::context::Cancelled>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    use std::sync::atomic::{AtomicU8, Ordering};

    use crate::driver::wait::park_while_not_uncancellable;
    use crate::task::context;

    let Some(pending) = context::with_task(context::is_cancel_pending) else {
        return Ok(job());
    };
    if pending {
        return Err(context::Cancelled::TARGETED);
    }
    struct Handoff<T> {
        state: AtomicU8,
        result: Mutex<Option<thread::Result<T>>>,
    }
    let done = Arc::new(Handoff {
        state: AtomicU8::new(QUEUED),
        result: Mutex::new(None),
    });
    let done2 = done.clone();
    let waiter = crate::current();
    lane.submit(Box::new(move || {
        if done2
            .state
            .compare_exchange(QUEUED, STARTED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return; // withdrawn: the caller has returned, its memory must not be touched
        }
        let result = panic::catch_unwind(AssertUnwindSafe(job));
        // Published under the lock: everything the job wrote happens before the caller's take.
        *done2.result.lock() = Some(result);
        waiter.unpark();
    }));
    let mut result = None;
    park_while_not_uncancellable(
        || {
            result = done.result.lock().take();
            result.is_some()
        },
        || {
            done.state
                .compare_exchange(QUEUED, WITHDRAWN, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        },
    )?;
    match result.expect("park_while_not_uncancellable returns once ready") {
        Ok(value) => Ok(value),
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

    /// Runtime shutdown while one fiber's lane job runs and another's is queued behind it: the
    /// queued job is withdrawn (never runs, `Err`), the running one completes and its value is
    /// returned, and both fibers unwind at their next park, not inside the wait.
    #[cfg(fiber_hook)]
    #[test]
    fn uncancellable_wait_completes_or_withdraws() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        static LANE: Lane = Lane::new(1);
        let _serial = crate::driver::io::test_support::FD_TESTS.lock();
        let rt = crate::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let started = Arc::new(AtomicBool::new(false));
        let withdrawn = Arc::new(AtomicBool::new(false));
        let second_ran = Arc::new(AtomicBool::new(false));
        let first_value = Arc::new(AtomicUsize::new(0));
        let unwound = Arc::new(AtomicUsize::new(0));
        struct Unwound(Arc<AtomicUsize>);
        impl Drop for Unwound {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        {
            let (started, withdrawn, first_value) =
                (started.clone(), withdrawn.clone(), first_value.clone());
            let unwound = Unwound(unwound.clone());
            rt.spawn(move || {
                let _unwound = unwound;
                let value = run_on_pool_uncancellable(&LANE, move || {
                    started.store(true, Ordering::SeqCst);
                    // Holds the lane until the queued job has been withdrawn, which only the
                    // shutdown does: the cancellation reaches this fiber while its job runs.
                    while !withdrawn.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(1));
                    }
                    7
                });
                first_value.store(value.unwrap_or(0), Ordering::SeqCst);
                crate::park();
                unreachable!("the cancellation is pending: the park unwinds");
            });
        }
        while !started.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
        {
            let (withdrawn, second_ran) = (withdrawn.clone(), second_ran.clone());
            let unwound = Unwound(unwound.clone());
            rt.spawn(move || {
                let _unwound = unwound;
                let r = run_on_pool_uncancellable(&LANE, move || {
                    second_ran.store(true, Ordering::SeqCst)
                });
                assert!(r.is_err(), "a queued job is withdrawn");
                withdrawn.store(true, Ordering::SeqCst);
                crate::yield_now();
                unreachable!("the cancellation is pending: the yield unwinds");
            });
        }
        // Let the second fiber queue its job behind the first.
        while LANE.state.lock().queue.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        drop(rt);
        assert_eq!(
            first_value.load(Ordering::SeqCst),
            7,
            "the started job completed"
        );
        assert_eq!(unwound.load(Ordering::SeqCst), 2, "both fibers unwound");
        // The withdrawn job is popped (and skipped) once the first one is done.
        while !LANE.state.lock().queue.is_empty() || LANE.state.lock().running > 0 {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !second_ran.load(Ordering::SeqCst),
            "a withdrawn job never runs"
        );
    }
}
