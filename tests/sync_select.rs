//! fiber::sync: select! tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber::sync::{mpmc, mpsc};
use support::{fibers, scale, sync_runtime, watchdog};

#[test]
fn picks_the_ready_arm() {
    let (tx1, rx1) = mpmc::unbounded::<i32>();
    let (_tx2, rx2) = mpmc::unbounded::<&str>();
    tx1.send(5).unwrap();
    let r = fiber::select! {
        recv(rx1) -> m => m.unwrap(),
        recv(rx2) -> _m => unreachable!(),
    };
    assert_eq!(r, 5);
}

#[test]
fn timeout_and_default_arms() {
    let (_tx, rx) = mpmc::unbounded::<i32>();
    let t = Instant::now();
    let r = fiber::select! {
        recv(rx) -> _m => 1,
        timeout(Duration::from_millis(30)) => 2,
    };
    assert_eq!(r, 2);
    assert!(t.elapsed() >= Duration::from_millis(30));
    let r = fiber::select! {
        recv(rx) -> _m => 1,
        default => 3,
    };
    assert_eq!(r, 3);
}

#[test]
fn send_arm_and_disconnection() {
    let (tx, rx) = mpmc::bounded::<i32>(1);
    let (tx2, rx2) = mpmc::bounded::<i32>(0);
    drop(rx2);
    // tx2 is disconnected: its arm completes with Err carrying the value back.
    let r = fiber::select! {
        send(tx2, 9) -> res => res.unwrap_err().0,
        timeout(Duration::from_secs(5)) => -1,
    };
    assert_eq!(r, 9);
    fiber::select! {
        send(tx, 1) -> res => res.unwrap(),
    }
    assert_eq!(rx.recv(), Ok(1));
    drop(tx);
    let r = fiber::select! {
        recv(rx) -> m => m.is_err(),
    };
    assert!(r);
}

#[test]
fn wakes_on_either_channel_across_threads() {
    watchdog(30, || {
        let n = scale(5_000, 1_000);
        let (tx1, rx1) = mpmc::bounded::<usize>(0);
        let (tx2, rx2) = mpsc::channel::<usize>();
        let (mut a, mut b) = (0, 0);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..n {
                    tx1.send(i).unwrap();
                }
            });
            s.spawn(move || {
                for i in 0..n {
                    tx2.send(i).unwrap();
                }
            });
            let (mut open1, mut open2) = (true, true);
            while open1 || open2 {
                fiber::select! {
                    recv(rx1) -> m => match m { Ok(_) => a += 1, Err(_) => open1 = false },
                    recv(rx2) -> m => match m { Ok(_) => b += 1, Err(_) => open2 = false },
                }
            }
        });
        assert_eq!((a, b), (n, n));
    });
}

#[test]
fn fairness_between_ready_arms() {
    let (tx1, rx1) = mpmc::unbounded::<()>();
    let (tx2, rx2) = mpmc::unbounded::<()>();
    let rounds = 10_000;
    for _ in 0..rounds {
        tx1.send(()).unwrap();
        tx2.send(()).unwrap();
    }
    let (mut a, mut b) = (0, 0);
    for _ in 0..rounds {
        fiber::select! {
            recv(rx1) -> _m => a += 1,
            recv(rx2) -> _m => b += 1,
        }
    }
    // Both always ready: each should win about half the time.
    assert!(a > rounds * 4 / 10 && b > rounds * 4 / 10, "a {a} b {b}");
}

