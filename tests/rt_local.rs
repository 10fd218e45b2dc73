//! Fiber-local storage (`fiber_local!`): each fiber has its own values, created on first use
//! and dropped when the fiber ends (also when it is cancelled); on a plain OS thread the keys
//! behave like `thread_local!`.
mod support;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::{runtime, watchdog, DropCounter, DropGuard};

static INITS: AtomicUsize = AtomicUsize::new(0);

fn counted_init() -> Cell<usize> {
    INITS.fetch_add(1, Ordering::SeqCst);
    Cell::new(usize::MAX)
}

fiber::fiber_local! {
    static VALUE: Cell<usize> = Cell::new(usize::MAX);
    static COUNTED: Cell<usize> = counted_init();
    static GUARD: RefCell<Option<DropGuard>> = RefCell::new(None);
    static NAME: RefCell<String> = RefCell::new(String::from("init"));
}

// A key declared on its own, with attributes and visibility.
fiber::fiber_local! {
    /// A documented key.
    pub(crate) static LIST: RefCell<Vec<u32>> = RefCell::new(Vec::new())
}

#[test]
fn each_fiber_sees_its_own_value_across_switches() {
    watchdog(60, || {
        let rt = runtime(2, "local-iso");
        let handles: Vec<_> = (0..200usize)
            .map(|i| {
                rt.spawn(move || {
                    assert_eq!(VALUE.with(Cell::get), usize::MAX, "fresh value expected");
                    VALUE.with(|v| v.set(i));
                    for round in 0..10 {
                        if round % 3 == 0 {
                            fiber::sleep(Duration::from_millis(1));
                        } else {
                            fiber::yield_now();
                        }
                        assert_eq!(VALUE.with(Cell::get), i, "another fiber's value leaked in");
                        LIST.with(|l| l.borrow_mut().push(i as u32));
                    }
                    (VALUE.with(Cell::get), LIST.with(|l| l.borrow().clone()))
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (v, list) = h.join().unwrap();
            assert_eq!(v, i);
            assert_eq!(list, vec![i as u32; 10]);
        }
    });
}

#[test]
fn init_runs_once_per_fiber_that_uses_the_key() {
    watchdog(30, || {
        let rt = runtime(2, "local-init");
        let before = INITS.load(Ordering::SeqCst);
        let n = 50;
        let handles: Vec<_> = (0..n)
            .map(|i| {
                rt.spawn(move || {
                    for _ in 0..5 {
                        COUNTED.with(|c| c.set(i));
                    }
                    fiber::yield_now();
                    COUNTED.with(Cell::get)
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i);
        }
        // Only this test touches COUNTED.
        assert_eq!(INITS.load(Ordering::SeqCst) - before, n);
    });
}

#[test]
fn values_do_not_carry_over_to_the_next_fiber_on_a_worker() {
    watchdog(30, || {
        let rt = runtime(1, "local-fresh");
        for i in 0..20 {
            let seen = rt
                .spawn(move || {
                    let seen = NAME.with(|n| n.borrow().clone());
                    NAME.with(|n| *n.borrow_mut() = format!("fiber {i}"));
                    seen
                })
                .join()
                .unwrap();
            assert_eq!(seen, "init");
        }
    });
}

#[test]
fn values_are_dropped_when_the_fiber_ends_before_join_returns() {
    watchdog(30, || {
        let rt = runtime(2, "local-drop");
        let drops = DropCounter::new();
        let n = 100;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let guard = drops.guard();
                rt.spawn(move || GUARD.with(|g| *g.borrow_mut() = Some(guard)))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            drops.get(),
            n,
            "fiber-locals must be dropped before join returns"
        );

        // Also when the fiber panics.
        let guard = drops.guard();
        let h = rt.spawn(move || {
            GUARD.with(|g| *g.borrow_mut() = Some(guard));
            panic!("with a local");
        });
        assert!(h.join().is_err());
        assert_eq!(drops.get(), n + 1);
    });
}

#[test]
fn values_are_dropped_when_the_fiber_is_cancelled_by_shutdown() {
    watchdog(30, || {
        let rt = runtime(2, "local-cancel");
        let drops = DropCounter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let n = 50;
        for _ in 0..n {
            let guard = drops.guard();
            let started = started.clone();
            rt.spawn(move || {
                GUARD.with(|g| *g.borrow_mut() = Some(guard));
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    fiber::park();
                }
            });
        }
        assert!(support::eventually(20, || started.load(Ordering::SeqCst) == n));
        assert_eq!(drops.get(), 0);
        drop(rt);
        assert_eq!(drops.get(), n);
    });
}

/// Uses the fiber API from a fiber-local's destructor.
struct SpawnsOnDrop(mpsc::Sender<u32>);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let v = fiber::spawn(|| 7).join().unwrap();
        fiber::sleep(Duration::from_millis(1));
        let _ = self.0.send(v);
    }
}

fiber::fiber_local! {
    static SPAWNER: RefCell<Option<SpawnsOnDrop>> = RefCell::new(None);
}

#[test]
fn a_local_destructor_may_use_the_fiber_api() {
    watchdog(30, || {
        let rt = runtime(1, "local-dtor-api");
        let (tx, rx) = mpsc::channel();
        rt.spawn(move || SPAWNER.with(|s| *s.borrow_mut() = Some(SpawnsOnDrop(tx))))
            .join()
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), 7);
    });
}

