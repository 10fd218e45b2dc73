//! I/O readiness: how an operation on a non-blocking fd waits when the kernel says `WouldBlock`.
//!
//! | module         | one job                                                                  |
//! |----------------|--------------------------------------------------------------------------|
//! | `slot`         | one fd's readiness word and its waiters (on `task::wait`'s list)          |
//! | `registry`     | registrations with the workers' reactors, the slot table, `dispatch`     |
//! | `op`           | the one loop: readiness → try → on `WouldBlock` clear and wait → retry    |
//! | `thread_wait`  | the plain-thread wait: `poll(2)`                                          |
//! | `options`      | the user-visible blocking mode and timeouts, and the policy they give    |
//! | `source`       | [`IoSource`]: fd + registration + options, what `fiber::net` is made of   |
//!
//! # Design
//!
//! Every socket is non-blocking in the kernel. An operation first simply *tries* the syscall; only
//! when the kernel says `WouldBlock` does it wait, and how it waits depends on where it runs:
//!
//! - **Inside a fiber** (the thread has a reactor, `driver::context`), the fd is registered
//!   (lazily, on its first wait) with the worker's `mio::Registry`, edge-triggered, for read *and*
//!   write readiness. The registration owns one slot of a global slot table: the mio token names
//!   the slot (index + generation). The worker calls [`dispatch`] for each event; dispatch ORs the
//!   readiness bits into the slot, bumps the slot's *tick*, and wakes the waiters whose interest
//!   became ready.
//! - **On a plain OS thread**, the call waits in `poll(2)` on the fd with the remaining timeout, so
//!   the same type behaves like `std`'s blocking sockets.
//!
//! The loop takes a borrowed fd, its `Registration` and a wait policy; nothing in it belongs to a
//! socket type, so an fd-keyed table (the libc interposition's) drives the same loop.
//!
//! # Why no edge is lost (the tick protocol)
//!
//! Edge-triggered epoll reports a readiness change once. The slot therefore *remembers* readiness
//! (bits in an atomic word) until an operation proves it stale by getting `WouldBlock`. The word
//! also carries a tick, incremented by every dispatch. An operation loads the word (the
//! *snapshot*) **before** its syscall; on `WouldBlock` it clears its interest bits **only if the
//! tick still equals the snapshot's** (compare-and-swap). So an event delivered between the syscall
//! and the clear bumps the tick, the clear fails, the bits stay set, and the wait returns at once.
//! An operation that finds its bits clear (and will wait, in the caller's runtime) skips the
//! syscall: a clear bit means the kernel said `WouldBlock` after the last edge, and the next edge
//! will set it again.
//!
//! The wait itself queues the fiber on the slot's wait list and re-checks the bits *under the
//! list's lock*; dispatch sets the bits and unlinks the waiters they satisfy *in one critical
//! section of that lock*. Either the waiter sees the bits, or dispatch sees the waiter and wakes
//! it (the hand-over rule of `task::wait`). A waiter that wakes and finds no readiness (another
//! reader consumed it) queues again before parking.
mod op;
mod options;
mod registry;
mod slot;
mod source;
mod thread_wait;

#[cfg(fiber_hook)]
pub(crate) use op::run;
#[cfg(fiber_hook)]
pub(crate) use options::Options;
pub(crate) use options::Wait;
pub(crate) use registry::dispatch;
#[cfg(test)]
pub(crate) use registry::slots_in_use;
#[cfg(fiber_hook)]
pub(crate) use registry::Registration;
pub(crate) use slot::Interest;
pub(crate) use source::IoSource;

#[cfg(test)]
pub(crate) mod test_support {
    //! A reactor thread for unit tests: a `mio::Poll` loop calling `dispatch`. A test thread that
    //! enters its handle waits for I/O as a fiber of its runtime would.
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::dispatch;
    use crate::driver::{context, Handle, WAKER_TOKEN};

    pub(crate) struct TestReactor {
        pub(crate) handle: Arc<Handle>,
        stop: Arc<AtomicBool>,
        waker: Arc<mio::Waker>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestReactor {
        pub(crate) fn start() -> TestReactor {
            let mut poll = mio::Poll::new().unwrap();
            let registry = poll.registry().try_clone().unwrap();
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER_TOKEN).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut events = mio::Events::with_capacity(256);
                while !stop2.load(Ordering::Acquire) {
                    if let Err(e) = poll.poll(&mut events, None) {
                        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
                    }
                    for ev in events.iter().filter(|ev| ev.token() != WAKER_TOKEN) {
                        dispatch(ev);
                    }
                }
            });
            TestReactor {
                handle: Arc::new(Handle {
                    registry,
                    sources: AtomicUsize::new(0),
                    runtime: crate::driver::new_runtime_id(),
                }),
                stop,
                waker,
                thread: Some(thread),
            }
        }
    }

    /// Unit tests that open fds take this lock, so the fd-leak check can count exactly.
    pub(crate) static FD_TESTS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    /// Runs `f`, a unit test that opens fds, under `FD_TESTS` on a thread of its own; panics if
    /// it has not finished after `secs` seconds (a lost wake-up fails the test instead of
    /// hanging the suite). A panic in `f` is the test's.
    pub(crate) fn fd_test<T: Send + 'static>(
        secs: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        use std::sync::mpsc;
        let _serial = FD_TESTS.lock();
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            let r = f();
            let _ = tx.send(());
            r
        });
        match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => h.join().unwrap(),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("watchdog: still running after {secs} s")
            }
        }
    }

    /// Makes the calling thread behave as a fiber of the runtime of `h`, until it exits.
    pub(crate) fn enter_handle(h: Arc<Handle>) {
        std::mem::forget(context::enter(h));
    }

    /// The handle the calling thread entered.
    pub(crate) fn current_test_handle() -> Arc<Handle> {
        context::with_current(Arc::clone).expect("entered")
    }

    impl Drop for TestReactor {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            self.waker.wake().unwrap();
            self.thread.take().unwrap().join().unwrap();
        }
    }
}
