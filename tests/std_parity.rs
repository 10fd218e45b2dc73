//! std parity: the names `std::thread` and `std::sync` have, under `fiber::thread` and
//! `fiber::sync`, each behaving as std's inside fibers and on plain threads.
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{LazyLock, Mutex, Once, OnceLock, RwLock, RwLockReadGuard};
use fiber::thread;
use support::{both, both_timeout, payload_text, runtime, watchdog, Mode};

/// Every item a `use std::thread::...` or `use std::sync::...` line may name, under fiber's
/// modules: this file does not compile if one goes missing.
#[test]
fn std_names_resolve_under_fibers_modules() {
    #[allow(unused_imports)]
    use fiber::sync::mpsc::{
        channel, sync_channel, Receiver, RecvError, RecvTimeoutError, SendError, Sender,
        SyncSender, TryRecvError, TrySendError,
    };
    #[allow(unused_imports)]
    use fiber::sync::{
        atomic, mpsc, Arc as _, Barrier, BarrierWaitResult, Condvar, LockResult, MutexGuard,
        OnceState, PoisonError, RwLockWriteGuard, TryLockError, TryLockResult, WaitTimeoutResult,
        Weak,
    };
    #[allow(unused_imports)]
    use fiber::thread::{
        available_parallelism, current, panicking, park, park_timeout, scope, sleep, sleep_until,
        spawn, yield_now, AccessError, Builder, JoinHandle, LocalKey, Result, Scope,
        ScopedJoinHandle, Thread, ThreadId,
    };
    // Methods std has, named as values so that a missing one fails to compile.
    let _ = RwLockWriteGuard::<u8>::downgrade;
    let _ = LazyLock::<u8>::force_mut;
    let _ = LazyLock::<u8>::get;
    let _ = LazyLock::<u8>::get_mut;
    let _ = JoinHandle::<()>::thread;
    let _ = JoinHandle::<()>::is_finished;
    let _ = Thread::id;
    let _ = Thread::name;
    let _ = Thread::unpark;
    let _ = Once::call_once::<fn()>;
    let _ = Once::call_once_force::<fn(&OnceState)>;
    let _ = Once::is_completed;
    let _ = OnceState::is_poisoned;
    let _ = fiber::os::unix::net::UnixListener::bind_addr;
    let _ = fiber::os::unix::net::UnixStream::connect_addr;
    let _ = fiber::os::unix::net::UnixDatagram::bind_addr;
    let _ = fiber::os::unix::net::UnixDatagram::connect_addr;
    let _ = fiber::os::unix::net::UnixDatagram::send_to_addr;
    fn eq<T: Eq>() {}
    eq::<OnceLock<u8>>();
    // The aliases are fiber's own types, so both spellings mix.
    let t: thread::Thread = thread::current();
    let f: fiber::Fiber = t.clone();
    let id: thread::ThreadId = f.id();
    let same: fiber::FiberId = t.id();
    assert_eq!(id, same);
}

/// std's read guard is covariant in `T`; a guard of a longer-lived type coerces to a shorter one.
#[test]
fn a_read_guard_is_covariant() {
    fn shorten<'a>(g: RwLockReadGuard<'static, &'static str>) -> RwLockReadGuard<'a, &'a str> {
        g
    }
    let lock = Box::leak(Box::new(RwLock::new("static")));
    assert_eq!(*shorten(lock.read().unwrap()), "static");
}

/// A `OnceLock` may hold a borrow of a local declared after it (dropped first), as std's, which
/// gets there with `#[may_dangle]`; fiber's cell has no `Drop` impl of its own for this.
#[test]
fn a_once_lock_may_hold_a_borrow_that_dies_first() {
    let cell = OnceLock::new();
    let local = String::from("borrowed");
    cell.set(&local).unwrap();
    assert_eq!(cell.get().map(|s| s.as_str()), Some("borrowed"));
}

#[test]
fn once_locks_compare_as_std_does() {
    let (a, b) = (OnceLock::new(), OnceLock::new());
    assert_eq!(a, b, "two empty cells are equal");
    a.set(1).unwrap();
    assert_ne!(a, b);
    b.set(1).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, OnceLock::from(2));
}

