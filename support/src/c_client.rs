//! The small blocking C client of the hook tests (`c/client.c`, `tests/hook_c.rs`), built by
//! build.rs four ways: linked into this crate, plain and fortified, and as shared objects
//! (`libfc_client_{plain,fortified}.so` in `OUT_DIR`) that [`CClient::dlopen`] loads.
//!
//! Every C function returns `-errno` on failure; the wrappers here turn that into `Err(errno)`.
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::net::SocketAddrV4;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How the C source was compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `-O2 -U_FORTIFY_SOURCE`: calls `read`, `recv`, `recvfrom`.
    Plain,
    /// `-O2 -D_FORTIFY_SOURCE=2`: calls `__read_chk`, `__recv_chk`, `__recvfrom_chk` instead.
    Fortified,
}

impl Build {
    /// Both builds.
    pub const ALL: [Build; 2] = [Build::Plain, Build::Fortified];

    fn name(self) -> &'static str {
        match self {
            Build::Plain => "plain",
            Build::Fortified => "fortified",
        }
    }
}

/// Which pair of libc data calls an echo makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// `send` and `recv` (`__recv_chk` when fortified).
    SendRecv,
    /// `write` and `read` (`__read_chk` when fortified).
    WriteRead,
    /// `sendto` and `recvfrom` (`__recvfrom_chk` when fortified) on the connected socket.
    SendtoRecvfrom,
}

impl Calls {
    /// All three pairs.
    pub const ALL: [Calls; 3] = [Calls::SendRecv, Calls::WriteRead, Calls::SendtoRecvfrom];

    fn index(self) -> usize {
        self as usize
    }
}

/// `fc_echo*(host, port, msg, out, outlen, timeout_ms)`.
type EchoFn =
    unsafe extern "C" fn(*const c_char, c_int, *const c_char, *mut c_char, c_int, c_int) -> c_int;
/// `fc_sleep_ms(ms)`.
type SleepFn = unsafe extern "C" fn(c_int) -> c_int;

