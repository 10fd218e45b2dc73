//! Builds and drops runtimes in a loop and prints what the process holds afterwards: address
//! space (`VmSize`), kernel page tables (`VmPTE`), resident memory (`VmRSS`) and open fds. Each
//! cycle builds a runtime, runs `--fibers N` short fibers on it that are all alive at once (they
//! meet at a barrier, so each has a stack of its own), and drops it. What a dropped runtime leaves
//! behind shows as growth over the cycles.
//!
//! `cargo run --release --example build_drop -- [--cycles N] [--fibers N] [--workers N]`
//! (defaults: 40 cycles, 10,000 fibers, 2 workers).
use std::process::ExitCode;
use std::sync::Arc;

use fiber_support::flags::{self, Flags};
use fiber_support::mem::{self, Mem};

const USAGE: &str = "usage: build_drop [--cycles N] [--fibers N] [--workers N]";

/// What `/proc/self/status` and `/proc/self/fd` say, in KiB and fds.
#[derive(Clone, Copy)]
struct Figures {
    mem: Mem,
    fds: u64,
}

fn figures() -> Figures {
    Figures {
        mem: mem::mem(),
        fds: mem::open_fds(),
    }
}

fn print(label: &str, f: Figures) {
    println!(
        "{label:>12}: VmSize {:>10} kB  VmPTE {:>8} kB  VmRSS {:>8} kB  fds {:>4}",
        f.mem.size, f.mem.pte, f.mem.rss, f.fds
    );
}

fn cycle(workers: usize, fibers: usize) {
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .thread_name("build-drop")
        .build()
        .expect("build a runtime");
    rt.block_on(|| {
        let barrier = Arc::new(fiber::sync::Barrier::new(fibers));
        let handles: Vec<_> = (0..fibers)
            .map(|_| {
                let barrier = barrier.clone();
                fiber::spawn(move || {
                    barrier.wait();
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a fiber panicked");
        }
    });
    drop(rt);
}

fn main() -> ExitCode {
    let mut flags = Flags::parse(USAGE, &[]);
    let cycles: usize = flags.get("--cycles", 40);
    let fibers: usize = flags.get("--fibers", 10_000);
    let workers: usize = flags.get("--workers", 2);
    flags.done();
    if cycles == 0 || fibers == 0 || workers == 0 {
        flags::fail(USAGE, "--cycles, --fibers and --workers must be at least 1");
    }
    println!(
        "{cycles} cycles of build -> {fibers} fibers alive at once -> drop, {workers} workers"
    );
    print("start", figures());
    // One cycle first: process-wide state made on first use (the I/O slot table, malloc arenas
    // of the worker threads) is not a per-runtime leak.
    cycle(workers, fibers);
    let first = figures();
    print("after 1", first);
    let start = std::time::Instant::now();
    for i in 2..=cycles {
        cycle(workers, fibers);
        if i % 10 == 0 || i == cycles {
            print(&format!("after {i}"), figures());
        }
    }
    let last = figures();
    let kib = |a: u64, b: u64| b as i64 - a as i64;
    println!(
        "growth over cycles 2..={cycles}: VmSize {:+} kB, VmPTE {:+} kB, VmRSS {:+} kB, fds {:+} \
         ({:.1} s)",
        kib(first.mem.size, last.mem.size),
        kib(first.mem.pte, last.mem.pte),
        kib(first.mem.rss, last.mem.rss),
        last.fds as i64 - first.fds as i64,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