#[test]
fn once_runs_its_closure_once_while_the_others_park() {
    both(|mode| {
        for _ in 0..20 {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (once, runs) = (once.clone(), runs.clone());
                    mode.spawn(move || {
                        once.call_once(|| {
                            fiber::sleep(Duration::from_millis(2));
                            runs.fetch_add(1, Ordering::SeqCst);
                        });
                        // Nobody returns before the closure has finished.
                        assert!(once.is_completed());
                        assert_eq!(runs.load(Ordering::SeqCst), 1);
                    })
                })
                .collect();
            tasks.into_iter().for_each(|t| t.join());
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    });
}

#[test]
fn a_panicking_closure_poisons_the_once_and_force_sees_it() {
    both(|_| {
        let once = Once::new();
        let r = std::panic::catch_unwind(|| once.call_once(|| panic!("first try fails")));
        assert_eq!(payload_text(&*r.unwrap_err()), "first try fails");
        assert!(!once.is_completed());
        let r = std::panic::catch_unwind(|| once.call_once(|| unreachable!("poisoned: not run")));
        assert_eq!(
            payload_text(&*r.unwrap_err()),
            "Once instance has previously been poisoned"
        );
        let r = std::panic::catch_unwind(|| once.wait());
        assert!(r.is_err(), "wait on a poisoned Once panics");
        let mut saw_poison = None;
        once.call_once_force(|state| saw_poison = Some(state.is_poisoned()));
        assert_eq!(saw_poison, Some(true));
        assert!(once.is_completed());
        once.call_once_force(|_| unreachable!("complete: not run again"));
        once.wait();
    });
}

#[test]
fn once_wait_parks_until_another_completes_it() {
    both(|mode| {
        let once = Arc::new(Once::new());
        let done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (once, done) = (once.clone(), done.clone());
            mode.spawn(move || {
                once.wait();
                assert!(done.load(Ordering::SeqCst), "woken before completion");
            })
        };
        fiber::sleep(Duration::from_millis(20));
        once.call_once(|| done.store(true, Ordering::SeqCst));
        waiter.join();
    });
}

#[test]
fn lazy_lock_gives_mutable_access_and_peeks() {
    both(|_| {
        let mut lazy = LazyLock::new(|| vec![1]);
        assert_eq!(LazyLock::get(&lazy), None, "get does not initialise");
        assert_eq!(LazyLock::get_mut(&mut lazy), None);
        LazyLock::force_mut(&mut lazy).push(2);
        lazy.push(3); // DerefMut
        assert_eq!(LazyLock::get(&lazy), Some(&vec![1, 2, 3]));
        LazyLock::get_mut(&mut lazy).unwrap().clear();
        assert!(lazy.is_empty());

        let mut poisoned: LazyLock<u8> = LazyLock::new(|| panic!("init fails"));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            *LazyLock::force_mut(&mut poisoned)
        }));
        assert_eq!(payload_text(&*r.unwrap_err()), "init fails");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            *LazyLock::force_mut(&mut poisoned)
        }));
        assert_eq!(
            payload_text(&*r.unwrap_err()),
            "LazyLock instance has previously been poisoned"
        );
    });
}

#[test]
fn a_name_with_a_nul_byte_panics_at_spawn_as_std() {
    both(|_| {
        let r =
            std::panic::catch_unwind(|| thread::Builder::new().name("a\0b".into()).spawn(|| {}));
        let std_r = std::panic::catch_unwind(|| {
            std::thread::Builder::new().name("a\0b".into()).spawn(|| {})
        });
        let (ours, std) = (r.unwrap_err(), std_r.unwrap_err());
        assert_eq!(payload_text(&*ours), payload_text(&*std));
        let scoped = std::panic::catch_unwind(|| {
            thread::scope(|s| {
                let _ = thread::Builder::new()
                    .name("\0".into())
                    .spawn_scoped(s, || {});
            })
        });
        assert!(scoped.is_err(), "spawn_scoped checks the name too");
    });
}

