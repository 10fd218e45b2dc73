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

// ---- zero-capacity rendezvous: every pairing of plain and `select!` operations (issue 11) ----

use support::{both_timeout, Mode};

/// How one side of a rendezvous operates.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// Plain `send` / `recv`.
    Plain,
    /// `select!` with one arm.
    Select,
    /// `select!` with an arm on each of two zero-capacity channels and a `timeout` arm.
    SelectMany,
    /// `select!` with a `default` arm, retried until it completes.
    SelectDefault,
}

const SIDES: [Side; 4] = [
    Side::Plain,
    Side::Select,
    Side::SelectMany,
    Side::SelectDefault,
];

fn send_one(side: Side, tx: &mpmc::Sender<usize>, spare: &mpmc::Sender<usize>, v: usize) {
    match side {
        Side::Plain => tx.send(v).unwrap(),
        Side::Select => fiber::select! { send(tx, v) -> r => r.unwrap() },
        // Nobody receives on `spare`: the message must go through `tx`.
        Side::SelectMany => loop {
            let sent = fiber::select! {
                send(spare, usize::MAX) -> _r => panic!("nobody receives on the spare channel"),
                send(tx, v) -> r => { r.unwrap(); true }
                timeout(Duration::from_millis(50)) => false,
            };
            if sent {
                break;
            }
        },
        Side::SelectDefault => loop {
            let sent = fiber::select! {
                send(tx, v) -> r => { r.unwrap(); true }
                default => false,
            };
            if sent {
                break;
            }
            fiber::yield_now();
        },
    }
}

fn recv_one(side: Side, rx: &mpmc::Receiver<usize>, spare: &mpmc::Receiver<usize>) -> usize {
    match side {
        Side::Plain => rx.recv().unwrap(),
        Side::Select => fiber::select! { recv(rx) -> m => m.unwrap() },
        Side::SelectMany => loop {
            let got = fiber::select! {
                recv(spare) -> _m => panic!("nobody sends on the spare channel"),
                recv(rx) -> m => Some(m.unwrap()),
                timeout(Duration::from_millis(50)) => None,
            };
            if let Some(v) = got {
                break v;
            }
        },
        Side::SelectDefault => loop {
            let got = fiber::select! {
                recv(rx) -> m => Some(m.unwrap()),
                default => None,
            };
            if let Some(v) = got {
                break v;
            }
            fiber::yield_now();
        },
    }
}

/// One sender and one receiver on a `bounded(0)` channel, for every pairing of the four sides
/// (but `default` with `default`): all messages arrive, in order, exactly once.
fn rendezvous_pairings(mode: Mode) {
    let n = scale(2_000, 300);
    for send_side in SIDES {
        for recv_side in SIDES {
            if matches!(
                (send_side, recv_side),
                (Side::SelectDefault, Side::SelectDefault)
            ) {
                // Two operations that never wait cannot meet on a rendezvous channel (as in
                // crossbeam or Go): one side has to be blocked when the other arrives.
                continue;
            }
            let (tx, rx) = mpmc::bounded::<usize>(0);
            let sender = mode.spawn(move || {
                // A connected channel that nobody receives on.
                let (spare_tx, _spare_rx) = mpmc::bounded::<usize>(0);
                for i in 0..n {
                    send_one(send_side, &tx, &spare_tx, i);
                }
            });
            let receiver = mode.spawn(move || {
                // A connected channel that nobody sends on.
                let (_spare_tx, spare_rx) = mpmc::bounded::<usize>(0);
                let got: Vec<usize> = (0..n)
                    .map(|_| recv_one(recv_side, &rx, &spare_rx))
                    .collect();
                // Nothing more was sent: once the sender is gone, the channel is just closed.
                assert_eq!(rx.recv(), Err(mpmc::RecvError));
                got
            });
            sender.join();
            let got = receiver.join();
            assert_eq!(
                got,
                (0..n).collect::<Vec<_>>(),
                "{send_side:?} send / {recv_side:?} recv"
            );
        }
    }
}

#[test]
fn rendezvous_every_pairing_of_plain_and_select_meets() {
    both_timeout(120, rendezvous_pairings);
}

