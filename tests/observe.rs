//! Dumps (`fiber::dump()`): every wait reason is reported with its data while many fibers wait
//! that way, lock owners are right, wait-for cycles are found (and not imagined under
//! contention), the JSON parses, the global deadlock report and `FIBER_DUMP_SIGNAL` work (child
//! processes). docs/observability.md.
//!
//! Tests run in parallel in this binary and a dump covers every runtime of the process, so each
//! test looks only at the fibers it spawned (by id).
mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::{mpmc, Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};
use fiber::{FiberId, FiberInfo, FiberState, WaitReason};
use support::{runtime, watchdog};

/// How many fibers wait in each way.
const N: usize = 10_000;

/// Takes dumps until `done` holds for the fibers of `ids` (all found, all passing), or panics
/// after 20 s with the last dump's view of them.
fn dump_until(ids: &HashSet<FiberId>, mut done: impl FnMut(&[&FiberInfo]) -> bool) -> fiber::Dump {
    let start = Instant::now();
    loop {
        let dump = fiber::dump();
        let mine: Vec<&FiberInfo> = dump.fibers().filter(|f| ids.contains(&f.id())).collect();
        if mine.len() == ids.len() && done(&mine) {
            return dump;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let sample: Vec<_> = mine.iter().take(5).collect();
            panic!(
                "dump never matched: {} of {} fibers found; sample {sample:#?}",
                mine.len(),
                ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ids_of<T>(handles: &[fiber::JoinHandle<T>]) -> HashSet<FiberId> {
    handles.iter().map(|h| h.fiber().id()).collect()
}

fn all_wait(fibers: &[&FiberInfo], check: impl Fn(&WaitReason) -> bool) -> bool {
    fibers
        .iter()
        .all(|f| f.state() == FiberState::Waiting && f.reason().is_some_and(&check))
}

/// The line of the caller, to compare park sites with.
#[track_caller]
fn line() -> u32 {
    std::panic::Location::caller().line()
}

#[test]
fn park_sleep_and_join_waits_are_reported() {
    watchdog(120, || {
        let rt = runtime(2, "obs-park");
        let stop = Arc::new(AtomicBool::new(false));
        // The spawn and the park below, as formatted.
        let (spawn_line, park_line) = (line() + 4, line() + 6);
        let parked: Vec<_> = (0..N)
            .map(|_| {
                let stop = stop.clone();
                rt.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        fiber::park()
                    }
                })
            })
            .collect();
        let sleepers: Vec<_> = (0..N)
            .map(|_| rt.spawn(|| fiber::sleep(Duration::from_secs(3600))))
            .collect();
        let timed: Vec<_> = (0..N)
            .map(|_| rt.spawn(|| fiber::park_timeout(Duration::from_secs(3600))))
            .collect();
        // Joiners, each joining a target of its own that parks until told.
        let targets: Vec<_> = (0..N)
            .map(|_| {
                let stop = stop.clone();
                rt.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        fiber::park()
                    }
                })
            })
            .collect();
        let target_ids: Vec<FiberId> = targets.iter().map(|h| h.fiber().id()).collect();
        let joiners: Vec<_> = targets
            .into_iter()
            .map(|t| rt.spawn(move || t.join().is_ok()))
            .collect();

        let ids = ids_of(&parked);
        let dump = dump_until(&ids, |f| all_wait(f, |r| *r == WaitReason::Park));
        let one = dump.fiber(parked[0].fiber().id()).unwrap();
        let site = one.park_site().expect("park records its site");
        assert_eq!((site.file(), site.line()), (file!(), park_line));
        assert_eq!(
            one.spawn_site().line(),
            spawn_line,
            "spawned by rt.spawn above"
        );

        let ids = ids_of(&sleepers);
        let later = Instant::now() + Duration::from_secs(3000);
        dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::Sleep { until } if *until > later),
            )
        });
        let ids = ids_of(&timed);
        dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::ParkTimeout { until } if *until > later),
            )
        });
        let ids = ids_of(&joiners);
        let dump = dump_until(&ids, |f| {
            all_wait(f, |r| matches!(r, WaitReason::Join { .. }))
        });
        for (joiner, target) in joiners.iter().zip(&target_ids) {
            let info = dump.fiber(joiner.fiber().id()).unwrap();
            assert_eq!(info.reason(), Some(&WaitReason::Join { fiber: *target }));
        }
        stop.store(true, Ordering::SeqCst);
        for h in &parked {
            h.fiber().unpark();
        }
        drop(rt);
    });
}