#[test]
fn selectors_and_plain_receivers_lose_no_message() {
    // A selector woken for a message it does not take must pass the wake-up on.
    watchdog(30, || {
        let n = scale(10_000, 2_000);
        let (tx1, rx1) = mpmc::bounded::<usize>(2);
        let (tx2, rx2) = mpmc::bounded::<usize>(2);
        let got = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for tx in [tx1, tx2] {
                s.spawn(move || {
                    for i in 0..n {
                        tx.send(i).unwrap();
                    }
                });
            }
            for k in 0..4 {
                let (rx1, rx2, got) = (rx1.clone(), rx2.clone(), &got);
                s.spawn(move || {
                    if k % 2 == 0 {
                        let (mut o1, mut o2) = (true, true);
                        while o1 || o2 {
                            fiber::select! {
                                recv(rx1) -> m => match m { Ok(_) => { got.fetch_add(1, Ordering::Relaxed); } Err(_) => o1 = false },
                                recv(rx2) -> m => match m { Ok(_) => { got.fetch_add(1, Ordering::Relaxed); } Err(_) => o2 = false },
                            }
                        }
                    } else {
                        let rx = if k == 1 { rx1 } else { rx2 };
                        for _ in rx.iter() {
                            got.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            drop((rx1, rx2));
        });
        assert_eq!(got.load(Ordering::Relaxed), 2 * n);
    });
}

#[test]
fn fibers_select_with_timeout_arm() {
    watchdog(30, || {
        let rt = sync_runtime(2);
        rt.block_on(|| {
            let (tx1, rx1) = mpmc::bounded::<usize>(0);
            let (tx2, rx2) = mpmc::unbounded::<usize>();
            let n = scale(10_000, 2_000);
            let a = fiber::spawn(move || (0..n).for_each(|i| tx1.send(i).unwrap()));
            let b = fiber::spawn(move || (0..n).for_each(|i| tx2.send(i).unwrap()));
            let (mut got, mut timeouts) = (0, 0);
            let (mut o1, mut o2) = (true, true);
            while o1 || o2 {
                fiber::select! {
                    recv(rx1) -> m => match m { Ok(_) => got += 1, Err(_) => o1 = false },
                    recv(rx2) -> m => match m { Ok(_) => got += 1, Err(_) => o2 = false },
                    timeout(Duration::from_secs(1)) => timeouts += 1,
                }
            }
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(got, 2 * n);
            // Each time-out is a 1 s stall: lost wake-ups would show up here (or trip the
            // watchdog); a few are tolerated for a heavily loaded machine.
            assert!(timeouts <= 5, "{timeouts} time-outs: lost wake-ups?");
            let t = Instant::now();
            let (_tx, rx) = mpmc::unbounded::<()>();
            let r = fiber::select! {
                recv(rx) -> _m => false,
                timeout(Duration::from_millis(20)) => true,
            };
            assert!(r && t.elapsed() >= Duration::from_millis(20));
        });
    });
}

#[test]
fn many_fiber_selectors() {
    watchdog(60, || {
        let n = scale(200, 50);
        let (tx1, rx1) = mpmc::bounded::<usize>(8);
        let (tx2, rx2) = mpmc::bounded::<usize>(8);
        let got = AtomicUsize::new(0);
        let sent = AtomicUsize::new(0);
        fibers(2, 400, |i| match i % 4 {
            0 => (0..n).for_each(|k| {
                tx1.send(k).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }),
            1 => (0..n).for_each(|k| {
                tx2.send(k).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }),
            _ => loop {
                if got.load(Ordering::SeqCst) >= 200 * n {
                    break;
                }
                fiber::select! {
                    recv(rx1) -> _m => { got.fetch_add(1, Ordering::SeqCst); },
                    recv(rx2) -> _m => { got.fetch_add(1, Ordering::SeqCst); },
                    timeout(Duration::from_millis(10)) => {},
                }
            },
        });
        assert_eq!(got.load(Ordering::SeqCst), 200 * n);
    });
}

#[test]
fn send_arm_into_rendezvous_and_mpsc_ends() {
    watchdog(20, || {
        // A zero-capacity send arm completes once a receiver is blocked in `recv`.
        let (tx, rx) = mpmc::bounded::<i32>(0);
        let (stx, srx) = mpsc::sync_channel::<i32>(0);
        std::thread::scope(|s| {
            s.spawn(move || assert_eq!(rx.recv(), Ok(1)));
            let r = fiber::select! {
                send(tx, 1) -> res => res.is_ok(),
                timeout(Duration::from_secs(10)) => false,
            };
            assert!(r);
            s.spawn(move || assert_eq!(srx.recv(), Ok(2)));
            let r = fiber::select! {
                send(stx, 2) -> res => res.is_ok(),
                timeout(Duration::from_secs(10)) => false,
            };
            assert!(r);
        });
        // mpsc ends in recv arms, by reference.
        let (tx, rx) = mpsc::channel::<u8>();
        tx.send(3).unwrap();
        let got = fiber::select! {
            recv(&rx) -> m => m.unwrap(),
            default => 0,
        };
        assert_eq!(got, 3);
    });
}
