//! Spawn + join: from inside a worker of the same kind, spawn `n` trivial workers (each returns
//! its index), then join them all; all `n` are live at once. Each body returns the sum of the
//! indices, n(n-1)/2.

use super::may_go;

/// The fiber body.
pub fn fiber(rt: &fiber::Runtime, n: u64) -> u64 {
    rt.block_on(|| {
        let handles: Vec<_> = (0..n).map(|i| fiber::spawn(move || i)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// The tokio body.
pub fn tokio(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async move {
        // Spawn from a worker task, as the fiber and may variants do.
        tokio::spawn(async move {
            let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        })
        .await
        .unwrap()
    })
}

/// The may body.
pub fn may(n: u64) -> u64 {
    let outer = may_go(move || {
        let handles: Vec<_> = (0..n).map(|i| may_go(move || i)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    outer.join().unwrap()
}

/// The std threads body.
pub fn std(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| std::thread::spawn(move || i)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}
