//! Skynet: a 10-ary tree of workers; each leaf returns its number, each inner node spawns its 10
//! children and sums their joins. A tree of `leaves` leaves sums to leaves(leaves-1)/2.

use std::future::Future;
use std::pin::Pin;

use super::may_go;

/// Total number of workers in a tree of `leaves` leaves (1M leaves: 1,111,111).
pub fn workers(leaves: u64) -> u64 {
    let mut total = 0;
    let mut level = leaves;
    while level >= 1 {
        total += level;
        level /= 10;
    }
    total
}

/// One node: a leaf returns `num`; an inner node spawns its 10 children with `spawn(num, size)`
/// and sums their `join`s. Generic so every peer runs the same tree without boxing.
fn node<H>(num: u64, size: u64, spawn: impl Fn(u64, u64) -> H, join: impl Fn(H) -> u64) -> u64 {
    if size == 1 {
        return num;
    }
    let step = size / 10;
    let children: Vec<H> = (0..10).map(|i| spawn(num + i * step, step)).collect();
    children.into_iter().map(join).sum()
}

/// The fiber body.
pub fn fiber(rt: &fiber::Runtime, leaves: u64) -> u64 {
    rt.block_on(|| fiber_node(0, leaves))
}

fn fiber_node(num: u64, size: u64) -> u64 {
    node(
        num,
        size,
        |n, s| fiber::spawn(move || fiber_node(n, s)),
        |h| h.join().unwrap(),
    )
}

/// The tokio body.
pub fn tokio(rt: &tokio::runtime::Runtime, leaves: u64) -> u64 {
    rt.block_on(async move { tokio::spawn(tokio_node(0, leaves)).await })
        .unwrap()
}

fn tokio_node(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let step = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| tokio::spawn(tokio_node(num + i * step, step)))
            .collect();
        let mut sum = 0;
        for h in children {
            sum += h.await.unwrap();
        }
        sum
    })
}

/// may must be configured (workers) before its first use.
pub fn may(leaves: u64) -> u64 {
    may_go(move || may_node(0, leaves)).join().unwrap()
}

fn may_node(num: u64, size: u64) -> u64 {
    node(
        num,
        size,
        |n, s| may_go(move || may_node(n, s)),
        |h| h.join().unwrap(),
    )
}

/// One OS thread per tree node.
pub fn std(leaves: u64) -> u64 {
    std_node(0, leaves)
}

fn std_node(num: u64, size: u64) -> u64 {
    node(
        num,
        size,
        |n, s| std::thread::spawn(move || std_node(n, s)),
        |h| h.join().unwrap(),
    )
}
