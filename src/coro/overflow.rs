//! Stack-overflow reporting for fibers.
//!
//! A fault on a guarded stack's guard page arrives as SIGSEGV (or SIGBUS) on the worker's alternate
//! signal stack. The handler compares the fault address with the guard range of the fiber running
//! on this thread (published in [`RUNNING`] by `Coro::resume`), and the interrupted stack pointer
//! with the bottom of that fiber's stack (an unguarded stack that overflowed faults somewhere below
//! it); on a match it writes
//! `fiber '<name>' has overflowed its stack` to stderr and aborts, as std does for threads. Any other
//! fault is handed to the handler that was installed before ours (std's, which reports overflows
//! of the thread's own stack, or the default action).
use std::cell::Cell;
use std::sync::OnceLock;

/// What the signal handler needs to know about the fiber on this thread's CPU.
pub(crate) struct RunningStack {
    pub(crate) guard_lo: usize,
    pub(crate) guard_hi: usize,
    /// Lowest usable address of the stack: a stack pointer below it means the fiber overflowed
    /// (how an unguarded stack's overflow is recognised when it ends in a fault elsewhere).
    pub(crate) stack_lo: usize,
    pub(crate) id: u64,
    /// The fiber's name (`None` if unnamed); the bytes outlive the fiber's run. A `&String`, not
    /// a `&str`, to keep this (part of every task) one word smaller.
    pub(crate) name: Option<&'static String>,
}

thread_local! {
    /// The stack of the fiber currently running on this thread, or null.
    pub(crate) static RUNNING: Cell<*const RunningStack> = const { Cell::new(std::ptr::null()) };
}

struct Previous {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

// SAFETY: `sigaction` is plain data (handler addresses, flags, a signal mask).
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();

/// Installs the overflow handler once per process.
pub(crate) fn install_handler() {
    PREVIOUS.get_or_init(|| {
        // SAFETY: `sigaction` is plain data (a handler address, flags, a signal set, on some
        // targets a restorer address): all zeroes is a valid value.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = handler as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a valid sigset_t we borrow exclusively.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // Out-parameters: the kernel overwrites them with the previous dispositions.
        let (mut segv, mut bus) = (new, new);
        // SAFETY: sigaction with a fully initialised struct; the handler only performs
        // async-signal-safe work (TLS read of a const-initialised Cell, write(2), abort, sigaction).
        unsafe { libc::sigaction(libc::SIGSEGV, &new, &mut segv) };
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGBUS, &new, &mut bus) };
        Previous { segv, bus }
    });
}

/// Makes sure the calling thread has an alternate signal stack, so the handler can run when the
/// fault is an exhausted stack. std gives its threads one; this covers threads it did not.
pub(crate) fn ensure_alt_stack() {
    const ALT_SIZE: usize = 64 * 1024;
    let mut old = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: 0,
        ss_size: 0,
    };
    // SAFETY: querying the current alternate stack with a null new-stack pointer changes nothing.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return;
    }
    let stack = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: ALT_SIZE,
    };
    // SAFETY: `stack` describes the mapping made just above, which nothing else uses; it is left
    // to the process (never unmapped): a worker thread lives as long as its runtime.
    unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) };
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers, alive while we run.
    let siginfo = unsafe { &*info };
    // SAFETY: for SIGSEGV/SIGBUS the kernel fills in the fault address, the union member
    // `si_addr` reads.
    let addr = unsafe { siginfo.si_addr() } as usize;
    let running = RUNNING.with(|r| r.get());
    if !running.is_null() {
        // SAFETY: RUNNING points at the RunningStack of the coroutine being resumed on this thread;
        // it stays valid until resume returns, which cannot happen while we are in this handler.
        let stack = unsafe { &*running };
        let in_guard = addr >= stack.guard_lo && addr < stack.guard_hi;
        if in_guard || stack_pointer(ctx).is_some_and(|sp| sp < stack.stack_lo) {
            report_overflow(stack.name.map(String::as_str), stack.id);
        }
    }
    chain(sig, info, ctx);
}

/// The interrupted stack pointer, from the signal's machine context.
fn stack_pointer(ctx: *mut libc::c_void) -> Option<usize> {
    if ctx.is_null() {
        return None;
    }
    let uc = ctx.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t as the third
        // argument; reading a saved register is plain memory access.
        Some(unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] } as usize)
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        Some(unsafe { (*uc).uc_mcontext.sp } as usize)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        None
    }
}

fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(prev) = PREVIOUS.get() else { return };
    let prev = if sig == libc::SIGBUS {
        &prev.bus
    } else {
        &prev.segv
    };
    let action = prev.sa_sigaction;
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        // Restore the default and return: the faulting instruction runs again and the default
        // action (a core dump) happens with the right signal state.
        // SAFETY: reinstalling the previous disposition, a plain data struct copied at install.
        unsafe { libc::sigaction(sig, prev, std::ptr::null_mut()) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous handler was installed without SA_SIGINFO: a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
        f(sig);
    }
}

/// Writes the overflow message and aborts. Async-signal-safe: no allocation, no locks.
pub(crate) fn report_overflow(name: Option<&str>, id: u64) -> ! {
    let mut digits = [0u8; 20];
    let mut n = id;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let parts: [&[u8]; 3] = match name {
        Some(name) => [
            b"\nfiber '",
            name.as_bytes(),
            b"' has overflowed its stack\n",
        ],
        None => [b"\nfiber '#", &digits[i..], b"' has overflowed its stack\n"],
    };
    for part in parts
        .iter()
        .chain([&b"fatal runtime error: stack overflow, aborting\n"[..]].iter())
    {
        // SAFETY: writing an initialised byte slice to stderr.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: abort has no preconditions and is async-signal-safe.
    unsafe { libc::abort() }
}