#[test]
fn lock_waits_name_the_lock_and_its_owner() {
    watchdog(120, || {
        let rt = runtime(2, "obs-lock");
        let mutex = Arc::new(Mutex::new(0u32));
        let rw = Arc::new(RwLock::new(0u32));
        let (held_tx, held_rx) = mpmc::bounded::<()>(0);
        let release = Arc::new(Semaphore::new(0));
        // One holder of both locks.
        let holder = {
            let (mutex, rw, release) = (mutex.clone(), rw.clone(), release.clone());
            rt.spawn(move || {
                let _m = mutex.lock().unwrap();
                let _w = rw.write().unwrap();
                held_tx.send(()).unwrap();
                drop(release.acquire());
            })
        };
        held_rx.recv().unwrap();
        let holder_id = holder.fiber().id();
        let lock_line = line() + 5;
        let waiters: Vec<_> = (0..N)
            .map(|_| {
                let mutex = mutex.clone();
                rt.spawn(move || {
                    *mutex.lock().unwrap() += 1;
                })
            })
            .collect();
        let readers: Vec<_> = (0..N / 10)
            .map(|_| {
                let rw = rw.clone();
                rt.spawn(move || *rw.read().unwrap())
            })
            .collect();
        let writers: Vec<_> = (0..10)
            .map(|_| {
                let rw = rw.clone();
                rt.spawn(move || *rw.write().unwrap() += 1)
            })
            .collect();
        let ids = ids_of(&waiters);
        let dump = dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::Mutex { owner: Some(o), .. } if *o == holder_id),
            )
        });
        let lock_addr = match dump.fiber(waiters[0].fiber().id()).unwrap().reason() {
            Some(WaitReason::Mutex { lock, .. }) => *lock,
            other => panic!("{other:?}"),
        };
        assert!(dump.fibers().filter(|f| ids.contains(&f.id())).all(
            |f| matches!(f.reason(), Some(WaitReason::Mutex { lock, .. }) if *lock == lock_addr)
                && f.park_site().map(|s| s.line()) == Some(lock_line)
        ));
        let ids = ids_of(&readers);
        dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::RwLockRead { writer: Some(o), .. } if *o == holder_id),
            )
        });
        let ids = ids_of(&writers);
        dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::RwLockWrite { writer: Some(o), .. } if *o == holder_id),
            )
        });
        // The holder itself waits on the semaphore.
        let ids: HashSet<_> = [holder_id].into();
        dump_until(&ids, |f| {
            all_wait(f, |r| matches!(r, WaitReason::Semaphore { .. }))
        });
        release.add_permits(1);
        holder.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*mutex.lock().unwrap(), N as u32);
        for r in readers {
            r.join().unwrap();
        }
        for w in writers {
            w.join().unwrap();
        }

        // A plain thread as the owner: the id `current()` gives it.
        let mutex = Arc::new(Mutex::new(()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let thread = {
            let mutex = mutex.clone();
            std::thread::spawn(move || {
                let _g = mutex.lock().unwrap();
                tx.send(fiber::current().id()).unwrap();
                go_rx.recv().unwrap();
            })
        };
        let thread_id = rx.recv().unwrap();
        let waiter = {
            let mutex = mutex.clone();
            rt.spawn(move || drop(mutex.lock().unwrap()))
        };
        let ids: HashSet<_> = [waiter.fiber().id()].into();
        dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::Mutex { owner: Some(o), .. } if *o == thread_id),
            )
        });
        go_tx.send(()).unwrap();
        thread.join().unwrap();
        waiter.join().unwrap();
    });
}