// SAFETY: the signatures are those of c/client.c, compiled into this crate by build.rs with
// these prefixes.
extern "C" {
    fn fc_plain_echo(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_plain_echo_rw(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_plain_echo_from(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_plain_sleep_ms(ms: c_int) -> c_int;
    fn fc_fortified_echo(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_fortified_echo_rw(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_fortified_echo_from(
        h: *const c_char,
        p: c_int,
        m: *const c_char,
        o: *mut c_char,
        n: c_int,
        t: c_int,
    ) -> c_int;
    fn fc_fortified_sleep_ms(ms: c_int) -> c_int;
}

/// One build of the C client, linked or loaded: its functions, callable from any thread or fiber.
#[derive(Clone, Debug)]
pub struct CClient {
    label: String,
    /// Indexed by [`Calls::index`].
    echo: [EchoFn; 3],
    sleep_ms: SleepFn,
}

impl CClient {
    /// The build linked into this crate (a static library).
    pub fn linked(build: Build) -> CClient {
        let (echo, sleep_ms): ([EchoFn; 3], SleepFn) = match build {
            Build::Plain => (
                [fc_plain_echo, fc_plain_echo_rw, fc_plain_echo_from],
                fc_plain_sleep_ms,
            ),
            Build::Fortified => (
                [
                    fc_fortified_echo,
                    fc_fortified_echo_rw,
                    fc_fortified_echo_from,
                ],
                fc_fortified_sleep_ms,
            ),
        };
        CClient {
            label: format!("linked {}", build.name()),
            echo,
            sleep_ms,
        }
    }

    /// The shared-object build, loaded with `dlopen(RTLD_NOW | RTLD_LOCAL)`. It stays loaded for
    /// the rest of the process (never `dlclose`d): a fiber may still be inside it.
    pub fn dlopen(build: Build) -> Result<CClient, String> {
        let path = shared_object(build);
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{} has a NUL byte", path.display()))?;
        // SAFETY: a NUL-terminated path; the object runs no initialisers of its own.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("dlopen {}: {}", path.display(), dl_error()));
        }
        let find = |name: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: `handle` is a live handle (never closed) and `name` is NUL-terminated.
            let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
            if sym.is_null() {
                Err(format!(
                    "dlsym {name:?} in {}: {}",
                    path.display(),
                    dl_error()
                ))
            } else {
                Ok(sym)
            }
        };
        let echo_at = |name: &CStr| -> Result<EchoFn, String> {
            let sym = find(name)?;
            // SAFETY: c/client.c defines `name` as a function of `EchoFn`'s signature, and the
            // object is never unloaded.
            Ok(unsafe { std::mem::transmute::<*mut c_void, EchoFn>(sym) })
        };
        let echo = [
            echo_at(c"fc_echo")?,
            echo_at(c"fc_echo_rw")?,
            echo_at(c"fc_echo_from")?,
        ];
        let sym = find(c"fc_sleep_ms")?;
        // SAFETY: as for the echoes, with `SleepFn`'s signature.
        let sleep_ms = unsafe { std::mem::transmute::<*mut c_void, SleepFn>(sym) };
        Ok(CClient {
            label: format!("dlopen {}", build.name()),
            echo,
            sleep_ms,
        })
    }

    /// "linked plain", "dlopen fortified", ...
    pub fn label(&self) -> &str {
        &self.label
    }

    /// One round trip in C: connect to `addr`, send `msg`, read back `msg.len()` bytes (fewer at
    /// end of stream). With a `timeout` each read first waits in `poll` on the one socket
    /// (`ETIMEDOUT` if nothing comes); without one it blocks in the read itself.
    pub fn echo(
        &self,
        calls: Calls,
        addr: SocketAddrV4,
        msg: &str,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, i32> {
        let host = CString::new(addr.ip().to_string()).expect("an IPv4 address has no NUL");
        let msg = CString::new(msg).map_err(|_| libc::EINVAL)?;
        let mut out = vec![0u8; msg.as_bytes().len()];
        let outlen = c_int::try_from(out.len()).map_err(|_| libc::EINVAL)?;
        let timeout_ms = match timeout {
            None => -1,
            Some(t) => c_int::try_from(t.as_millis()).unwrap_or(c_int::MAX),
        };
        let f = self.echo[calls.index()];
        // SAFETY: `host` and `msg` are NUL-terminated; `out` is writable for `outlen` bytes.
        let r = unsafe {
            f(
                host.as_ptr(),
                c_int::from(addr.port()),
                msg.as_ptr(),
                out.as_mut_ptr().cast(),
                outlen,
                timeout_ms,
            )
        };
        if r < 0 {
            return Err(-r);
        }
        out.truncate(r as usize);
        Ok(out)
    }

    /// `nanosleep` in C for `ms` milliseconds.
    pub fn sleep_ms(&self, ms: u32) -> Result<(), i32> {
        let ms = c_int::try_from(ms).map_err(|_| libc::EINVAL)?;
        // SAFETY: no pointers.
        let r = unsafe { (self.sleep_ms)(ms) };
        if r < 0 {
            Err(-r)
        } else {
            Ok(())
        }
    }
}

/// The text of the last `dlerror`.
fn dl_error() -> String {
    // SAFETY: no arguments; it returns null or this thread's last error text.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: non-null: a NUL-terminated string valid until the next dl call on this thread.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

/// The shared object of a build, in this crate's `OUT_DIR`.
pub fn shared_object(build: Build) -> &'static Path {
    Path::new(match build {
        Build::Plain => concat!(env!("OUT_DIR"), "/libfc_client_plain.so"),
        Build::Fortified => concat!(env!("OUT_DIR"), "/libfc_client_fortified.so"),
    })
}

/// The static library of a build (linked into this crate), in this crate's `OUT_DIR`.
pub fn static_library(build: Build) -> &'static Path {
    Path::new(match build {
        Build::Plain => concat!(env!("OUT_DIR"), "/libfc_client_plain.a"),
        Build::Fortified => concat!(env!("OUT_DIR"), "/libfc_client_fortified.a"),
    })
}

/// The symbols an object (`.a`, `.o`) or, with `dynamic`, a shared object's dynamic table
/// leaves undefined, without versions (`__recv_chk`, not `__recv_chk@GLIBC_2.4`), by `nm -u`.
pub fn undefined_symbols(path: &Path, dynamic: bool) -> Result<Vec<String>, String> {
    nm(path, if dynamic { &["-u", "-D"] } else { &["-u"] })
}

/// The symbols a binary's dynamic table defines (`nm -D --defined-only`): what objects loaded
/// later bind to.
pub fn exported_symbols(path: &Path) -> Result<Vec<String>, String> {
    nm(path, &["-D", "--defined-only"])
}

fn nm(path: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new("nm")
        .args(args)
        .arg(path)
        .output()
        .map_err(|e| format!("could not run nm (binutils) on {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "nm {args:?} {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.is_empty() && !line.ends_with(':')) // archive member headers
        .filter_map(|line| line.split_whitespace().last())
        .map(|sym| sym.split('@').next().unwrap_or(sym).to_owned())
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}
