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

const USAGE: &str = "usage: build_drop [--cycles N] [--fibers N] [--workers N]";

/// What `/proc/self/status` and `/proc/self/fd` say, in KiB and fds.
#[derive(Clone, Copy)]
struct Figures {
    vm_size: u64,
    vm_pte: u64,
    vm_rss: u64,
    fds: usize,
}

fn figures() -> Figures {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Figures {
        vm_size: field("VmSize:"),
        vm_pte: field("VmPTE:"),
        vm_rss: field("VmRSS:"),
        fds: std::fs::read_dir("/proc/self/fd")
            .expect("read /proc/self/fd")
            .count(),
    }
}

fn print(label: &str, f: Figures) {
    println!(
        "{label:>12}: VmSize {:>10} kB  VmPTE {:>8} kB  VmRSS {:>8} kB  fds {:>4}",
        f.vm_size, f.vm_pte, f.vm_rss, f.fds
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
    let (mut cycles, mut fibers, mut workers) = (40usize, 10_000usize, 2usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let target = match arg.as_str() {
            "--cycles" => &mut cycles,
            "--fibers" => &mut fibers,
            "--workers" => &mut workers,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        };
        match args.next().and_then(|v| v.parse().ok()) {
            Some(v) if v > 0 => *target = v,
            _ => {
                eprintln!("{arg} needs a positive number\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
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
        kib(first.vm_size, last.vm_size),
        kib(first.vm_pte, last.vm_pte),
        kib(first.vm_rss, last.vm_rss),
        last.fds as i64 - first.fds as i64,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
