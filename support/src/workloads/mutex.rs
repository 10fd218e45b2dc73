//! Mutex contention: `tasks` workers each increment one shared counter `increments` times under
//! the peer's mutex; all are spawned at once. Each body asserts the final count.

use std::sync::Arc;

use super::may_go;

/// Fibers on `rt` with `fiber::sync::Mutex`.
pub fn fiber(rt: &fiber::Runtime, tasks: usize, increments: usize) {
    let m = fiber::sync::Mutex::new(0usize);
    rt.block_on(|| {
        fiber::scope(|s| {
            for _ in 0..tasks {
                s.spawn(|| {
                    for _ in 0..increments {
                        *m.lock().unwrap() += 1;
                    }
                });
            }
        })
    });
    assert_eq!(m.into_inner().unwrap(), tasks * increments);
}

/// Tasks on `rt` with `tokio::sync::Mutex` (FIFO, async).
pub fn tokio(rt: &tokio::runtime::Runtime, tasks: usize, increments: usize) {
    let m = Arc::new(tokio::sync::Mutex::new(0usize));
    rt.block_on(async {
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..increments {
                        *m.lock().await += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(*m.try_lock().unwrap(), tasks * increments);
}

/// may coroutines with `may::sync::Mutex` (may's workers are configured by the caller).
pub fn may(tasks: usize, increments: usize) {
    let m = Arc::new(may::sync::Mutex::new(0usize));
    let hs: Vec<_> = (0..tasks)
        .map(|_| {
            let m = m.clone();
            may_go(move || {
                for _ in 0..increments {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(*m.lock().unwrap(), tasks * increments);
}

/// OS threads with `std::sync::Mutex`.
pub fn std(threads: usize, increments: usize) {
    let m = std::sync::Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..increments {
                    *m.lock().unwrap() += 1;
                }
            });
        }
    });
    assert_eq!(m.into_inner().unwrap(), threads * increments);
}
