//! `TcpStream` and `TcpListener`.
use std::io;
use std::net::{self as stdnet, Shutdown, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::{
    each_addr, forward, impl_fd_conversions, impl_incoming, impl_listener, impl_modes,
    impl_read_write, impl_try_clone, ToSocketAddrs,
};
use crate::driver::io::{Interest, IoSource, Wait};

/// A TCP stream between a local and a remote socket, as `std::net::TcpStream`.
///
/// Reads and writes that would block park the calling fiber (or, on a plain thread, block it).
///
/// ```no_run
/// use std::io::{Read, Write};
/// use fiber::net::TcpStream;
///
/// let mut stream = TcpStream::connect("127.0.0.1:34254")?;
/// stream.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// stream.read_exact(&mut buf)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    inner: IoSource<stdnet::TcpStream>,
}

/// A TCP socket server, listening for connections, as `std::net::TcpListener`.
pub struct TcpListener {
    inner: IoSource<stdnet::TcpListener>,
}

impl_incoming! {
    /// An iterator over the connections of a [`TcpListener`]: each `next` is an `accept`.
    TcpListener => TcpStream
}

impl TcpStream {
    /// Opens a TCP connection to a remote host, trying every resolved address in turn.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |addr| connect_addr(addr, None))
    }

    /// Opens a TCP connection to `addr` with a timeout (`TimedOut` when it expires). A zero
    /// timeout is an `InvalidInput` error, as in std.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        connect_addr(addr, Some(timeout))
    }

    forward! {
        /// The remote address.
        fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// The local address.
        fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts down the read, write, or both halves of the connection.
        fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    impl_try_clone! {
        /// A new handle to the same socket (a dup of the fd, sharing mode and timeouts).
        fn try_clone(&self) -> io::Result<TcpStream>;
    }

    /// Receives data without removing it from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_op(|s| s.peek(buf))
    }

    forward! {
        /// Sets `TCP_NODELAY`.
        fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;

        /// Gets `TCP_NODELAY`.
        fn nodelay(&self) -> io::Result<bool>;

        /// Sets `IP_TTL`.
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// Gets `IP_TTL`.
        fn ttl(&self) -> io::Result<u32>;
    }

    impl_modes!();
}

/// Connects one socket to one address; waits (with the one I/O loop) for the handshake.
fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    let inner = IoSource::new(stdnet::TcpStream::from(socket), false);
    // Non-blocking: the hooks have nothing to add (`native_io`); the wait is `io_op`'s below.
    let started =
        crate::task::context::native_io(|| SockRef::from(inner.get_ref()).connect(&(*addr).into()));
    match started {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            let done = inner.io_op(
                Interest::WRITE,
                || Wait::Timeout(timeout),
                || connect_status(inner.get_ref()),
            );
            match done {
                Err(e) if timeout.is_some() && e.raw_os_error() == Some(libc::EAGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ));
                }
                r => r?,
            }
        }
        Err(e) => return Err(e),
    }
    Ok(TcpStream { inner })
}

/// Has a non-blocking connect finished? `WouldBlock` while it is still in progress.
fn connect_status(s: &stdnet::TcpStream) -> io::Result<()> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

impl_read_write!(TcpStream);
impl_fd_conversions!(TcpStream, stdnet::TcpStream);

impl TcpListener {
    /// Creates a listener bound to `addr` (the first resolved address that binds).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |addr| {
            let l = stdnet::TcpListener::bind(addr)?;
            super::widen_backlog(&l)?;
            Ok(TcpListener {
                inner: super::nonblocking(l)?,
            })
        })
    }

    /// Accepts a new connection; parks the fiber until one arrives. Errors such as `EMFILE` are
    /// returned (the caller decides whether to back off).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // `accept4` makes the socket non-blocking (and close-on-exec) in the same call: no
        // `ioctl(FIONBIO)` per connection.
        let (s, addr) = self
            .inner
            .read_op(|l| SockRef::from(l).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC))?;
        let addr = addr
            .as_socket()
            .ok_or_else(|| io::Error::other("accept returned a non-IP address"))?;
        Ok((
            TcpStream {
                inner: IoSource::new(stdnet::TcpStream::from(s), false),
            },
            addr,
        ))
    }

    impl_listener!(TcpListener, SocketAddr);

    forward! {
        /// Sets `IP_TTL`.
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// Gets `IP_TTL`.
        fn ttl(&self) -> io::Result<u32>;
    }
}

impl_fd_conversions!(TcpListener, stdnet::TcpListener);
