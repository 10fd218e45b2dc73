//! The JSON form of a [`Dump`], written by hand (no serde in the library). The shape follows the
//! JDK's `jcmd Thread.dump_to_file -format=json` (its `threadDump` / `threadContainers` /
//! `threads`, with fibers for threads, one container per worker): docs/observability.md.
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use super::dump::{Dump, FiberInfo};
use super::reason::WaitReason;

/// Appends `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn site(out: &mut String, loc: &std::panic::Location<'_>) {
    string(
        out,
        &format!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
    );
}

fn opt_id(out: &mut String, key: &str, id: Option<crate::task::FiberId>) {
    if let Some(id) = id {
        let _ = write!(out, ",\"{key}\":\"{}\"", id.as_u64());
    }
}

fn reason(out: &mut String, r: &WaitReason) {
    out.push_str("{\"kind\":");
    string(out, r.kind());
    match r {
        WaitReason::Park | WaitReason::Select | WaitReason::Blocking => {}
        WaitReason::Scope | WaitReason::Group => {}
        WaitReason::ParkTimeout { until } | WaitReason::Sleep { until } => {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let _ = write!(out, ",\"remainingMillis\":{}", left.as_millis());
        }
        WaitReason::Join { fiber } => opt_id(out, "fiber", Some(*fiber)),
        WaitReason::Mutex { lock, owner } => {
            let _ = write!(out, ",\"object\":\"{lock:#x}\"");
            opt_id(out, "owner", *owner);
        }
        WaitReason::RwLockRead { lock, writer } | WaitReason::RwLockWrite { lock, writer } => {
            let _ = write!(out, ",\"object\":\"{lock:#x}\"");
            opt_id(out, "owner", *writer);
        }
        WaitReason::Condvar { condvar: a }
        | WaitReason::ChannelSend { channel: a }
        | WaitReason::ChannelRecv { channel: a }
        | WaitReason::Semaphore { semaphore: a }
        | WaitReason::Barrier { barrier: a }
        | WaitReason::WaitGroup { group: a } => {
            let _ = write!(out, ",\"object\":\"{a:#x}\"");
        }
        WaitReason::FdRead { fd, peer } | WaitReason::FdWrite { fd, peer } => {
            let _ = write!(out, ",\"fd\":{fd}");
            if let Some(peer) = peer {
                out.push_str(",\"peer\":");
                string(out, &peer.to_string());
            }
        }
        WaitReason::Hook { function, fd } => {
            out.push_str(",\"function\":");
            string(out, function);
            if let Some(fd) = fd {
                let _ = write!(out, ",\"fd\":{fd}");
            }
        }
    }
    out.push('}');
}

fn fiber(out: &mut String, f: &FiberInfo) {
    let _ = write!(out, "{{\"tid\":\"{}\",\"name\":", f.id.as_u64());
    string(out, f.name.as_deref().unwrap_or(""));
    out.push_str(",\"state\":");
    string(out, f.state.as_str());
    let _ = write!(out, ",\"stateMillis\":{}", f.since.as_millis());
    if let Some(r) = &f.reason {
        out.push_str(",\"waitingOn\":");
        reason(out, r);
    }
    if let Some(p) = f.park_site {
        out.push_str(",\"parkSite\":");
        site(out, p);
    }
    out.push_str(",\"spawnSite\":");
    site(out, f.spawn_site);
    // No stack: fiber stacks are not unwound for dumps (docs/observability.md). The park site
    // stands in as the one frame.
    out.push_str(",\"stack\":[");
    if let Some(p) = f.park_site {
        site(out, p);
    }
    out.push_str("]}");
}

/// The whole dump as one JSON object.
pub(crate) fn to_json(dump: &Dump) -> String {
    let mut out = String::with_capacity(256 + dump.fibers.len() * 256);
    let time = dump
        .taken_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let _ = write!(
        out,
        "{{\"fiberDump\":{{\"processId\":\"{}\",\"timeMillis\":{time},\"runtimeVersion\":",
        std::process::id()
    );
    string(&mut out, concat!("fiber ", env!("CARGO_PKG_VERSION")));
    let _ = write!(
        out,
        ",\"tookMicros\":{},\"notStarted\":{},\"notListed\":{},\"fiberContainers\":[",
        dump.took.as_micros(),
        dump.unstarted,
        dump.unlisted
    );
    // One container per (runtime, worker), in order; fibers are sorted that way.
    let mut first_container = true;
    let mut i = 0;
    while i < dump.fibers.len() {
        let (rt, worker) = (dump.fibers[i].runtime, dump.fibers[i].worker);
        let mut j = i;
        while j < dump.fibers.len()
            && (dump.fibers[j].runtime, dump.fibers[j].worker) == (rt, worker)
        {
            j += 1;
        }
        if !first_container {
            out.push(',');
        }
        first_container = false;
        let _ = write!(
            out,
            "{{\"container\":\"runtime-{rt}/worker-{worker}\",\"parent\":\"<root>\",\"fibers\":["
        );
        for (k, f) in dump.fibers[i..j].iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            fiber(&mut out, f);
        }
        let _ = write!(out, "],\"fiberCount\":\"{}\"}}", j - i);
        i = j;
    }
    out.push_str("],\"cycles\":[");
    for (k, c) in dump.cycles.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str("{\"fibers\":[");
        for (m, id) in c.fibers.iter().enumerate() {
            if m > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\"", id.as_u64());
        }
        out.push_str("]}");
    }
    out.push_str("]}}");
    out
}
