//! Networking primitives for TCP/UDP, shaped like `std::net`.
//!
//! Change `use std::net::…` to `use fiber::net::…`: the types and methods are those of `std`, but a
//! call that would block parks only the calling fiber, and the reactor wakes it when the socket is
//! ready. Called from a plain OS thread, the same types block the thread as `std` does (they wait in
//! `poll(2)`, honouring the read/write timeouts).
//!
//! Differences from `std` worth knowing:
//! - [`ToSocketAddrs`] is this module's own trait (same shape, implemented for the same types).
//!   Host names are resolved on the blocking pool ([`crate::spawn_blocking`]), never on a worker;
//!   literal addresses are parsed in place.
//! - Sockets are always non-blocking in the kernel; [`TcpStream::set_nonblocking`] and the
//!   timeouts are user-visible modes kept by the socket and shared with its `try_clone`s (as socket
//!   options are shared in `std`). A read that times out fails with `WouldBlock` (`EAGAIN`), as
//!   `std` does on Unix. An fd taken out with `IntoRawFd` stays in non-blocking mode.
//! - Dropping a socket while another fiber is parked on a `try_clone` of it is well defined: the
//!   clone is a separate fd with its own registration, so the parked fiber is unaffected and keeps
//!   waiting for data on the still-open connection (as with `std`, dropping one handle does not
//!   shut the connection down; call [`TcpStream::shutdown`] to wake readers with end-of-file).
use std::io;
use std::iter::Cloned;
use std::option;
use std::slice;
use std::vec;

pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
};

#[cfg(test)]
mod fiber_path_tests;
mod tcp;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Values that can be converted into socket addresses: `std::net::ToSocketAddrs`, except that host
/// names are looked up on the blocking pool instead of on the calling worker.
pub trait ToSocketAddrs {
    /// Iterator over the resolved addresses.
    type Iter: Iterator<Item = SocketAddr>;
    /// Converts (resolving host names if needed) into socket addresses.
    fn to_socket_addrs(&self) -> io::Result<Self::Iter>;
}

macro_rules! literal_addrs {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {
            type Iter = option::IntoIter<SocketAddr>;
            fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
                std::net::ToSocketAddrs::to_socket_addrs(self)
            }
        }
    )*};
}
literal_addrs!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

/// Resolves a host name on the blocking pool.
fn lookup(host: String, port: u16) -> io::Result<vec::IntoIter<SocketAddr>> {
    crate::spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map(|it| it.collect::<Vec<_>>())
    })
    .map(Vec::into_iter)
}

impl ToSocketAddrs for (&str, u16) {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)].into_iter());
        }
        lookup(host.to_owned(), port)
    }
}

impl ToSocketAddrs for (String, u16) {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for str {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(vec![addr].into_iter());
        }
        // "host:port", split as std does; std reports the same error for a malformed string.
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port value"))?;
        lookup(host.to_owned(), port)
    }
}

impl ToSocketAddrs for String {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        self.as_str().to_socket_addrs()
    }
}

impl<'a> ToSocketAddrs for &'a [SocketAddr] {
    type Iter = Cloned<slice::Iter<'a, SocketAddr>>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(self.iter().cloned())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    type Iter = T::Iter;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (**self).to_socket_addrs()
    }
}

/// Runs `f` on every resolved address until one succeeds, as std's `connect`/`bind` do: returns
/// the first success or the last error.
fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last_err = None;
    for addr in addr.to_socket_addrs()? {
        match f(&addr) {
            Ok(t) => return Ok(t),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// The fd conversions every socket type has: `AsRawFd`, `AsFd`, `IntoRawFd`, `FromRawFd`,
/// `From<std type>` (adoption) and `Debug` (as the std type's).
macro_rules! impl_fd_conversions {
    ($ty:ident, $std:ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.inner.get_ref().as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.get_ref().as_fd()
            }
        }

        /// The fd stays in kernel non-blocking mode.
        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                self.inner.into_inner().into_raw_fd()
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: the caller guarantees `fd` is an open socket of the right kind that it
                // owns and hands over to us (the contract of `FromRawFd`).
                let io = unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                $ty::from(io)
            }
        }

        /// Adopts a std socket: it is switched to kernel non-blocking mode; the blocking mode
        /// and timeouts set on it stay in effect as this socket's user-visible ones.
        impl From<$std> for $ty {
            fn from(io: $std) -> $ty {
                $ty {
                    inner: crate::driver::io::IoSource::adopt(io),
                }
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self.inner.get_ref(), f)
            }
        }
    };
}
pub(crate) use impl_fd_conversions;