#[test]
fn sync_primitive_waits_are_reported() {
    watchdog(120, || {
        let rt = runtime(2, "obs-sync");
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let cv: Vec<_> = (0..N)
            .map(|_| {
                let pair = pair.clone();
                rt.spawn(move || {
                    let (m, c) = &*pair;
                    let _g = c.wait_while(m.lock().unwrap(), |go| !*go).unwrap();
                })
            })
            .collect();
        let sem = Arc::new(Semaphore::new(0));
        let sems: Vec<_> = (0..N)
            .map(|_| {
                let sem = sem.clone();
                rt.spawn(move || sem.acquire().forget())
            })
            .collect();
        let barrier = Arc::new(Barrier::new(N + 1));
        let bars: Vec<_> = (0..N)
            .map(|_| {
                let barrier = barrier.clone();
                rt.spawn(move || {
                    barrier.wait();
                })
            })
            .collect();
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let wgs: Vec<_> = (0..N)
            .map(|_| {
                let wg = wg.clone();
                rt.spawn(move || wg.wait())
            })
            .collect();
        let addr = |p: *const ()| p as usize;
        let cv_addr = addr(&pair.1 as *const Condvar as *const ());
        dump_until(&ids_of(&cv), |f| {
            all_wait(f, |r| *r == WaitReason::Condvar { condvar: cv_addr })
        });
        let sem_addr = addr(&*sem as *const Semaphore as *const ());
        dump_until(&ids_of(&sems), |f| {
            all_wait(f, |r| {
                *r == WaitReason::Semaphore {
                    semaphore: sem_addr,
                }
            })
        });
        let bar_addr = addr(&*barrier as *const Barrier as *const ());
        dump_until(&ids_of(&bars), |f| {
            all_wait(f, |r| *r == WaitReason::Barrier { barrier: bar_addr })
        });
        let wg_addr = addr(&*wg as *const WaitGroup as *const ());
        dump_until(&ids_of(&wgs), |f| {
            all_wait(f, |r| *r == WaitReason::WaitGroup { group: wg_addr })
        });
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        sem.add_permits(N);
        barrier.wait();
        wg.done();
        for h in cv.into_iter().chain(sems).chain(bars).chain(wgs) {
            h.join().unwrap();
        }
    });
}

#[test]
fn channel_and_blocking_waits_are_reported() {
    watchdog(120, || {
        let rt = runtime(2, "obs-chan");
        let (tx, rx) = mpmc::bounded::<u32>(0);
        let receivers: Vec<_> = (0..N)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || rx.recv().unwrap())
            })
            .collect();
        let (full_tx, full_rx) = mpmc::bounded::<u32>(0);
        let senders: Vec<_> = (0..N)
            .map(|i| {
                let tx = full_tx.clone();
                rt.spawn(move || tx.send(i as u32).unwrap())
            })
            .collect();
        let (std_tx, std_rx) = fiber::sync::mpsc::channel::<u32>();
        let std_rx = Arc::new(std::sync::Mutex::new(Some(std_rx)));
        let mpsc_receiver = {
            let std_rx = std_rx.clone();
            rt.spawn(move || {
                let rx = std_rx.lock().unwrap().take().unwrap();
                rx.recv().unwrap()
            })
        };
        let release = Arc::new(AtomicBool::new(false));
        let blocking: Vec<_> = (0..8)
            .map(|_| {
                let release = release.clone();
                rt.spawn(move || {
                    fiber::spawn_blocking(move || {
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                })
            })
            .collect();
        let ids = ids_of(&receivers);
        let dump = dump_until(&ids, |f| {
            all_wait(f, |r| matches!(r, WaitReason::ChannelRecv { .. }))
        });
        let channels: HashSet<_> = dump
            .fibers()
            .filter(|f| ids.contains(&f.id()))
            .map(|f| format!("{:?}", f.reason()))
            .collect();
        assert_eq!(channels.len(), 1, "one channel: {channels:?}");
        dump_until(&ids_of(&senders), |f| {
            all_wait(f, |r| matches!(r, WaitReason::ChannelSend { .. }))
        });
        let ids: HashSet<_> = [mpsc_receiver.fiber().id()].into();
        dump_until(&ids, |f| {
            all_wait(f, |r| matches!(r, WaitReason::ChannelRecv { .. }))
        });
        dump_until(&ids_of(&blocking), |f| {
            all_wait(f, |r| *r == WaitReason::Blocking)
        });
        for i in 0..N {
            tx.send(i as u32).unwrap();
            full_rx.recv().unwrap();
        }
        std_tx.send(7).unwrap();
        release.store(true, Ordering::SeqCst);
        for h in receivers {
            h.join().unwrap();
        }
        for h in senders {
            h.join().unwrap();
        }
        assert_eq!(mpsc_receiver.join().unwrap(), 7);
        for h in blocking {
            h.join().unwrap();
        }
    });
}

