//! The cooperative budget: a fiber whose operations all succeed on their fast path (a socket that
//! always has data, `try_recv`, `try_lock`, `OnceLock::get`, `try_iter`) never blocks, yet the
//! other fibers of its worker (timers, unstarted fibers, fibers woken by I/O) still run.
//!
//! Every test runs on a one-worker runtime, so nothing but the budget can let the others in, and
//! waits for progress (never for a speed).
mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::mpsc::{self, TryRecvError};
use fiber::sync::{Mutex, OnceLock, TryLockError};
use support::{runtime, watchdog};

/// How long a spinning fiber waits for the others before the test reports starvation.
const PATIENCE: Duration = Duration::from_secs(5);

/// A plain thread that accepts one connection and writes to it as fast as it can, so that the
/// reader's receive queue stays full; it stops when the reader hangs up.
fn firehose() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let chunk = [7u8; 64 * 1024];
        while s.write_all(&chunk).is_ok() {}
    });
    (addr, writer)
}

/// Reads 64-byte records from `addr` (the receive queue always holds more, so every read
/// succeeds at once), doing ~20 µs of work for each, until `done()` or `PATIENCE` runs out.
/// Returns whether `done()` came true, and the number of reads.
fn busy_read(addr: std::net::SocketAddr, done: impl Fn() -> bool) -> (bool, u64) {
    let mut s = fiber::net::TcpStream::connect(addr).unwrap();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let mut reads = 0;
    while start.elapsed() < PATIENCE {
        if done() {
            return (true, reads);
        }
        s.read_exact(&mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
        reads += 1;
        let work = Instant::now();
        while work.elapsed() < Duration::from_micros(20) {
            std::hint::spin_loop();
        }
    }
    (done(), reads)
}

#[test]
fn a_busy_reader_lets_a_ticker_on_its_worker_run() {
    watchdog(60, || {
        let rt = runtime(1, "coop-ticker");
        let (addr, writer) = firehose();
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = rt.spawn({
            let (ticks, stop) = (ticks.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    fiber::sleep(Duration::from_millis(10));
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let reader = rt.spawn({
            let (ticks, stop) = (ticks.clone(), stop.clone());
            move || {
                let result = busy_read(addr, || ticks.load(Ordering::SeqCst) >= 10);
                stop.store(true, Ordering::SeqCst);
                result
            }
        });
        let (done, reads) = reader.join().unwrap();
        ticker.join().unwrap();
        writer.join().unwrap();
        assert!(
            done,
            "the ticker ticked {} times in {PATIENCE:?} while the reader made {reads} reads",
            ticks.load(Ordering::SeqCst)
        );
    });
}

#[test]
fn a_busy_reader_lets_a_fiber_woken_by_io_run() {
    // The other fiber waits on a second socket: only a poll of the worker's reactor can see its
    // data arrive, so the budget check must poll, not only look at the queues.
    watchdog(60, || {
        let rt = runtime(1, "coop-io");
        let (addr, writer) = firehose();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let quiet_addr = listener.local_addr().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let waiter = rt.spawn({
            let got = got.clone();
            move || {
                let mut s = fiber::net::TcpStream::connect(quiet_addr).unwrap();
                let mut byte = [0u8; 1];
                s.read_exact(&mut byte).unwrap();
                got.store(true, Ordering::SeqCst);
                byte[0]
            }
        });
        let (mut quiet, _) = listener.accept().unwrap();
        let reader = rt.spawn({
            let got = got.clone();
            move || busy_read(addr, || got.load(Ordering::SeqCst))
        });
        // The reader is busy by now (or soon); only then does the waiter's byte arrive.
        std::thread::sleep(Duration::from_millis(50));
        quiet.write_all(&[42]).unwrap();
        let (done, reads) = reader.join().unwrap();
        assert!(
            done,
            "the waiter's byte was not read in {PATIENCE:?}; the reader made {reads} reads"
        );
        assert_eq!(waiter.join().unwrap(), 42);
        writer.join().unwrap();
    });
}

#[test]
fn a_try_recv_spin_sees_a_value_sent_on_its_worker() {
    watchdog(30, || {
        let rt = runtime(1, "coop-recv");
        rt.block_on(|| {
            let (tx, rx) = mpsc::channel();
            // Unstarted while the receiver spins, then asleep on a timer of this worker.
            let sender = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(20));
                tx.send(42).unwrap();
            });
            let mut empty = 0u64;
            let value = loop {
                match rx.try_recv() {
                    Ok(v) => break v,
                    Err(TryRecvError::Empty) => empty += 1,
                    Err(TryRecvError::Disconnected) => panic!("the sender hung up unsent"),
                }
            };
            assert_eq!(value, 42);
            assert!(empty > 0, "the receiver never found the channel empty");
            sender.join().unwrap();
        });
    });
}

#[test]
fn a_try_lock_spin_gets_a_lock_released_on_its_worker() {
    watchdog(30, || {
        let rt = runtime(1, "coop-lock");
        rt.block_on(|| {
            let lock = Arc::new(Mutex::new(0u32));
            let held = Arc::new(AtomicBool::new(false));
            let holder = fiber::spawn({
                let (lock, held) = (lock.clone(), held.clone());
                move || {
                    let mut guard = lock.lock().unwrap();
                    held.store(true, Ordering::SeqCst);
                    fiber::sleep(Duration::from_millis(20));
                    *guard = 1;
                }
            });
            while !held.load(Ordering::SeqCst) {
                fiber::yield_now();
            }
            let mut busy = 0u64;
            let value = loop {
                match lock.try_lock() {
                    Ok(guard) => break *guard,
                    Err(TryLockError::WouldBlock) => busy += 1,
                    Err(TryLockError::Poisoned(_)) => panic!("poisoned"),
                }
            };
            assert_eq!(value, 1, "got the lock before the holder released it");
            assert!(busy > 0, "the lock was never found held");
            holder.join().unwrap();
        });
    });
}

#[test]
fn a_once_lock_get_spin_sees_a_value_set_on_its_worker() {
    watchdog(30, || {
        let rt = runtime(1, "coop-once");
        rt.block_on(|| {
            let cell = Arc::new(OnceLock::new());
            // Unstarted while the getter spins: only the budget lets it start.
            let setter = fiber::spawn({
                let cell = cell.clone();
                move || cell.set(7u32).unwrap()
            });
            let value = loop {
                if let Some(v) = cell.get() {
                    break *v;
                }
            };
            assert_eq!(value, 7);
            setter.join().unwrap();
        });
    });
}

#[test]
fn a_try_iter_loop_sees_every_value_sent_on_its_worker() {
    watchdog(30, || {
        let rt = runtime(1, "coop-iter");
        rt.block_on(|| {
            let (tx, rx) = mpsc::channel();
            let sender = fiber::spawn(move || {
                for i in 0..10u32 {
                    fiber::sleep(Duration::from_millis(2));
                    tx.send(i).unwrap();
                }
            });
            let mut got = Vec::new();
            while got.len() < 10 {
                got.extend(rx.try_iter());
            }
            assert_eq!(got, (0..10).collect::<Vec<_>>());
            sender.join().unwrap();
        });
    });
}

#[test]
fn spin_loops_on_plain_threads_behave_as_std() {
    // No worker: the budget is not consulted; a try_recv spin on a thread ends when another
    // thread sends, as with std.
    watchdog(30, || {
        let (tx, rx) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(5u8).unwrap();
        });
        let value = loop {
            match rx.try_recv() {
                Ok(v) => break v,
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(TryRecvError::Disconnected) => panic!("hung up"),
            }
        };
        assert_eq!(value, 5);
        sender.join().unwrap();
    });
}