/// `Read` and `Write` for a stream type and for references to it, over `read_op`/`write_op`.
macro_rules! impl_read_write {
    ($ty:ident) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                self.inner
                    .stream_read_op(len, |mut s| std::io::Read::read(&mut s, buf))
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                let len = bufs.iter().map(|b| b.len()).sum();
                self.inner
                    .stream_read_op(len, |mut s| std::io::Read::read_vectored(&mut s, bufs))
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.inner
                    .write_op(|mut s| std::io::Write::write(&mut s, buf))
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.inner
                    .write_op(|mut s| std::io::Write::write_vectored(&mut s, bufs))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use impl_read_write;

/// The timeout and mode setters shared by every socket type.
macro_rules! impl_modes {
    () => {
        /// Sets the read timeout; `None` blocks indefinitely. A read that times out fails with
        /// `WouldBlock` (as std on Unix). Shared with `try_clone`s. Errors on a zero duration.
        pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.inner.set_read_timeout(dur)
        }

        /// Sets the write timeout; `None` blocks indefinitely. Errors on a zero duration.
        pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.inner.set_write_timeout(dur)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.read_timeout())
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.write_timeout())
        }

        $crate::net::impl_nonblocking! {
            /// In non-blocking mode, an operation that would block fails with `WouldBlock` instead
            /// of parking the fiber (or blocking the thread). Shared with `try_clone`s.
        }
    };
}
pub(crate) use impl_modes;

/// `set_nonblocking` (with the doc comment given; it sets the user-visible mode, the fd stays
/// non-blocking in the kernel) and `take_error`.
macro_rules! impl_nonblocking {
    ($(#[$attr:meta])*) => {
        $(#[$attr])*
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.inner.set_nonblocking(nonblocking);
            Ok(())
        }

        $crate::net::forward! {
            /// Gets and clears the value of the `SO_ERROR` option.
            fn take_error(&self) -> std::io::Result<Option<std::io::Error>>;
        }
    };
}
pub(crate) use impl_nonblocking;

/// Accessors that only forward to the std socket inside `inner`, each with its own doc comment:
/// `fn name(&self, arg: T) -> R;` becomes `pub fn name(&self, arg: T) -> R` calling
/// `self.inner.get_ref().name(arg)`.
macro_rules! forward {
    ($($(#[$attr:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {$(
        $(#[$attr])*
        pub fn $name(&self $(, $arg: $ty)*) -> $ret {
            self.inner.get_ref().$name($($arg),*)
        }
    )*};
}
pub(crate) use forward;

/// `try_clone` for a socket type: a dup of the fd with its own registration, sharing the
/// user-visible mode and timeouts with the original.
macro_rules! impl_try_clone {
    ($(#[$attr:meta])* fn try_clone(&self) -> io::Result<$ty:ident>;) => {
        $(#[$attr])*
        pub fn try_clone(&self) -> std::io::Result<$ty> {
            Ok($ty {
                inner: self.inner.clone_with(self.inner.get_ref().try_clone()?),
            })
        }
    };
}
pub(crate) use impl_try_clone;

/// What every listener has besides `bind` and `accept`, inside its `impl` block: `incoming`,
/// `local_addr`, `try_clone`, `set_nonblocking` and `take_error`.
macro_rules! impl_listener {
    ($ty:ident, $addr:ty) => {
        /// An iterator over incoming connections (never returns `None`).
        pub fn incoming(&self) -> Incoming<'_> {
            Incoming { listener: self }
        }

        $crate::net::forward! {
            /// The local address.
            fn local_addr(&self) -> std::io::Result<$addr>;
        }

        $crate::net::impl_try_clone! {
            /// A new handle to the same listener.
            fn try_clone(&self) -> io::Result<$ty>;
        }

        $crate::net::impl_nonblocking! {
            /// In non-blocking mode `accept` fails with `WouldBlock` instead of waiting.
        }
    };
}
pub(crate) use impl_listener;

/// A listener's `Incoming` iterator type: each `next` is an `accept`, and it never ends.
macro_rules! impl_incoming {
    ($(#[$attr:meta])* $listener:ident => $stream:ident) => {
        $(#[$attr])*
        #[derive(Debug)]
        pub struct Incoming<'a> {
            listener: &'a $listener,
        }

        impl<'a> Iterator for Incoming<'a> {
            type Item = std::io::Result<$stream>;
            fn next(&mut self) -> Option<std::io::Result<$stream>> {
                Some(self.listener.accept().map(|(s, _)| s))
            }
        }
    };
}
pub(crate) use impl_incoming;

/// Registers a std socket made by a blocking constructor (`bind`, `pair`, `accept`) after
/// switching it to kernel non-blocking mode; its user-visible mode is blocking.
pub(crate) fn nonblocking<S: std::os::fd::AsFd + std::os::fd::AsRawFd>(
    io: S,
) -> io::Result<crate::driver::io::IoSource<S>> {
    socket2::SockRef::from(&io).set_nonblocking(true)?;
    Ok(crate::driver::io::IoSource::new(io, false))
}

/// Raises a listener's accept queue from std's 128 to the system maximum
/// (`net.core.somaxconn`, which the kernel applies when asked for more), as Go does. Fibers
/// connect fast enough to overflow 128: each overflow costs the client a one-second SYN retry.
pub(crate) fn widen_backlog(listener: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    // SAFETY: `listen` on a socket that is already listening only updates its backlog; the fd is
    // borrowed from a live listener.
    if unsafe { libc::listen(listener.as_raw_fd(), libc::c_int::MAX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