#[test]
fn the_thread_functions_answer_as_std() {
    both(|mode| {
        assert!(thread::available_parallelism().unwrap().get() >= 1);
        assert!(!thread::panicking());
        struct CheckOnDrop(Arc<AtomicBool>);
        impl Drop for CheckOnDrop {
            fn drop(&mut self) {
                self.0.store(thread::panicking(), Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicBool::new(false));
        let seen2 = seen.clone();
        let r = mode
            .spawn(move || {
                std::panic::catch_unwind(move || {
                    let _check = CheckOnDrop(seen2);
                    panic!("unwinding");
                })
                .is_err()
            })
            .join();
        assert!(r);
        assert!(seen.load(Ordering::SeqCst), "panicking() during an unwind");

        let me = thread::current();
        let h = thread::Builder::new()
            .name("named".into())
            .spawn(|| thread::current().id())
            .unwrap();
        let id = h.thread().id();
        assert_eq!(h.thread().name(), Some("named"));
        assert_eq!(h.join().unwrap(), id);
        assert_ne!(id, me.id());

        let total = thread::scope(|s| {
            let h = thread::Builder::new()
                .name("scoped".into())
                .spawn_scoped(s, || thread::current().name().map(str::to_owned))
                .unwrap();
            h.join().unwrap()
        });
        assert_eq!(total.as_deref(), Some("scoped"));

        fiber::fiber_local! { static KEY: std::cell::Cell<u32> = std::cell::Cell::new(5); }
        assert_eq!(KEY.try_with(|v| v.get()), Ok(5));
    });
}

#[test]
fn sleep_until_waits_for_the_deadline_and_not_for_the_past() {
    both(|_| {
        let start = Instant::now();
        thread::sleep_until(start - Duration::from_millis(1).min(start.elapsed()));
        thread::sleep_until(start);
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "a past deadline returns at once"
        );
        let deadline = Instant::now() + Duration::from_millis(30);
        thread::sleep_until(deadline);
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn sleep_until_parks_only_the_fiber() {
    watchdog(20, || {
        let rt = runtime(1, "sleep-until");
        let ticks = rt.block_on(|| {
            let ticks = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, stop) = (ticks.clone(), stop.clone());
                fiber::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        ticks.fetch_add(1, Ordering::SeqCst);
                        fiber::sleep(Duration::from_millis(1));
                    }
                })
            };
            thread::sleep_until(Instant::now() + Duration::from_millis(100));
            stop.store(true, Ordering::SeqCst);
            ticker.join().unwrap();
            ticks.load(Ordering::SeqCst)
        });
        assert!(
            ticks >= 5,
            "the one worker ran the ticker meanwhile ({ticks} ticks)"
        );
    });
}

/// A started fiber cannot move to an idle worker, so a fiber that spins on a `try_` call waits
/// for the fiber it polls to run on the same worker: the cooperative budget must yield it.
#[test]
fn spinning_on_try_calls_lets_the_other_fiber_run() {
    watchdog(60, || {
        for round in 0..20 {
            let rt = runtime(1, "spin");
            rt.block_on(|| {
                let (tx, rx) = fiber::sync::mpsc::channel();
                let lock = Arc::new(Mutex::new(0));
                let cell = Arc::new(OnceLock::new());
                let once = Arc::new(Once::new());
                let held = lock.lock().unwrap();
                let producer = {
                    let (lock, cell, once) = (lock.clone(), cell.clone(), once.clone());
                    fiber::spawn(move || {
                        for i in 0..10 {
                            tx.send(i).unwrap();
                        }
                        drop(tx);
                        cell.set(round).unwrap();
                        once.call_once(|| {});
                        // Blocks until the spinner below dropped `held`.
                        *lock.lock().unwrap() += 1;
                    })
                };
                let mut got = Vec::new();
                while got.len() < 10 {
                    got.extend(rx.try_iter());
                }
                assert_eq!(got, (0..10).collect::<Vec<_>>());
                while cell.get().is_none() {}
                while !once.is_completed() {}
                drop(held);
                loop {
                    match rx.try_recv() {
                        Err(fiber::sync::mpsc::TryRecvError::Disconnected) => break,
                        Err(fiber::sync::mpsc::TryRecvError::Empty) => {}
                        Ok(v) => panic!("unexpected value {v}"),
                    }
                }
                producer.join().unwrap();
                while lock.try_lock().map(|v| *v).unwrap_or(0) != 1 {}
            });
        }
    });
}

#[test]
fn downgrading_lets_no_writer_in_between() {
    both_timeout(30, |mode| {
        let lock = Arc::new(RwLock::new(0));
        let mut w = lock.write().unwrap();
        let writer = {
            let lock = lock.clone();
            mode.spawn(move || *lock.write().unwrap() = 2)
        };
        fiber::sleep(Duration::from_millis(20)); // the writer queues
        *w = 1;
        let r = fiber::sync::RwLockWriteGuard::downgrade(w);
        fiber::sleep(Duration::from_millis(20));
        assert_eq!(*r, 1, "the queued writer did not get in");
        drop(r);
        writer.join();
        assert_eq!(*lock.read().unwrap(), 2);
    });
}

