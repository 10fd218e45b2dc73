//! The interposed resolver (`--features hook`): `getaddrinfo`, `getnameinfo` and the
//! `gethostby*` family in a fiber run on the blocking pool, a bounded number at once, and give
//! exactly what libc gives a plain thread; a runtime dropped mid-lookup neither aborts nor hangs.
//! Offline on purpose: localhost, numeric addresses and `.invalid` only.
mod support;

use std::ffi::{CStr, CString};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{runtime, watchdog, DropCounter};

/// One test at a time: the thread-count bound counts the whole process, which other tests'
/// runtimes would inflate.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads of this process, and how many of them are blocking-pool threads.
fn threads() -> (usize, usize) {
    let mut all = 0;
    let mut pool = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        all += 1;
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        pool += usize::from(comm.trim_end() == "fiber-blocking");
    }
    (all, pool)
}

/// Runs `f` on a plain thread and in a fiber; returns both results.
fn thread_and_fiber<T: Send + 'static>(f: fn() -> T) -> (T, T) {
    let on_thread = std::thread::spawn(f).join().unwrap();
    let rt = runtime(2, "dns");
    let in_fiber = rt.block_on(move || {
        assert!(fiber::is_fiber());
        f()
    });
    (on_thread, in_fiber)
}

fn sorted(addrs: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut addrs: Vec<_> = addrs.collect();
    addrs.sort();
    addrs
}

/// `getaddrinfo` through libc's own interface: its return code, errno when it is `EAI_SYSTEM`,
/// and the addresses (as text, one per entry).
fn raw_getaddrinfo(host: &str, service: &str) -> (i32, i32, Vec<String>) {
    let host = CString::new(host).unwrap();
    let service = CString::new(service).unwrap();
    // SAFETY: all-zero is a valid `addrinfo` (null pointers, no flags).
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res = std::ptr::null_mut();
    // SAFETY: valid strings, hints and result slot.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), service.as_ptr(), &hints, &mut res) };
    let errno = if rc == libc::EAI_SYSTEM {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    let mut addrs = Vec::new();
    let mut ai = res;
    while !ai.is_null() {
        // SAFETY: a node of the list getaddrinfo returned, not yet freed.
        let node = unsafe { &*ai };
        // SAFETY: `ai_addr` points to `ai_addrlen` bytes of socket address.
        let bytes = unsafe {
            std::slice::from_raw_parts(node.ai_addr.cast::<u8>(), node.ai_addrlen as usize)
        };
        addrs.push(format!("{} {:?}", node.ai_family, bytes));
        ai = node.ai_next;
    }
    if !res.is_null() {
        // SAFETY: the list getaddrinfo returned, freed once.
        unsafe { libc::freeaddrinfo(res) };
    }
    (rc, errno, addrs)
}

#[test]
fn localhost_resolves_as_on_a_thread() {
    let _serial = serial();
    watchdog(60, || {
        let (thread, fiber) =
            thread_and_fiber(|| sorted("localhost:80".to_socket_addrs().unwrap()));
        assert!(!thread.is_empty());
        assert_eq!(fiber, thread);
        let (thread, fiber) = thread_and_fiber(|| raw_getaddrinfo("localhost", "80"));
        assert_eq!(thread.0, 0);
        assert_eq!(fiber, thread);
    });
}

// SAFETY: glibc's declaration (netdb.h); the libc crate does not bind it.
unsafe extern "C" {
    fn gethostbyname_r(
        name: *const libc::c_char,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
}

#[test]
fn gethostbyname_r_matches_a_thread() {
    fn lookup() -> (i32, i32, Vec<Vec<u8>>) {
        // SAFETY: all-zero is a valid `hostent` to be written.
        let mut ent: libc::hostent = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result = std::ptr::null_mut();
        let mut h_errno = 0;
        // SAFETY: valid name, entry, buffer of its length, result and h_errno slots.
        let rc = unsafe {
            gethostbyname_r(
                c"localhost".as_ptr(),
                &mut ent,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
                &mut h_errno,
            )
        };
        let mut addrs = Vec::new();
        if !result.is_null() {
            let len = ent.h_length as usize;
            let mut p = ent.h_addr_list;
            loop {
                // SAFETY: a null-terminated list of pointers to `h_length`-byte addresses, in
                // `buf`; `p` has not passed its terminator.
                let addr = unsafe { *p };
                if addr.is_null() {
                    break;
                }
                // SAFETY: as above.
                let bytes = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len) };
                addrs.push(bytes.to_vec());
                // SAFETY: still inside the list (its terminator not reached yet).
                p = unsafe { p.add(1) };
            }
        }
        (rc, h_errno, addrs)
    }
    let _serial = serial();
    watchdog(60, || {
        let (thread, fiber) = thread_and_fiber(lookup);
        assert_eq!(thread.0, 0, "localhost has an entry");
        assert!(!thread.2.is_empty());
        assert_eq!(fiber, thread);
    });
}