/// A destructor that touches another key while the fiber's locals are being dropped.
struct TouchesOther(#[allow(dead_code)] DropGuard); // held for its drop count

impl Drop for TouchesOther {
    fn drop(&mut self) {
        VALUE.with(|v| v.set(1));
        LIST.with(|l| l.borrow_mut().push(1));
    }
}

fiber::fiber_local! {
    static TOUCHER: RefCell<Option<TouchesOther>> = RefCell::new(None);
}

#[test]
fn a_local_destructor_may_touch_other_locals() {
    watchdog(30, || {
        let rt = runtime(2, "local-dtor-touch");
        let drops = DropCounter::new();
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let guard = drops.guard();
                rt.spawn(move || {
                    VALUE.with(|v| v.set(5));
                    TOUCHER.with(|t| *t.borrow_mut() = Some(TouchesOther(guard)));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(drops.get(), 20);
    });
}

#[test]
fn nested_access_and_init_touching_other_keys() {
    fiber::fiber_local! {
        static OUTER: RefCell<Vec<usize>> = RefCell::new(vec![VALUE.with(Cell::get)]);
    }
    watchdog(30, || {
        let rt = runtime(1, "local-nested");
        let (outer, inner) = rt.block_on(|| {
            VALUE.with(|v| v.set(3));
            // OUTER's initialiser reads VALUE; a `with` inside a `with` of another key.
            let outer = OUTER.with(|o| {
                VALUE.with(|v| v.set(4));
                o.borrow().clone()
            });
            (outer, VALUE.with(Cell::get))
        });
        assert_eq!(outer, vec![3]);
        assert_eq!(inner, 4);
    });
}

#[test]
fn on_os_threads_keys_are_per_thread() {
    watchdog(30, || {
        VALUE.with(|v| v.set(10));
        let drops = DropCounter::new();
        let guard = drops.guard();
        let other = std::thread::spawn(move || {
            let fresh = VALUE.with(Cell::get);
            VALUE.with(|v| v.set(20));
            GUARD.with(|g| *g.borrow_mut() = Some(guard));
            (fresh, VALUE.with(Cell::get))
        })
        .join()
        .unwrap();
        assert_eq!(other, (usize::MAX, 20));
        assert_eq!(
            VALUE.with(Cell::get),
            10,
            "another thread changed this thread's value"
        );
        // The thread's values were dropped when it exited.
        assert_eq!(drops.get(), 1);

        // A fiber does not see the thread's value, and does not change it.
        let rt = runtime(1, "local-vs-thread");
        let in_fiber = rt.block_on(|| {
            let seen = VALUE.with(Cell::get);
            VALUE.with(|v| v.set(30));
            seen
        });
        assert_eq!(in_fiber, usize::MAX);
        assert_eq!(VALUE.with(Cell::get), 10);
    });
}

#[test]
fn block_on_and_scoped_fibers_have_their_own_values() {
    watchdog(30, || {
        let rt = runtime(2, "local-scoped");
        rt.block_on(|| {
            VALUE.with(|v| v.set(1));
            fiber::scope(|s| {
                for i in 0..8 {
                    s.spawn(move || {
                        assert_eq!(VALUE.with(Cell::get), usize::MAX);
                        VALUE.with(|v| v.set(100 + i));
                        fiber::yield_now();
                        assert_eq!(VALUE.with(Cell::get), 100 + i);
                    });
                }
            });
            // A nested block_on runs in another fiber.
            let nested = fiber::run(|| VALUE.with(Cell::get));
            assert_eq!(nested, usize::MAX);
            assert_eq!(VALUE.with(Cell::get), 1);
        });
    });
}