// The two std tests that hung on fiber (issue 11), in the same shape, on one worker.

#[test]
fn std_shape_try_iter_requests_until_enough() {
    // One fiber asks for values by sending requests (unbounded: never parks) and collects the
    // answers with `try_iter`; the other answers each request. Neither ever has to wait.
    watchdog(30, || {
        let rt = runtime(1, "coop-std-iter");
        rt.block_on(|| {
            let (request_tx, request_rx) = mpsc::channel::<()>();
            let (response_tx, response_rx) = mpsc::channel::<u32>();
            let asker = fiber::spawn(move || {
                let mut count = 0;
                loop {
                    for x in response_rx.try_iter() {
                        count += x;
                        if count == 6 {
                            return count;
                        }
                    }
                    request_tx.send(()).unwrap();
                }
            });
            for () in request_rx.iter() {
                if response_tx.send(2).is_err() {
                    break;
                }
            }
            assert_eq!(asker.join().unwrap(), 6);
        });
    });
}

#[test]
fn std_shape_once_lock_readers_spin_until_a_writer_sets() {
    // Ten fibers spin on `get`, three race to `set`; every reader must see the one value.
    watchdog(30, || {
        let rt = runtime(1, "coop-std-once");
        rt.block_on(|| {
            static CELL: OnceLock<String> = OnceLock::new();
            const MSG: &str = "Hello, World";
            let (tx, rx) = mpsc::channel();
            // Writers first: a worker starts its newest spawn first, so the readers spin before
            // any writer has run.
            for _ in 0..3 {
                fiber::spawn(|| {
                    let _ = CELL.set(MSG.to_owned());
                });
            }
            for _ in 0..10 {
                let tx = tx.clone();
                fiber::spawn(move || loop {
                    if let Some(msg) = CELL.get() {
                        tx.send(msg).unwrap();
                        break;
                    }
                });
            }
            for _ in 0..10 {
                assert_eq!(rx.recv().unwrap(), MSG);
            }
        });
    });
}