// SAFETY: glibc's declarations (netdb.h); the libc crate does not bind them.
unsafe extern "C" {
    fn gethostbyname(name: *const libc::c_char) -> *mut libc::hostent;
    fn gethostbyname2(name: *const libc::c_char, af: libc::c_int) -> *mut libc::hostent;
    fn gethostbyaddr(
        addr: *const libc::c_void,
        len: libc::socklen_t,
        kind: libc::c_int,
    ) -> *mut libc::hostent;
    fn gethostbyname2_r(
        name: *const libc::c_char,
        af: libc::c_int,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
    fn gethostbyaddr_r(
        addr: *const libc::c_void,
        len: libc::socklen_t,
        kind: libc::c_int,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
    fn __h_errno_location() -> *mut libc::c_int;
}

/// An entry's official name, address type and addresses; `None` for a null entry.
fn entry(ent: *const libc::hostent) -> Option<(String, i32, Vec<Vec<u8>>)> {
    // SAFETY: null, or an entry libc just filled (valid until the next call on it).
    let ent = unsafe { ent.as_ref() }?;
    let name = if ent.h_name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated name.
        unsafe { CStr::from_ptr(ent.h_name) }
            .to_string_lossy()
            .into_owned()
    };
    let mut addrs = Vec::new();
    let mut p = ent.h_addr_list;
    loop {
        // SAFETY: a null-terminated list of `h_length`-byte addresses; not past its end yet.
        let addr = unsafe { *p };
        if addr.is_null() {
            break;
        }
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), ent.h_length as usize) };
        addrs.push(bytes.to_vec());
        // SAFETY: still inside the list.
        p = unsafe { p.add(1) };
    }
    Some((name, ent.h_addrtype, addrs))
}

/// The calling thread's `h_errno`.
fn h_errno() -> i32 {
    // SAFETY: no preconditions; it returns this thread's slot.
    let slot = unsafe { __h_errno_location() };
    // SAFETY: the slot is valid for the thread's life.
    unsafe { *slot }
}

type Lookup = (Option<(String, i32, Vec<Vec<u8>>)>, i32);

/// The whole `gethostby*` family, each result with `h_errno` when it failed.
fn gethostby_family() -> Vec<Lookup> {
    let loopback = [127u8, 0, 0, 1];
    let fail = |ent: *mut libc::hostent| if ent.is_null() { h_errno() } else { 0 };
    let mut out = Vec::new();
    for name in [c"localhost", c"no-such-host.invalid"] {
        // SAFETY: a NUL-terminated name.
        let ent = unsafe { gethostbyname(name.as_ptr()) };
        out.push((entry(ent), fail(ent)));
        // SAFETY: as above.
        let ent = unsafe { gethostbyname2(name.as_ptr(), libc::AF_INET) };
        out.push((entry(ent), fail(ent)));
    }
    // SAFETY: four readable bytes of an IPv4 address.
    let ent = unsafe { gethostbyaddr(loopback.as_ptr().cast(), 4, libc::AF_INET) };
    out.push((entry(ent), fail(ent)));
    for reentrant in 0..2 {
        // SAFETY: all-zero is a valid `hostent` to be written.
        let mut ent: libc::hostent = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result = std::ptr::null_mut();
        let mut h_err = 0;
        let rc = if reentrant == 0 {
            // SAFETY: a valid name, entry, buffer of its length, result and h_errno slots.
            unsafe {
                gethostbyname2_r(
                    c"localhost".as_ptr(),
                    libc::AF_INET,
                    &mut ent,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                    &mut h_err,
                )
            }
        } else {
            // SAFETY: a readable 4-byte address, entry, buffer, result and h_errno slots.
            unsafe {
                gethostbyaddr_r(
                    loopback.as_ptr().cast(),
                    4,
                    libc::AF_INET,
                    &mut ent,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                    &mut h_err,
                )
            }
        };
        out.push((entry(result), rc * 1000 + h_err));
    }
    out
}

#[test]
fn the_gethostby_family_matches_a_thread() {
    let _serial = serial();
    watchdog(60, || {
        let (thread, fiber) = thread_and_fiber(gethostby_family);
        assert!(thread[0].0.is_some(), "localhost has an entry: {thread:?}");
        assert!(
            thread[2].0.is_none() && thread[2].1 != 0,
            "the .invalid name fails"
        );
        assert!(thread[4].0.is_some(), "127.0.0.1 has a name: {thread:?}");
        assert_eq!(fiber, thread);
    });
}

