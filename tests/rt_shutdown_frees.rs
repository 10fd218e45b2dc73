//! A runtime dropped while its fibers are parked frees everything: a parked fiber's task holds
//! the runtime's shared state (and with it the reactor's epoll and wake-up fds), so a task leaked
//! by the park protocol's reference hand-over would show up as fds that never close. Alone in its
//! file: other tests opening fds in parallel would blur the count.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::{eventually, open_fds, runtime, watchdog};

#[test]
fn dropping_runtimes_with_parked_fibers_leaks_no_task() {
    watchdog(120, || {
        // One round first: lazily created process-wide state (the blocking pool, the reactor's
        // slot table) is not a leak.
        let before = open_fds();
        for round in 0..30 {
            let rt = runtime(2, "frees");
            let started = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = fiber::sync::mpmc::unbounded::<u32>();
            let lock = Arc::new(fiber::sync::Mutex::new(()));
            let held = lock.lock().unwrap();
            let mut handles = Vec::new();
            for i in 0..60 {
                let (started, rx, lock) = (started.clone(), rx.clone(), lock.clone());
                handles.push(rt.spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    match i % 3 {
                        // Parked on the bare park token.
                        0 => loop {
                            fiber::park();
                        },
                        // Parked in a channel's wait list (the direct hand-off node).
                        1 => {
                            let _ = rx.recv();
                        }
                        // Parked in a mutex's wait queue.
                        _ => drop(lock.lock()),
                    }
                }));
            }
            assert!(
                eventually(30, || started.load(Ordering::SeqCst) == 60),
                "fibers did not start"
            );
            // Let them reach their parks, then race a few wake-ups with the shutdown.
            fiber::sleep(std::time::Duration::from_millis(2));
            if round % 2 == 1 {
                for h in &handles[..10] {
                    h.fiber().unpark();
                }
                let _ = tx.send(1);
            }
            drop(rt);
            for h in handles {
                let _ = h.join();
            }
            drop(held);
            drop(tx);
        }
        let after = open_fds();
        assert!(
            after <= before + 4,
            "open fds grew from {before} to {after} over 30 runtimes dropped with parked fibers: \
             tasks (holding their runtime) were leaked"
        );
    });
}
