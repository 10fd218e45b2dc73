//! Measures how much fiber stack common Rust code needs, to justify `fiber::DEFAULT_STACK_SIZE`.
//!
//! For each workload it binary-searches the smallest `Builder::stack_size` at which the workload
//! completes, running every attempt in a child process (an overflow aborts the child with
//! "fiber '...' has overflowed its stack"). Run: `cargo run --release --example stack_depth`.
use std::io::{BufRead, Read, Write};
use std::process::Command;

const WORKLOADS: &[(&str, &str)] = &[
    ("format", "format!/println! of nested Debug values"),
    (
        "std_io",
        "std::fs write/read_to_string, BufReader lines, io::copy (8 KiB stack buffer)",
    ),
    (
        "panic",
        "a panic caught by catch_unwind (message printed by the default hook)",
    ),
    (
        "panic_backtrace",
        "the same with RUST_BACKTRACE=1 (the hook symbolises a backtrace)",
    ),
];

fn workload(name: &str) {
    match name {
        "format" => {
            let v: Vec<(u64, String, Option<f64>)> = (0..20)
                .map(|i| (i, format!("item {i}"), Some(i as f64 / 3.0)))
                .collect();
            let s = format!(
                "{v:#?} {:>20.5} {:?}",
                2.71,
                std::collections::BTreeMap::from([(1, "a"), (2, "b")])
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", s.len()).unwrap();
        }
        "std_io" => {
            let dir =
                std::env::temp_dir().join(format!("fiber-stack-depth-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("data.txt");
            std::fs::write(&path, "line one\nline two\nline three\n".repeat(1000)).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = std::io::BufReader::new(std::fs::File::open(&path).unwrap())
                .lines()
                .count();
            let mut sink = Vec::new();
            std::io::copy(
                &mut std::fs::File::open(&path).unwrap().take(100_000),
                &mut sink,
            )
            .unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            assert_eq!(lines, 3000);
            assert_eq!(sink.len(), text.len());
        }
        "panic" | "panic_backtrace" => {
            let r = std::panic::catch_unwind(|| panic!("measured panic {}", 42));
            assert!(r.is_err());
        }
        other => panic!("unknown workload {other}"),
    }
}

fn child(name: &str, size: usize) {
    let rt = fiber::Runtime::builder()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let name = name.to_string();
    let h = rt.block_on(|| {
        fiber::Builder::new()
            .name("measured".into())
            .stack_size(size)
            .spawn(move || workload(&name))
    });
    h.expect("spawn").join().expect("workload failed");
}

fn survives(name: &str, size: usize) -> bool {
    let backtrace = if name == "panic_backtrace" { "1" } else { "0" };
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", name, &size.to_string()])
        .env("RUST_BACKTRACE", backtrace)
        .output()
        .expect("run child");
    out.status.success()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child" {
        return child(&args[2], args[3].parse().expect("size"));
    }
    println!("{:<16} {:>14}  what", "workload", "min stack");
    for (name, what) in WORKLOADS {
        let page = 4096;
        let (mut lo, mut hi) = (fiber::MIN_STACK_SIZE / page, 4 * 1024 * 1024 / page); // in pages
        if !survives(name, hi * page) {
            println!("{name:<16} {:>14}  {what}", "> 4 MiB");
            continue;
        }
        if survives(name, lo * page) {
            hi = lo;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if survives(name, mid * page) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        println!("{name:<16} {:>10} KiB  {what}", hi * page / 1024);
    }
    println!(
        "default stack size: {} KiB",
        fiber::DEFAULT_STACK_SIZE / 1024
    );
}
