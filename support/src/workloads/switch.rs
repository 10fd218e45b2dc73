//! Context switches: two peers alternate `yield_now` on one worker, `switches / 2` times each, so
//! total / switches is the time of one switch. The peers are created inside the timed span, but
//! their cost is spread over the many switches. The runtimes must have one worker (fiber, may) or
//! be current-thread (tokio).

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::Coroutine;

use super::may_go;

/// The fiber body.
pub fn fiber(rt: &fiber::Runtime, switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    rt.block_on(|| {
        let start = Instant::now();
        let partner = fiber::spawn(move || {
            for _ in 0..per_side {
                fiber::yield_now();
            }
        });
        for _ in 0..per_side {
            fiber::yield_now();
        }
        partner.join().unwrap();
        start.elapsed()
    })
}

/// The tokio body.
pub fn tokio(rt: &tokio::runtime::Runtime, switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    rt.block_on(async move {
        let start = Instant::now();
        let task = || {
            tokio::spawn(async move {
                for _ in 0..per_side {
                    tokio::task::yield_now().await;
                }
            })
        };
        let (a, b) = (task(), task());
        a.await.unwrap();
        b.await.unwrap();
        start.elapsed()
    })
}

/// may must be configured with one worker before its first use.
pub fn may(switches: u64) -> Duration {
    let per_side = switches.div_ceil(2);
    let outer = may_go(move || {
        let start = Instant::now();
        let partner = may_go(move || {
            for _ in 0..per_side {
                may::coroutine::yield_now();
            }
        });
        for _ in 0..per_side {
            may::coroutine::yield_now();
        }
        partner.join().unwrap();
        start.elapsed()
    });
    outer.join().unwrap()
}

/// The floor: one `resume` + `suspend` of a raw corosensei coroutine per switch.
pub fn corosensei(switches: u64) -> Duration {
    let mut co = Coroutine::new(|yielder, mut x: u64| loop {
        x = yielder.suspend(black_box(x));
    });
    let start = Instant::now();
    for i in 0..switches {
        black_box(co.resume(i));
    }
    let elapsed = start.elapsed();
    // Unwinds the suspended coroutine (it never returns on its own).
    drop(co);
    elapsed
}
