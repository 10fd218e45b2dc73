//! `UnixStream`, `UnixListener` and `UnixDatagram`.
//!
//! The same rules as [`crate::net`] apply: kernel non-blocking sockets; user-visible blocking mode
//! and timeouts; a call that would block parks the fiber (or waits in `poll(2)` on a plain thread).
use std::io;
use std::net::Shutdown;
use std::os::unix::net as stdnet;
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

pub use std::os::unix::net::SocketAddr;

use crate::driver::io::IoSource;
use crate::net::{
    forward, impl_fd_conversions, impl_incoming, impl_listener, impl_modes, impl_read_write,
    impl_try_clone, nonblocking,
};

/// A Unix stream socket, as `std::os::unix::net::UnixStream`.
pub struct UnixStream {
    inner: IoSource<stdnet::UnixStream>,
}

/// A Unix stream socket server, as `std::os::unix::net::UnixListener`.
pub struct UnixListener {
    inner: IoSource<stdnet::UnixListener>,
}

/// A Unix datagram socket, as `std::os::unix::net::UnixDatagram`.
pub struct UnixDatagram {
    inner: IoSource<stdnet::UnixDatagram>,
}

impl_incoming! {
    /// An iterator over the connections of a [`UnixListener`]: each `next` is an `accept`.
    UnixListener => UnixStream
}

fn stream_source(s: stdnet::UnixStream) -> io::Result<UnixStream> {
    Ok(UnixStream {
        inner: nonblocking(s)?,
    })
}

fn datagram_source(s: stdnet::UnixDatagram) -> io::Result<UnixDatagram> {
    Ok(UnixDatagram {
        inner: nonblocking(s)?,
    })
}

impl UnixStream {
    /// Connects to the socket named by `path`.
    ///
    /// A non-blocking Unix `connect` fails with `EAGAIN` when the listener's backlog is full, and
    /// the kernel offers no readiness event for "backlog has room"; the connect is then retried
    /// with a short, growing back-off (parking the fiber) instead of blocking in the kernel.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_sockaddr(&SockAddr::unix(path)?)
    }

    /// Connects to the socket at `addr` (a path, or on Linux an abstract name made with
    /// `std::os::linux::net::SocketAddrExt::from_abstract_name`), as std's `connect_addr`.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_sockaddr(&sockaddr_of(addr)?)
    }

    fn connect_sockaddr(addr: &SockAddr) -> io::Result<UnixStream> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let mut backoff = Duration::from_micros(50);
        loop {
            // Non-blocking (`native_io`: the hooks have nothing to add); the wait is the loop's.
            match crate::task::context::native_io(|| socket.connect(addr)) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    crate::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(UnixStream {
            inner: IoSource::new(
                stdnet::UnixStream::from(std::os::fd::OwnedFd::from(socket)),
                false,
            ),
        })
    }

    /// An unnamed pair of connected sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = stdnet::UnixStream::pair()?;
        Ok((stream_source(a)?, stream_source(b)?))
    }

    impl_try_clone! {
        /// A new handle to the same socket (sharing mode and timeouts).
        fn try_clone(&self) -> io::Result<UnixStream>;
    }

    forward! {
        /// The local address.
        fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The remote address.
        fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts down the read, write, or both halves of the connection.
        fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    /// Receives data without removing it from the queue (`std` has this only on nightly).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_op(|s| {
            let buf = as_uninit(buf);
            SockRef::from(s).peek(buf)
        })
    }

    impl_modes!();
}

impl_read_write!(UnixStream);
impl_fd_conversions!(UnixStream, stdnet::UnixStream);

/// socket2's form of a Unix address: its path, or its abstract name behind a NUL byte (socket2's
/// convention for Linux's abstract namespace). An unnamed address names no socket to connect to.
fn sockaddr_of(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        return SockAddr::unix(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        if let Some(name) = addr.as_abstract_name() {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            return SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot connect to an unnamed Unix socket address",
    ))
}

/// Views an initialised buffer as `MaybeUninit` for socket2's receive calls.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and socket2 only writes initialised
    // bytes into the buffer (never de-initialises it), so the caller's `&mut [u8]` stays valid.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

impl UnixListener {
    /// Creates a listener bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let l = stdnet::UnixListener::bind(path)?;
        crate::net::widen_backlog(&l)?;
        Ok(UnixListener {
            inner: nonblocking(l)?,
        })
    }

    /// Creates a listener bound to `addr` (a path, or on Linux an abstract name), as std's
    /// `bind_addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let l = stdnet::UnixListener::bind_addr(addr)?;
        crate::net::widen_backlog(&l)?;
        Ok(UnixListener {
            inner: nonblocking(l)?,
        })
    }

    /// Accepts a new connection; parks the fiber until one arrives.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.read_op(|l| l.accept())?;
        Ok((stream_source(s)?, addr))
    }

    impl_listener!(UnixListener, SocketAddr);
}

impl_fd_conversions!(UnixListener, stdnet::UnixListener);

impl UnixDatagram {
    /// Creates a datagram socket bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        datagram_source(stdnet::UnixDatagram::bind(path)?)
    }

    /// Creates a datagram socket bound to `addr` (a path, or on Linux an abstract name), as
    /// std's `bind_addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        datagram_source(stdnet::UnixDatagram::bind_addr(addr)?)
    }

    /// Creates an unbound datagram socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        datagram_source(stdnet::UnixDatagram::unbound()?)
    }

    /// An unnamed pair of connected datagram sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = stdnet::UnixDatagram::pair()?;
        Ok((datagram_source(a)?, datagram_source(b)?))
    }

    /// Connects the socket to `path` (sets the default destination).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.get_ref().connect(path)
    }

    /// Connects the socket to `addr` (sets the default destination), as std's `connect_addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.inner.get_ref().connect_addr(addr)
    }

    /// Sends `buf` to the socket at `addr`, as std's `send_to_addr`.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.inner.write_op(|s| s.send_to_addr(buf, addr))
    }

    /// Sends `buf` to the socket named by `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner.write_op(|s| s.send_to(buf, path))
    }

    /// Receives one datagram; returns its size and origin.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_op(|s| s.recv_from(buf))
    }

    /// Sends on a connected socket.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_op(|s| s.send(buf))
    }

    /// Receives on a connected socket.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_op(|s| s.recv(buf))
    }

    impl_try_clone! {
        /// A new handle to the same socket (sharing mode and timeouts).
        fn try_clone(&self) -> io::Result<UnixDatagram>;
    }

    forward! {
        /// The local address.
        fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The address of the connected peer.
        fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts down the read, write, or both halves.
        fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    impl_modes!();
}

impl_fd_conversions!(UnixDatagram, stdnet::UnixDatagram);