#[test]
fn fd_waits_name_the_fd_and_the_peer() {
    watchdog(120, || {
        let rt = runtime(2, "obs-fd");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const CONNS: usize = 200;
        let readers: Vec<_> = (0..CONNS)
            .map(|_| {
                rt.spawn(move || {
                    let mut s = fiber::net::TcpStream::connect(addr).unwrap();
                    let mut buf = [0u8; 1];
                    let local = s.local_addr().unwrap();
                    (std::io::Read::read(&mut s, &mut buf).unwrap(), local)
                })
            })
            .collect();
        let accepted: Vec<_> = (0..CONNS).map(|_| listener.accept().unwrap()).collect();
        let ids = ids_of(&readers);
        let dump = dump_until(&ids, |f| {
            all_wait(
                f,
                |r| matches!(r, WaitReason::FdRead { fd, peer: Some(p) } if *fd >= 0 && *p == addr),
            )
        });
        assert!(dump.to_string().contains("readable, peer 127.0.0.1"));
        for (mut s, _) in accepted {
            std::io::Write::write_all(&mut s, b"x").unwrap();
        }
        for h in readers {
            assert_eq!(h.join().unwrap().0, 1);
        }
    });
}

#[cfg(feature = "hook")]
#[test]
fn hooked_libc_calls_name_the_function_and_fd() {
    watchdog(120, || {
        let rt = runtime(2, "obs-hook");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const CONNS: usize = 100;
        // std's blocking TcpStream, unchanged: its read is interposed (docs/hook.md).
        let readers: Vec<_> = (0..CONNS)
            .map(|_| {
                rt.spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    let mut buf = [0u8; 1];
                    std::io::Read::read(&mut s, &mut buf).unwrap()
                })
            })
            .collect();
        let accepted: Vec<_> = (0..CONNS).map(|_| listener.accept().unwrap()).collect();
        dump_until(&ids_of(&readers), |f| {
            all_wait(f, |r| {
                matches!(r, WaitReason::Hook { function, fd: Some(fd) }
                    if (*function == "recv" || *function == "read") && *fd >= 0)
            })
        });
        for (mut s, _) in accepted {
            std::io::Write::write_all(&mut s, b"x").unwrap();
        }
        for h in readers {
            assert_eq!(h.join().unwrap(), 1);
        }
    });
}

#[test]
fn scope_and_group_owners_are_reported() {
    watchdog(60, || {
        let rt = runtime(2, "obs-scope");
        let stop = Arc::new(AtomicBool::new(false));
        let owner = {
            let stop = stop.clone();
            rt.spawn(move || {
                fiber::scope(|s| {
                    s.spawn(|| {
                        while !stop.load(Ordering::SeqCst) {
                            fiber::sleep(Duration::from_millis(1));
                        }
                    });
                })
            })
        };
        let ids: HashSet<_> = [owner.fiber().id()].into();
        dump_until(&ids, |f| all_wait(f, |r| *r == WaitReason::Scope));
        stop.store(true, Ordering::SeqCst);
        owner.join().unwrap();
    });
}

