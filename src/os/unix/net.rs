//! `UnixStream`, `UnixListener` and `UnixDatagram`.
//!
//! The same rules as [`crate::net`] apply: kernel non-blocking sockets; user-visible blocking mode
//! and timeouts; a call that would block parks the fiber (or waits in `poll(2)` on a plain thread).
use std::io;
use std::net::Shutdown;
use std::os::unix::net as stdnet;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

pub use std::os::unix::net::SocketAddr;

use crate::driver::io::IoSource;
use crate::net::{impl_fd_conversions, impl_modes, impl_read_write};

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

/// An iterator over the connections of a [`UnixListener`]: each `next` is an `accept`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

fn stream_source(s: stdnet::UnixStream) -> io::Result<UnixStream> {
    s.set_nonblocking(true)?;
    Ok(UnixStream {
        inner: IoSource::new(s, false),
    })
}

fn datagram_source(s: stdnet::UnixDatagram) -> io::Result<UnixDatagram> {
    s.set_nonblocking(true)?;
    Ok(UnixDatagram {
        inner: IoSource::new(s, false),
    })
}

impl UnixStream {
    /// Connects to the socket named by `path`.
    ///
    /// A non-blocking Unix `connect` fails with `EAGAIN` when the listener's backlog is full, and
    /// the kernel offers no readiness event for "backlog has room"; the connect is then retried
    /// with a short, growing back-off (parking the fiber) instead of blocking in the kernel.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let mut backoff = Duration::from_micros(50);
        loop {
            match socket.connect(&addr) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    sleep(backoff);
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

    /// A new handle to the same socket (sharing mode and timeouts).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: self.inner.clone_with(self.inner.get_ref().try_clone()?),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read, write, or both halves of the connection.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
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

/// Views an initialised buffer as `MaybeUninit` for socket2's receive calls.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and socket2 only writes initialised
    // bytes into the buffer (never de-initialises it), so the caller's `&mut [u8]` stays valid.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

/// Sleeps the fiber (or thread) for `dur`, tolerating spurious wake-ups.
fn sleep(dur: Duration) {
    let deadline = Instant::now() + dur;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        crate::park_timeout(deadline - now);
    }
}

impl UnixListener {
    /// Creates a listener bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let l = stdnet::UnixListener::bind(path)?;
        crate::net::widen_backlog(&l)?;
        l.set_nonblocking(true)?;
        Ok(UnixListener {
            inner: IoSource::new(l, false),
        })
    }

    /// Accepts a new connection; parks the fiber until one arrives.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.read_op(|l| l.accept())?;
        Ok((stream_source(s)?, addr))
    }

    /// An iterator over incoming connections (never returns `None`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A new handle to the same listener.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: self.inner.clone_with(self.inner.get_ref().try_clone()?),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// In non-blocking mode `accept` fails with `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Gets and clears the value of the `SO_ERROR` option.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }
}

impl_fd_conversions!(UnixListener, stdnet::UnixListener);

impl<'a> Iterator for Incoming<'a> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl UnixDatagram {
    /// Creates a datagram socket bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        datagram_source(stdnet::UnixDatagram::bind(path)?)
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

    /// A new handle to the same socket (sharing mode and timeouts).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: self.inner.clone_with(self.inner.get_ref().try_clone()?),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The address of the connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    impl_modes!();
}

impl_fd_conversions!(UnixDatagram, stdnet::UnixDatagram);
