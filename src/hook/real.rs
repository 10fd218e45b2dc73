//! The real libc functions behind the interposed ones: `dlsym(RTLD_NEXT, name)`, resolved on first
//! use and cached. Safe before `main`: the dynamic loader is ready before any user code runs, and
//! dlsym's own allocations go to `malloc`, which is not interposed, so resolving cannot recurse.
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One real function, by name.
pub(super) struct Real {
    name: &'static CStr,
    addr: AtomicUsize,
}

impl Real {
    pub(super) const fn new(name: &'static CStr) -> Real {
        Real {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The function's address, or `None` if no later object defines it.
    #[inline]
    pub(super) fn addr(&self) -> Option<usize> {
        match self.addr.load(Ordering::Relaxed) {
            0 => self.resolve(),
            addr => Some(addr),
        }
    }

    #[cold]
    fn resolve(&self) -> Option<usize> {
        // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT asks for the next definition after
        // this object, which is libc's. Concurrent first calls resolve the same address.
        let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) } as usize;
        if addr != 0 {
            self.addr.store(addr, Ordering::Relaxed);
        }
        (addr != 0).then_some(addr)
    }
}

/// Declares the real function `$name` with its C signature, as a safe-to-name static `$real` and
/// an `unsafe fn $call(args) -> ret` that calls it (or fails with `ENOSYS` if libc lacks it).
macro_rules! real {
    ($real:ident, $call:ident, $name:literal, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, $enosys:expr $(,)?) => {
        static $real: $crate::hook::real::Real = $crate::hook::real::Real::new($name);

        /// Calls the real libc function.
        ///
        /// # Safety
        /// The libc function's own contract.
        #[inline]
        #[allow(clippy::too_many_arguments)] // libc's signature
        unsafe fn $call($($arg: $ty),*) -> $ret {
            match $real.addr() {
                Some(addr) => {
                    type Fn = unsafe extern "C" fn($($ty),*) -> $ret;
                    // SAFETY: `addr` is libc's definition of this symbol, whose C signature is
                    // the one declared here.
                    let f = unsafe { std::mem::transmute::<usize, Fn>(addr) };
                    // SAFETY: the caller upholds the libc function's contract.
                    unsafe { f($($arg),*) }
                }
                None => $enosys,
            }
        }
    };
}
pub(super) use real;