/// `n` fibers, each holding mutex `i` and then locking mutex `i + 1` (mod `n`): a cycle of `n`.
/// Returns their ids; the fibers stay deadlocked until the runtime is dropped.
fn deadlock_ring(rt: &fiber::Runtime, n: usize) -> Vec<FiberId> {
    let locks: Arc<Vec<Mutex<()>>> = Arc::new((0..n).map(|_| Mutex::new(())).collect());
    let all_hold = Arc::new(Barrier::new(n));
    (0..n)
        .map(|i| {
            let (locks, all_hold) = (locks.clone(), all_hold.clone());
            fiber::Builder::new()
                .name(format!("ring{n}-{i}"))
                .spawn_on(rt, move || {
                    let _mine = locks[i].lock().unwrap();
                    all_hold.wait();
                    let _next = locks[(i + 1) % n].lock().unwrap();
                })
                .unwrap()
                .fiber()
                .id()
        })
        .collect()
}

fn cycle_of(ids: &[FiberId]) -> Option<fiber::Cycle> {
    let set: HashSet<_> = ids.iter().copied().collect();
    let start = Instant::now();
    loop {
        let dump = fiber::dump();
        if let Some(c) = dump
            .cycles()
            .iter()
            .find(|c| c.fibers().iter().any(|f| set.contains(f)))
        {
            return Some(c.clone());
        }
        if start.elapsed() > Duration::from_secs(20) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cycles_of_two_and_five_are_found() {
    watchdog(60, || {
        let rt = runtime(2, "obs-cycle");
        for n in [2, 5] {
            let ids = deadlock_ring(&rt, n);
            let cycle = cycle_of(&ids).expect("the cycle is found");
            let mut found = cycle.fibers().to_vec();
            found.sort();
            let mut want = ids.clone();
            want.sort();
            assert_eq!(found, want, "exactly the ring's fibers");
            // In wait order: each waits for the next.
            let dump = fiber::dump();
            let f = cycle.fibers();
            for (i, id) in f.iter().enumerate() {
                let info = dump.fiber(*id).unwrap();
                assert_eq!(
                    info.reason().and_then(WaitReason::waits_for),
                    Some(f[(i + 1) % f.len()])
                );
            }
            let text = dump.to_string();
            assert!(text.contains(&format!("ring{n}-0")), "{text}");
        }
        // A join edge in a cycle: a fiber holding a lock joins one that waits for the lock.
        let lock = Arc::new(Mutex::new(()));
        let (tx, rx) = mpmc::bounded::<fiber::JoinHandle<()>>(1);
        let a = {
            let lock = lock.clone();
            rt.spawn(move || {
                let _g = lock.lock().unwrap();
                let b = rx.recv().unwrap();
                b.join().unwrap();
            })
        };
        let b = {
            let lock = lock.clone();
            rt.spawn(move || {
                fiber::sleep(Duration::from_millis(20));
                drop(lock.lock().unwrap());
            })
        };
        let ids = [a.fiber().id(), b.fiber().id()];
        tx.send(b).unwrap();
        let cycle = cycle_of(&ids).expect("the join cycle is found");
        assert_eq!(cycle.fibers().len(), 2);
        drop(a);
        drop(rt); // shutdown cancels the deadlocked fibers
    });
}

#[test]
fn no_false_cycles_under_contention() {
    watchdog(120, || {
        let rt = runtime(2, "obs-contend");
        let locks: Arc<Vec<Mutex<u64>>> = Arc::new((0..4).map(|_| Mutex::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        // Always in index order: no deadlock is possible, yet owners change all the time.
        let workers: Vec<_> = (0..64)
            .map(|i| {
                let (locks, stop, rounds) = (locks.clone(), stop.clone(), rounds.clone());
                rt.spawn(move || {
                    let mut k = i;
                    while !stop.load(Ordering::Relaxed) {
                        let a = k % 4;
                        let b = a + 1 + (k / 4) % (3 - a.min(2));
                        let b = b.min(3);
                        let _x = locks[a].lock().unwrap();
                        if b > a {
                            let mut y = locks[b].lock().unwrap();
                            *y += 1;
                        }
                        if k % 7 == 0 {
                            fiber::yield_now();
                        }
                        k += 1;
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let ids = ids_of(&workers);
        let mut dumps = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let dump = fiber::dump();
            for c in dump.cycles() {
                assert!(
                    !c.fibers().iter().any(|f| ids.contains(f)),
                    "false cycle {c:?} in\n{dump}"
                );
            }
            dumps += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        assert!(dumps > 10, "only {dumps} dumps");
        assert!(rounds.load(Ordering::Relaxed) > 1000);
    });
}

#[test]
fn the_json_parses() {
    watchdog(60, || {
        let rt = runtime(2, "obs-json");
        let ids = deadlock_ring(&rt, 2);
        let named = fiber::Builder::new()
            .name("quote \" and \\ and \n newline".into())
            .spawn_on(&rt, || fiber::sleep(Duration::from_secs(3600)))
            .unwrap();
        cycle_of(&ids).expect("cycle");
        let dump = fiber::dump();
        let json = dump.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let root = &v["fiberDump"];
        assert!(root["processId"].is_string());
        let containers = root["fiberContainers"].as_array().unwrap();
        let fibers: Vec<&serde_json::Value> = containers
            .iter()
            .flat_map(|c| c["fibers"].as_array().unwrap())
            .collect();
        assert_eq!(fibers.len(), dump.fibers().count());
        let me = fibers
            .iter()
            .find(|f| f["tid"].as_str() == Some(&*named.fiber().id().as_u64().to_string()))
            .expect("the named fiber");
        assert_eq!(me["name"], "quote \" and \\ and \n newline");
        assert_eq!(me["waitingOn"]["kind"], "sleep");
        assert!(me["spawnSite"].as_str().unwrap().contains("observe.rs"));
        let cycles = root["cycles"].as_array().unwrap();
        let want: HashSet<String> = ids.iter().map(|i| i.as_u64().to_string()).collect();
        assert!(cycles.iter().any(|c| c["fibers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| want.contains(f.as_str().unwrap()))));
        let ring = fibers
            .iter()
            .find(|f| f["tid"].as_str() == Some(&*ids[0].as_u64().to_string()))
            .unwrap();
        assert_eq!(ring["waitingOn"]["kind"], "mutex");
        assert_eq!(ring["waitingOn"]["owner"], ids[1].as_u64().to_string());
        named.fiber().cancel();
        drop(rt);
    });
}

#[test]
fn a_dump_works_while_a_worker_is_stuck() {
    watchdog(60, || {
        let rt = runtime(1, "obs-stuck");
        let parked: Vec<_> = (0..100).map(|_| rt.spawn(|| fiber::park())).collect();
        // Listed once the worker has published them (it does before it sleeps).
        dump_until(&ids_of(&parked), |f| {
            all_wait(f, |r| *r == WaitReason::Park)
        });
        let spin = Arc::new(AtomicBool::new(true));
        let spinning = Arc::new(AtomicBool::new(false));
        let spinner = {
            let (spin, spinning) = (spin.clone(), spinning.clone());
            rt.spawn(move || {
                spinning.store(true, Ordering::SeqCst);
                while spin.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        while !spinning.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The only worker is in the spinner's loop: the dump must not need it. The spinner started
        // after the worker's last registry pass: counted as not listed, or listed as running.
        let dump = dump_until(&ids_of(&parked), |f| {
            all_wait(f, |r| *r == WaitReason::Park)
        });
        match dump.fiber(spinner.fiber().id()) {
            Some(info) => assert_eq!(info.state(), FiberState::Running),
            None => assert!(dump.unlisted() >= 1, "{dump}"),
        }
        spin.store(false, Ordering::SeqCst);
        spinner.join().unwrap();
        for p in &parked {
            p.fiber().unpark();
        }
        for p in parked {
            p.join().unwrap();
        }
    });
}

/// The child side of the process tests below; does nothing unless the parent set the variable.
#[test]
fn child_process() {
    match std::env::var("FIBER_OBSERVE_CHILD").as_deref() {
        Ok("deadlock") => {
            // The parent kills this child; should the parent die first, do not deadlock forever.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(120));
                std::process::exit(3);
            });
            // A global deadlock: the caller waits for a fiber that can never finish.
            fiber::run(|| {
                let a = Arc::new(Mutex::new(()));
                let b = Arc::new(Mutex::new(()));
                let both = Arc::new(Barrier::new(2));
                let spawn = |name: &str, x: Arc<Mutex<()>>, y: Arc<Mutex<()>>| {
                    let both = both.clone();
                    fiber::Builder::new()
                        .name(name.into())
                        .spawn(move || {
                            let _x = x.lock().unwrap();
                            both.wait();
                            drop(y.lock().unwrap());
                        })
                        .unwrap()
                };
                let one = spawn("left", a.clone(), b.clone());
                let two = spawn("right", b, a);
                one.join().unwrap();
                two.join().unwrap();
            });
        }
        Ok("signal") => {
            let _sleeper = fiber::Builder::new()
                .name("signal-sleeper".into())
                .spawn(|| fiber::sleep(Duration::from_secs(3600)))
                .unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => {}
    }
}

/// Runs this binary's `child_process` test with `FIBER_OBSERVE_CHILD=which`; returns the child
/// and its stderr lines.
fn child(
    which: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("FIBER_OBSERVE_CHILD", which)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Collects lines until one contains `want` (true) or 30 s pass (false).
fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    all: &mut Vec<String>,
    want: &str,
) -> bool {
    wait_for_line_within(rx, all, want, Duration::from_secs(30))
}

#[test]
fn a_global_deadlock_is_reported_on_stderr() {
    watchdog(60, || {
        let (mut child, rx) = child("deadlock", &[]);
        let mut lines = Vec::new();
        let found = wait_for_line(&rx, &mut lines, "all fibers are asleep - deadlock!");
        let cycle = found && wait_for_line(&rx, &mut lines, "\"right\" waits for Mutex");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found && cycle, "stderr:\n{}", lines.join("\n"));
        let text = lines.join("\n");
        assert!(
            text.contains("deadlock 1: 2 fibers wait for each other"),
            "{text}"
        );
        assert!(text.contains("\"left\" waits for Mutex"), "{text}");
    });
}

#[test]
fn the_dump_signal_writes_a_dump_to_stderr() {
    watchdog(60, || {
        let (mut child, rx) = child("signal", &[("FIBER_DUMP_SIGNAL", "usr1")]);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the child ended early"
            );
        }
        let mut lines = Vec::new();
        let mut found = false;
        // The sleeper may need a registry pass first: signal until it shows.
        for _ in 0..20 {
            // SAFETY: kill(2) with a pid of our own child and a valid signal.
            unsafe { libc_kill(child.id() as i32, 10) };
            if wait_for_line_within(
                &rx,
                &mut lines,
                "\"signal-sleeper\"",
                Duration::from_millis(500),
            ) {
                found = true;
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "stderr:\n{}", lines.join("\n"));
        assert!(lines.iter().any(|l| l.contains("fiber dump:")));
    });
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn wait_for_line_within(
    rx: &std::sync::mpsc::Receiver<String>,
    all: &mut Vec<String>,
    want: &str,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(want);
                all.push(line);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}
