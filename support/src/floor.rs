//! The floors a stackful runtime cannot go below on this machine, measured in the same run as the
//! figures they bound (issue 17, "say how close to the limit"):
//!
//! - [`page_floor`]: the time to touch `n` fresh pages, one write each, split over `threads`
//!   threads, in a child process of its own (so that its page faults and RSS are not the
//!   caller's). A million sleeping fibers touch at least a million fresh stack pages.
//! - [`sleeper_floor_kib`]: the memory one sleeping fiber cannot do without: one stack page and
//!   its task header's heap chunk.

use std::process::Command;
use std::time::{Duration, Instant};

/// The heap chunk of one spawned fiber's task (header, closure and join packet in one `Arc`
/// allocation) for a closure of up to 24 bytes, as glibc's malloc sizes it. fiber's own test
/// `the_task_header_stays_small` asserts exactly this value, so it fails when this goes stale.
pub const TASK_CHUNK: usize = 288;

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// The memory floor of one sleeping fiber, in KiB: a stack page plus `header_chunk` bytes of
/// heap for its task (the header's allocation size class, as the runtime's own size test gives).
pub fn sleeper_floor_kib(header_chunk: usize) -> f64 {
    (page_size() + header_chunk) as f64 / 1024.0
}

/// Touches `n` fresh anonymous pages on `threads` threads, in this process; the time taken.
pub fn touch_pages_here(n: usize, threads: usize) -> Duration {
    let page = page_size();
    let len = n.max(1) * page;
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert!(base != libc::MAP_FAILED, "mmap of {len} bytes failed");
    let addr = base as usize;
    let threads = threads.max(1);
    let per = n.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (from, to) = (t * per, ((t + 1) * per).min(n));
            s.spawn(move || {
                for i in from..to {
                    // SAFETY: page `i` lies inside the mapping made above (i < n), which stays
                    // mapped until after the scope; each thread writes only its own pages.
                    unsafe { ((addr + i * page) as *mut u8).write_volatile(1) };
                }
            });
        }
    });
    let took = start.elapsed();
    // SAFETY: the mapping made above, no longer used by anyone.
    unsafe { libc::munmap(base, len) };
    took
}

/// The program argument that makes [`run_if_asked`] measure a page floor in a child.
const FLAG: &str = "--page-floor";

/// [`touch_pages_here`] in a child process: this executable re-run with `--page-floor N T`,
/// which must call [`run_if_asked`] first thing in `main`. None if the child failed.
pub fn page_floor(n: usize, threads: usize) -> Option<Duration> {
    let out = Command::new(std::env::current_exe().ok()?)
        .args([FLAG, &n.to_string(), &threads.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ns: u64 = text.trim().strip_prefix("page-floor-ns=")?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// In a child started by [`page_floor`]: measures, prints, exits. Otherwise returns.
pub fn run_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(FLAG) {
        return;
    }
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("usage: {FLAG} PAGES THREADS"))
    };
    let took = touch_pages_here(num(2), num(3));
    println!("page-floor-ns={}", took.as_nanos());
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_pages_grows_the_resident_set_by_about_that_much() {
        let n = 4096; // 16 MiB of 4 KiB pages
        let before = crate::mem::mem().rss;
        let page = page_size();
        assert!(page.is_power_of_two(), "page size {page}");
        // Measured while mapped: the peak must have grown by the pages touched.
        crate::mem::reset_peak();
        let took = touch_pages_here(n, 2);
        let grown_kib = crate::mem::mem().hwm.saturating_sub(before);
        assert!(took > Duration::ZERO);
        assert!(
            grown_kib as usize >= n * page / 1024 * 9 / 10,
            "touched {n} pages, peak grew {grown_kib} KiB"
        );
        assert!(sleeper_floor_kib(288) > page as f64 / 1024.0);
    }
}
