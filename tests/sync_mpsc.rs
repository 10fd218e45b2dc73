//! fiber::sync: mpsc channels tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber::sync::mpsc::{self, RecvTimeoutError, TryRecvError, TrySendError};
use support::{mixed, scale, sync_runtime, watchdog};

#[test]
fn many_producers_exact_sum() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        let (tx, rx) = mpsc::channel::<usize>();
        std::thread::scope(|s| {
            for p in 0..4 {
                let tx = tx.clone();
                s.spawn(move || {
                    for i in 0..n {
                        tx.send(p * n + i).unwrap();
                    }
                });
            }
            drop(tx);
            let sum: usize = rx.iter().sum();
            let m = 4 * n;
            assert_eq!(sum, m * (m - 1) / 2);
        });
    });
}

#[test]
fn sync_channel_bounded_exact_and_fifo() {
    watchdog(30, || {
        let n = scale(20_000, 5_000);
        for cap in [0, 1, 16] {
            let (tx, rx) = mpsc::sync_channel::<usize>(cap);
            std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..n {
                        tx.send(i).unwrap();
                    }
                });
                for i in 0..n {
                    assert_eq!(rx.recv().unwrap(), i, "cap {cap}");
                }
                assert!(rx.recv().is_err());
            });
        }
    });
}

#[test]
fn bounded_blocks_when_full() {
    let (tx, rx) = mpsc::sync_channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.recv().unwrap(), 1);
    tx.try_send(3).unwrap();
}

#[test]
fn rendezvous_send_waits_for_receiver() {
    watchdog(10, || {
        let (tx, rx) = mpsc::sync_channel::<i32>(0);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                assert_eq!(rx.recv().unwrap(), 7);
            });
            tx.send(7).unwrap();
            assert!(t.elapsed() >= Duration::from_millis(25));
        });
    });
}

#[test]
fn disconnection_from_sender_side() {
    let (tx, rx) = mpsc::channel::<i32>();
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert!(rx.recv().is_err());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn disconnection_wakes_blocked_receiver_and_sender() {
    watchdog(10, || {
        let (tx, rx) = mpsc::channel::<i32>();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(tx);
            });
            assert!(rx.recv().is_err());
        });
        let (tx, rx) = mpsc::sync_channel::<i32>(1);
        tx.send(1).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(rx);
            });
            assert_eq!(tx.send(2).unwrap_err().0, 2);
        });
    });
}

#[test]
fn disconnection_from_receiver_side_drops_buffered() {
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    tx.send(D(drops.clone())).unwrap();
    tx.send(D(drops.clone())).unwrap();
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert!(tx.send(D(drops.clone())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn recv_timeout_and_try_iter() {
    watchdog(10, || {
        let (tx, rx) = mpsc::channel::<i32>();
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(40)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(40));
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(10));
                tx.send(9).unwrap();
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(9));
        });
        drop(tx);
        assert_eq!(rx.into_iter().count(), 0);
    });
}

#[test]
fn rendezvous_recv_timeout_race() {
    // A zero-capacity send must never "complete" into a receiver that already gave up.
    watchdog(30, || {
        let n = scale(2_000, 500);
        let (tx, rx) = mpsc::sync_channel::<usize>(0);
        let received = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..n {
                    tx.send(i).unwrap();
                }
            });
            loop {
                match rx.recv_timeout(Duration::from_micros(50)) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        assert_eq!(received.load(Ordering::Relaxed), n);
    });
}

#[test]
fn thousand_producer_fibers_one_consumer_thread() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let rt = sync_runtime(2);
        let (tx, rx) = mpsc::sync_channel::<usize>(64);
        for _ in 0..1_000 {
            let tx = tx.clone();
            rt.spawn(move || {
                for i in 0..ops {
                    tx.send(i).unwrap();
                }
            });
        }
        drop(tx);
        let sum: usize = rx.iter().sum();
        assert_eq!(sum, 1_000 * ops * (ops - 1) / 2);
    });
}

#[test]
fn fiber_ping_pong() {
    watchdog(60, || {
        let n = scale(50_000, 10_000);
        for workers in [1, 2] {
            let rt = sync_runtime(workers);
            rt.block_on(|| {
                let (tx1, rx1) = mpsc::channel::<usize>();
                let (tx2, rx2) = mpsc::channel::<usize>();
                let echo = fiber::spawn(move || {
                    for v in rx1.iter() {
                        tx2.send(v + 1).unwrap();
                    }
                });
                for i in 0..n {
                    tx1.send(i).unwrap();
                    assert_eq!(rx2.recv().unwrap(), i + 1);
                }
                drop(tx1);
                echo.join().unwrap();
            });
        }
    });
}

#[test]
fn fibers_recv_timeout_and_disconnect() {
    watchdog(20, || {
        let rt = sync_runtime(2);
        rt.block_on(|| {
            let (tx, rx) = mpsc::channel::<i32>();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(20)),
                Err(RecvTimeoutError::Timeout)
            );
            let h = fiber::spawn(move || {
                fiber::sleep(Duration::from_millis(10));
                drop(tx);
            });
            assert!(rx.recv().is_err());
            h.join().unwrap();
            let (tx, rx) = mpsc::sync_channel::<i32>(0);
            let h = fiber::spawn(move || tx.send(5));
            fiber::sleep(Duration::from_millis(10));
            drop(rx);
            assert_eq!(h.join().unwrap().unwrap_err().0, 5);
        });
    });
}

#[test]
fn mixed_senders_exact_sum() {
    watchdog(60, || {
        let ops = scale(1_000, 200);
        let (tx, rx) = mpsc::channel::<usize>();
        let tx = std::sync::Mutex::new(tx);
        std::thread::scope(|s| {
            s.spawn(|| {
                mixed(200, 4, |_| {
                    let tx = tx.lock().unwrap().clone();
                    for i in 0..ops {
                        tx.send(i).unwrap();
                    }
                });
                drop(tx.lock().unwrap().clone());
            });
            let got: usize = rx.iter().take(204 * ops).sum();
            assert_eq!(got, 204 * ops * (ops - 1) / 2);
        });
    });
}