/// Several senders and receivers of every side on two zero-capacity channels at once: every
/// message is received exactly once and every send that returned `Ok` was received.
fn rendezvous_stress(mode: Mode) {
    use std::sync::{Arc, Mutex};
    let per = scale(1_000, 150);
    let (tx_a, rx_a) = mpmc::bounded::<usize>(0);
    let (tx_b, rx_b) = mpmc::bounded::<usize>(0);
    let seen = Arc::new(Mutex::new(vec![0u8; 8 * per]));
    let received = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for (k, side) in SIDES.into_iter().chain(SIDES).enumerate() {
        let (tx_a, tx_b) = (tx_a.clone(), tx_b.clone());
        senders.push(mode.spawn(move || {
            for i in 0..per {
                let v = k * per + i;
                // Alternate the channel; `SelectMany` offers the message on both.
                let (tx, other) = if i % 2 == 0 {
                    (&tx_a, &tx_b)
                } else {
                    (&tx_b, &tx_a)
                };
                match side {
                    Side::SelectMany => loop {
                        let sent = fiber::select! {
                            send(tx, v) -> r => { r.unwrap(); true }
                            send(other, v) -> r => { r.unwrap(); true }
                            timeout(Duration::from_millis(20)) => false,
                        };
                        if sent {
                            break;
                        }
                    },
                    _ => send_one(side, tx, other, v),
                }
            }
        }));
    }
    drop((tx_a, tx_b));
    let mut receivers = Vec::new();
    for side in SIDES.into_iter().chain(SIDES) {
        let (rx_a, rx_b) = (rx_a.clone(), rx_b.clone());
        let (seen, received) = (seen.clone(), received.clone());
        receivers.push(mode.spawn(move || {
            let (mut open_a, mut open_b) = (true, true);
            let record = |v: usize| {
                seen.lock().unwrap()[v] += 1;
                received.fetch_add(1, Ordering::SeqCst);
            };
            while open_a || open_b {
                match side {
                    Side::Plain | Side::SelectDefault => {
                        // Plain receives, alternating, without blocking on a closed channel.
                        for (rx, open) in [(&rx_a, &mut open_a), (&rx_b, &mut open_b)] {
                            if *open {
                                match rx.recv_timeout(Duration::from_millis(5)) {
                                    Ok(v) => record(v),
                                    Err(mpmc::RecvTimeoutError::Disconnected) => *open = false,
                                    Err(mpmc::RecvTimeoutError::Timeout) => {}
                                }
                            }
                        }
                    }
                    Side::Select | Side::SelectMany => fiber::select! {
                        recv(rx_a) -> m => match m { Ok(v) => record(v), Err(_) => open_a = false },
                        recv(rx_b) -> m => match m { Ok(v) => record(v), Err(_) => open_b = false },
                    },
                }
                if !open_a && !open_b {
                    break;
                }
                if !open_a || !open_b {
                    // One channel is closed: keep draining the other one plainly.
                    let rx = if open_a { &rx_a } else { &rx_b };
                    for v in rx.iter() {
                        record(v);
                    }
                    break;
                }
            }
        }));
    }
    drop((rx_a, rx_b));
    for s in senders {
        s.join();
    }
    for r in receivers {
        r.join();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(received.load(Ordering::SeqCst), 8 * per);
    assert!(
        seen.iter().all(|&c| c == 1),
        "a message was lost or duplicated"
    );
}

#[test]
fn rendezvous_stress_mixed_sides_exactly_once() {
    both_timeout(120, rendezvous_stress);
}

#[test]
fn a_select_never_meets_itself_on_a_rendezvous_channel() {
    watchdog(20, || {
        let (tx, rx) = mpmc::bounded::<i32>(0);
        let r = fiber::select! {
            send(tx, 1) -> _r => "sent",
            recv(rx) -> _m => "received",
            timeout(Duration::from_millis(50)) => "timed out",
        };
        assert_eq!(r, "timed out");
        // And the message it offered is not left behind.
        assert_eq!(rx.try_recv(), Err(mpmc::TryRecvError::Empty));
    });
}

#[test]
fn a_timed_out_select_send_leaves_nothing_behind() {
    watchdog(20, || {
        let (tx, rx) = mpmc::bounded::<i32>(0);
        let r = fiber::select! {
            send(tx, 7) -> _r => false,
            timeout(Duration::from_millis(30)) => true,
        };
        assert!(r);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(mpmc::RecvTimeoutError::Timeout)
        );
    });
}