#[test]
fn an_unknown_host_fails_as_on_a_thread() {
    let _serial = serial();
    watchdog(60, || {
        let (thread, fiber) = thread_and_fiber(|| {
            let e = "no-such-host.invalid:80".to_socket_addrs().unwrap_err();
            (e.kind(), e.to_string())
        });
        assert_eq!(fiber, thread);
        let (thread, fiber) = thread_and_fiber(|| raw_getaddrinfo("no-such-host.invalid", "80"));
        assert_ne!(thread.0, 0, "the lookup failed");
        assert_eq!(fiber, thread, "same code (and errno, for EAI_SYSTEM)");
    });
}

#[test]
fn getnameinfo_matches_a_thread() {
    fn name_of_loopback(flags: i32) -> (i32, String, String) {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 80u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut host = [0 as libc::c_char; 1025];
        let mut serv = [0 as libc::c_char; 32];
        // SAFETY: a valid address of its length; buffers writable for their lengths.
        let rc = unsafe {
            libc::getnameinfo(
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                serv.as_mut_ptr(),
                serv.len() as libc::socklen_t,
                flags,
            )
        };
        // Zero-initialised buffers: NUL-terminated whatever getnameinfo wrote.
        let text = |b: &[libc::c_char]| {
            let bytes: Vec<u8> = b.iter().map(|&c| c as u8).collect();
            let text = CStr::from_bytes_until_nul(&bytes).unwrap();
            text.to_string_lossy().into_owned()
        };
        (rc, text(&host), text(&serv))
    }
    let _serial = serial();
    watchdog(60, || {
        let (thread, fiber) = thread_and_fiber(|| name_of_loopback(0));
        assert_eq!(thread.0, 0);
        assert!(!thread.1.is_empty());
        assert_eq!(fiber, thread);
        let (thread, fiber) =
            thread_and_fiber(|| name_of_loopback(libc::NI_NUMERICHOST | libc::NI_NUMERICSERV));
        assert_eq!(thread, (0, "127.0.0.1".to_owned(), "80".to_owned()));
        assert_eq!(fiber, thread);
    });
}

#[test]
fn a_thousand_lookups_use_few_threads() {
    let _serial = serial();
    watchdog(120, || {
        let expected = sorted(("localhost", 0).to_socket_addrs().unwrap());
        let rt = runtime(2, "dns-many");
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut most, mut most_pool) = (0, 0);
                while !done.load(Ordering::SeqCst) {
                    let (all, pool) = threads();
                    most = most.max(all);
                    most_pool = most_pool.max(pool);
                    std::thread::sleep(Duration::from_millis(1));
                }
                (most, most_pool)
            })
        };
        let ok = rt.block_on(move || {
            let lookups: Vec<_> = (0..1000)
                .map(|_| {
                    let expected = expected.clone();
                    fiber::spawn(move || {
                        sorted(("localhost", 0).to_socket_addrs().unwrap()) == expected
                    })
                })
                .collect();
            lookups
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&ok| ok)
                .count()
        });
        done.store(true, Ordering::SeqCst);
        let (most, most_pool) = sampler.join().unwrap();
        assert_eq!(ok, 1000, "every lookup gave localhost's addresses");
        assert!(most_pool >= 1, "the lookups ran on the blocking pool");
        assert!(
            most < 64,
            "{most} threads at the peak ({most_pool} in the blocking pool)"
        );
    });
}

/// Shutdown while many fibers are inside `getaddrinfo` (running on the pool, queued in the DNS
/// lane, or just woken): no abort (nothing unwinds through the hook), no hang, every fiber
/// unwound. The deterministic cases (a queued lookup withdrawn, a started one completed before
/// its fiber unwinds) are `blocking::tests::uncancellable_wait_completes_or_withdraws`.
#[test]
fn a_runtime_dropped_mid_lookup_unwinds_its_fibers() {
    const FIBERS: usize = 1000;
    let _serial = serial();
    watchdog(120, || {
        let rt = runtime(2, "dns-drop");
        let unwound = DropCounter::new();
        let lookups = Arc::new(AtomicUsize::new(0));
        for _ in 0..FIBERS {
            let guard = unwound.guard();
            let lookups = lookups.clone();
            rt.spawn(move || {
                let _guard = guard;
                loop {
                    match ("localhost", 80).to_socket_addrs() {
                        Ok(_) => {
                            lookups.fetch_add(1, Ordering::SeqCst);
                        }
                        // Withdrawn from the lane's queue by the shutdown: the next park unwinds.
                        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
                        Err(e) => panic!("localhost failed to resolve: {e}"),
                    }
                    fiber::yield_now();
                }
            });
        }
        while lookups.load(Ordering::SeqCst) < 2 * FIBERS {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t0 = Instant::now();
        drop(rt);
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "shutdown took {:?}",
            t0.elapsed()
        );
        assert_eq!(unwound.get(), FIBERS, "every fiber was unwound");
    });
}