#[test]
fn unix_sockets_take_std_socket_addresses() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;

    use fiber::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    both(|mode: Mode| {
        let dir =
            std::env::temp_dir().join(format!("fiber-parity-{}-{:?}", std::process::id(), mode));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        // Pathname and abstract addresses, for the stream pair of calls.
        let abstract_name = format!("fiber-parity-{}-{mode:?}", std::process::id());
        for addr in [
            SocketAddr::from_pathname(dir.join("stream.sock")).unwrap(),
            SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap(),
        ] {
            let listener = UnixListener::bind_addr(&addr).unwrap();
            let server = mode.spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0; 4];
                std::io::Read::read_exact(&mut s, &mut buf).unwrap();
                buf
            });
            let mut client = UnixStream::connect_addr(&addr).unwrap();
            std::io::Write::write_all(&mut client, b"ping").unwrap();
            assert_eq!(&server.join(), b"ping");
        }

        let a_addr = SocketAddr::from_pathname(dir.join("a.sock")).unwrap();
        let b_addr = SocketAddr::from_abstract_name(format!("{abstract_name}-b")).unwrap();
        let a = UnixDatagram::bind_addr(&a_addr).unwrap();
        let b = UnixDatagram::bind_addr(&b_addr).unwrap();
        a.send_to_addr(b"to-b", &b_addr).unwrap();
        let mut buf = [0; 8];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to-b");
        assert_eq!(from.as_pathname(), a_addr.as_pathname());
        b.connect_addr(&a_addr).unwrap();
        b.send(b"back").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");

        let unnamed = UnixDatagram::unbound().unwrap().local_addr().unwrap();
        let err = UnixStream::connect_addr(&unnamed).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Ports that write `use fiber as thread;` find the same names at the crate root.
#[test]
fn the_root_answers_for_use_fiber_as_thread() {
    use fiber as thread;
    both(|_| {
        assert!(thread::available_parallelism().unwrap().get() >= 1);
        assert!(!thread::panicking());
        let me: thread::Thread = thread::current();
        let id: thread::ThreadId = me.id();
        assert_eq!(thread::spawn(move || id).join().unwrap(), me.id());
        thread::sleep_until(std::time::Instant::now());
    });
}

#[test]
fn lock_guards_display_their_value() {
    let (m, rw) = (Mutex::new(7), RwLock::new("text"));
    assert_eq!(format!("{}", m.lock().unwrap()), "7");
    assert_eq!(format!("{}", rw.read().unwrap()), "text");
    assert_eq!(format!("{:>5}", rw.write().unwrap()), " text");
}

/// std's own spin patterns, on the default two workers in fibers and on plain threads: a consumer
/// spinning on `try_iter`, and readers spinning on `OnceLock::get` while another sets a box (it
/// must be dropped exactly once, with the cell).
#[test]
fn std_spin_patterns_finish_in_both_modes() {
    both_timeout(60, |mode| {
        for _ in 0..20 {
            let (tx, rx) = fiber::sync::mpsc::channel::<u32>();
            let producer = mode.spawn(move || {
                for i in 1..=20 {
                    tx.send(i).unwrap();
                    if i % 5 == 0 {
                        fiber::yield_now();
                    }
                }
            });
            let mut sum = 0;
            while sum < 210 {
                sum += rx.try_iter().sum::<u32>();
            }
            assert_eq!(sum, 210);
            producer.join();

            let drops = support::DropCounter::new();
            let cell = Arc::new(OnceLock::new());
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let cell = cell.clone();
                    mode.spawn(move || while cell.get().is_none() {})
                })
                .collect();
            let guard = drops.guard();
            let setter = {
                let cell = cell.clone();
                mode.spawn(move || cell.set(Box::new(guard)).is_ok())
            };
            assert!(setter.join());
            readers.into_iter().for_each(|r| r.join());
            assert_eq!(drops.get(), 0);
            drop(cell);
            assert_eq!(
                drops.get(),
                1,
                "the boxed value is dropped once, with the cell"
            );
        }
    });
}
