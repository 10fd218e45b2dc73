//! fiber::sync: mpmc channels tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber::sync::mpmc::{self, RecvTimeoutError, SendTimeoutError};
use support::{fibers, mixed, scale, watchdog};

fn producers_consumers(cap: Option<usize>, p: usize, c: usize, n: usize) {
    let (tx, rx) = match cap {
        Some(cap) => mpmc::bounded::<usize>(cap),
        None => mpmc::unbounded(),
    };
    let sum = AtomicUsize::new(0);
    let count = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for k in 0..p {
            let tx = tx.clone();
            s.spawn(move || {
                for i in 0..n {
                    tx.send(k * n + i).unwrap();
                }
            });
        }
        for _ in 0..c {
            let rx = rx.clone();
            let (sum, count) = (&sum, &count);
            s.spawn(move || {
                for v in rx.iter() {
                    sum.fetch_add(v, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        drop(tx);
        drop(rx);
    });
    let m = p * n;
    assert_eq!(count.load(Ordering::Relaxed), m);
    assert_eq!(sum.load(Ordering::Relaxed), m * (m - 1) / 2);
}

#[test]
fn exact_counts_unbounded() {
    watchdog(30, || producers_consumers(None, 4, 4, scale(20_000, 5_000)));
}

#[test]
fn exact_counts_bounded() {
    watchdog(30, || {
        for cap in [0, 1, 1024] {
            producers_consumers(Some(cap), 4, 4, scale(5_000, 1_000));
        }
    });
}

#[test]
fn send_timeout_and_recv_timeout() {
    watchdog(10, || {
        let (tx, rx) = mpmc::bounded(1);
        tx.send(1).unwrap();
        let t = Instant::now();
        assert_eq!(
            tx.send_timeout(2, Duration::from_millis(30)),
            Err(SendTimeoutError::Timeout(2))
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(rx.recv_timeout(Duration::from_millis(30)), Ok(1));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvTimeoutError::Timeout)
        );
        drop(rx);
        assert_eq!(
            tx.send_timeout(3, Duration::from_millis(30)),
            Err(SendTimeoutError::Disconnected(3))
        );
    });
}

#[test]
fn cloned_receivers_each_message_once() {
    let (tx, rx1) = mpmc::unbounded();
    let rx2 = rx1.clone();
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let mut all: Vec<i32> = rx1.try_iter().take(5).chain(rx2.iter()).collect();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert!(rx1.recv().is_err());
}

#[test]
fn disconnection_needs_all_clones_dropped() {
    let (tx, rx) = mpmc::unbounded::<i32>();
    let rx2 = rx.clone();
    drop(rx);
    assert!(tx.send(1).is_ok());
    drop(rx2);
    assert!(tx.is_disconnected());
    assert!(tx.send(1).is_err());
}

#[test]
fn recv_timeouts_racing_with_sends_lose_nothing() {
    watchdog(30, || {
        let n = scale(5_000, 1_000);
        let (tx, rx) = mpmc::bounded::<usize>(4);
        let got = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let rx = rx.clone();
                let got = &got;
                s.spawn(move || loop {
                    match rx.recv_timeout(Duration::from_micros(30)) {
                        Ok(_) => {
                            got.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                });
            }
            drop(rx);
            for i in 0..n {
                tx.send(i).unwrap();
            }
            drop(tx);
        });
        assert_eq!(got.load(Ordering::Relaxed), n);
    });
}

#[test]
fn fibers_100_producers_100_consumers_bounded_1024() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let (tx, rx) = mpmc::bounded::<usize>(1_024);
        let (tx, rx) = (
            std::sync::Mutex::new(Some(tx)),
            std::sync::Mutex::new(Some(rx)),
        );
        let sum = AtomicUsize::new(0);
        let count = AtomicUsize::new(0);
        let txs: Vec<_> = (0..100)
            .map(|_| tx.lock().unwrap().as_ref().unwrap().clone())
            .collect();
        let rxs: Vec<_> = (0..100)
            .map(|_| rx.lock().unwrap().as_ref().unwrap().clone())
            .collect();
        drop((tx, rx));
        let txs = std::sync::Mutex::new(txs);
        let rxs = std::sync::Mutex::new(rxs);
        fibers(2, 200, |i| {
            if i < 100 {
                let tx = txs.lock().unwrap().pop().unwrap();
                for k in 0..ops {
                    tx.send(k).unwrap();
                }
            } else {
                let rx = rxs.lock().unwrap().pop().unwrap();
                for v in rx.iter() {
                    sum.fetch_add(v, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 100 * ops);
        assert_eq!(sum.load(Ordering::Relaxed), 100 * ops * (ops - 1) / 2);
    });
}

#[test]
fn mixed_fibers_and_threads_rendezvous() {
    watchdog(60, || {
        let ops = scale(500, 100);
        let (tx, rx) = mpmc::bounded::<usize>(0);
        let got = AtomicUsize::new(0);
        let senders = AtomicUsize::new(0);
        mixed(50, 4, |i| {
            if i % 2 == 0 {
                for k in 0..ops {
                    tx.send(k).unwrap();
                }
                senders.fetch_add(1, Ordering::SeqCst);
            } else {
                // 27 receivers; 27 senders send `ops` each. Receive until all is accounted for.
                while got.load(Ordering::SeqCst) < 27 * ops {
                    if rx.recv_timeout(Duration::from_millis(5)).is_ok() {
                        got.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        assert_eq!(got.load(Ordering::SeqCst), 27 * ops);
        assert_eq!(senders.load(Ordering::SeqCst), 27);
    });
}

// ---- runtime shutdown: a message handed to a receiver that is unwound is not lost (issue 11) --

/// Sends `42` with `try_send` when dropped: here, while its fiber is unwound by the shutdown, to
/// receivers that are parked on the same runtime and are unwound right after.
struct SendOnDrop(mpmc::Sender<usize>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        self.0.try_send(42).expect("a receiver is waiting");
    }
}

/// The message goes straight into the first parked receiver (a plain `recv`'s node, or a
/// `select!`'s packet), which is unwound before it returns it; it must reach the receiver queued
/// behind them on another runtime, exactly once.
fn handed_over_message_survives_shutdown(cap: usize, second_is_select: bool) {
    use std::sync::Arc;
    use support::{one_worker_runtime, spawn_parked};
    let (tx, rx) = mpmc::bounded::<usize>(cap);
    let rt = one_worker_runtime();
    let other = one_worker_runtime();
    let sender = tx.clone();
    spawn_parked(&rt, move || {
        let _send = SendOnDrop(sender);
        loop {
            fiber::park();
        }
    });
    let r1 = rx.clone();
    spawn_parked(&rt, move || {
        let _ = r1.recv();
        unreachable!("nothing is sent before shutdown");
    });
    let r2 = rx.clone();
    spawn_parked(&rt, move || {
        if second_is_select {
            let (_never_tx, never_rx) = mpmc::bounded::<usize>(0);
            fiber::select! {
                recv(never_rx) -> _m => {},
                recv(r2) -> _m => {},
            }
        } else {
            let _ = r2.recv();
        }
        unreachable!("nothing is sent before shutdown");
    });
    let got = Arc::new(AtomicUsize::new(0));
    let (r3, got3) = (rx.clone(), got.clone());
    let survivor = spawn_parked(&other, move || {
        got3.store(r3.recv().unwrap(), Ordering::SeqCst);
    });
    drop(rt);
    survivor
        .join()
        .expect("the other runtime's receiver got the message");
    assert_eq!(got.load(Ordering::SeqCst), 42, "cap {cap}");
    assert_eq!(
        rx.try_recv(),
        Err(mpmc::TryRecvError::Empty),
        "cap {cap}: duplicated"
    );
    drop(tx);
}

fn handed_over_messages_survive_shutdown(cap: usize) {
    watchdog(30, move || {
        for second_is_select in [false, true] {
            handed_over_message_survives_shutdown(cap, second_is_select);
        }
    });
}

#[test]
fn runtime_shutdown_keeps_a_message_handed_to_an_unwound_receiver_rendezvous() {
    handed_over_messages_survive_shutdown(0);
}

#[test]
fn runtime_shutdown_keeps_a_message_handed_to_an_unwound_receiver_bounded() {
    handed_over_messages_survive_shutdown(1);
    handed_over_messages_survive_shutdown(4);
}
