//! Memory and resource figures of this process from `/proc/self`, and handing freed heap back.

/// Memory figures of this process, in KiB, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    /// Resident set now (`VmRSS`).
    pub rss: u64,
    /// Peak resident set since start or the last [`reset_peak`] (`VmHWM`).
    pub hwm: u64,
    /// Page tables (`VmPTE`): kernel memory, not part of the RSS.
    pub pte: u64,
    /// Address space (`VmSize`).
    pub size: u64,
    /// Threads of this process (`Threads`, a count, not KiB).
    pub threads: u64,
    /// Memory maps in use (lines of `/proc/self/maps`); only filled by [`mem_with_maps`].
    pub maps: u64,
}

/// Reads [`Mem`] (without the map count, which is slow to read with many maps).
pub fn mem() -> Mem {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        pte: field("VmPTE:"),
        size: field("VmSize:"),
        threads: field("Threads:"),
        maps: 0,
    }
}

/// [`mem`] plus the number of memory maps.
pub fn mem_with_maps() -> Mem {
    let maps = std::fs::read("/proc/self/maps")
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0);
    Mem { maps, ..mem() }
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5); false if not allowed.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Hands freed heap memory back to the OS between phases, so that one phase's leftovers do not
/// serve (and hide) the next phase's allocations.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Open fds of this process (the directory handle that reads them included, a constant offset).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}
