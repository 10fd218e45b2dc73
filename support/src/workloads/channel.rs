//! Channel ping-pong: a driver sends a number on one unbounded channel, an echo peer sends it back
//! on another, `iters` times; each body returns the time of the `iters` round trips (setup and
//! teardown excluded).

use std::time::{Duration, Instant};

use super::may_go;

/// The timed loop of the driver: send `i`, wait for its echo.
fn drive(iters: u64, mut send: impl FnMut(u64), mut recv: impl FnMut() -> u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        send(i);
        let echoed = recv();
        debug_assert_eq!(echoed, i);
    }
    start.elapsed()
}

/// Two fibers on `rt` with `fiber::sync::mpsc`.
pub fn fiber(rt: &fiber::Runtime, iters: u64) -> Duration {
    rt.block_on(|| {
        let (tx1, rx1) = fiber::sync::mpsc::channel::<u64>();
        let (tx2, rx2) = fiber::sync::mpsc::channel::<u64>();
        let echo = fiber::spawn(move || rx1.iter().for_each(|v| tx2.send(v).unwrap()));
        let elapsed = drive(iters, |i| tx1.send(i).unwrap(), || rx2.recv().unwrap());
        drop(tx1);
        echo.join().unwrap();
        elapsed
    })
}

/// Two tasks on `rt` with `tokio::sync::mpsc` (the driver runs on a task too, as with fibers).
pub fn tokio(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let echo = tokio::spawn(async move {
            while let Some(v) = rx1.recv().await {
                tx2.send(v).unwrap();
            }
        });
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for i in 0..iters {
                tx1.send(i).unwrap();
                rx2.recv().await.unwrap();
            }
            start.elapsed()
        })
        .await
        .unwrap();
        echo.await.unwrap();
        elapsed
    })
}

/// Two OS threads with `std::sync::mpsc`.
pub fn std(iters: u64) -> Duration {
    let (tx1, rx1) = std::sync::mpsc::channel::<u64>();
    let (tx2, rx2) = std::sync::mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || rx1.iter().for_each(|v| tx2.send(v).unwrap()));
    let elapsed = drive(iters, |i| tx1.send(i).unwrap(), || rx2.recv().unwrap());
    drop(tx1);
    echo.join().unwrap();
    elapsed
}

/// Two may coroutines with `may::sync::mpsc` (may's workers are configured by the caller).
pub fn may(iters: u64) -> Duration {
    let (tx1, rx1) = may::sync::mpsc::channel::<u64>();
    let (tx2, rx2) = may::sync::mpsc::channel::<u64>();
    let echo = may_go(move || rx1.iter().for_each(|v| tx2.send(v).unwrap()));
    let driver = may_go(move || drive(iters, |i| tx1.send(i).unwrap(), || rx2.recv().unwrap()));
    let elapsed = driver.join().unwrap();
    echo.join().unwrap();
    elapsed
}
