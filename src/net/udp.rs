//! `UdpSocket`.
use std::io;
use std::net::{self as stdnet, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{each_addr, forward, impl_fd_conversions, impl_modes, impl_try_clone, ToSocketAddrs};

/// A UDP socket, as `std::net::UdpSocket`.
pub struct UdpSocket {
    inner: crate::driver::io::IoSource<stdnet::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (the first resolved address that binds).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |addr| {
            Ok(UdpSocket {
                inner: super::nonblocking(stdnet::UdpSocket::bind(addr)?)?,
            })
        })
    }

    /// Receives one datagram; returns its size and origin.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_op(|s| s.recv_from(buf))
    }

    /// As `recv_from`, leaving the datagram in the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_op(|s| s.peek_from(buf))
    }

    /// Sends `buf` to the first address `addr` resolves to.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.inner.write_op(|s| s.send_to(buf, addr))
    }

    /// Connects the socket to a remote address (the first resolved address that works).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |addr| self.inner.get_ref().connect(addr))
    }

    /// Sends on a connected socket.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_op(|s| s.send(buf))
    }

    /// Receives on a connected socket.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_op(|s| s.recv(buf))
    }

    /// As `recv`, leaving the datagram in the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_op(|s| s.peek(buf))
    }

    forward! {
        /// The remote address of a connected socket.
        fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// The local address.
        fn local_addr(&self) -> io::Result<SocketAddr>;
    }

    impl_try_clone! {
        /// A new handle to the same socket (sharing mode and timeouts).
        fn try_clone(&self) -> io::Result<UdpSocket>;
    }

    forward! {
        /// Sets `SO_BROADCAST`.
        fn set_broadcast(&self, on: bool) -> io::Result<()>;

        /// Gets `SO_BROADCAST`.
        fn broadcast(&self) -> io::Result<bool>;

        /// Sets `IP_MULTICAST_LOOP`.
        fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()>;

        /// Gets `IP_MULTICAST_LOOP`.
        fn multicast_loop_v4(&self) -> io::Result<bool>;

        /// Sets `IP_MULTICAST_TTL`.
        fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()>;

        /// Gets `IP_MULTICAST_TTL`.
        fn multicast_ttl_v4(&self) -> io::Result<u32>;

        /// Sets `IPV6_MULTICAST_LOOP`.
        fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()>;

        /// Gets `IPV6_MULTICAST_LOOP`.
        fn multicast_loop_v6(&self) -> io::Result<bool>;

        /// Sets `IP_TTL`.
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// Gets `IP_TTL`.
        fn ttl(&self) -> io::Result<u32>;

        /// Joins an IPv4 multicast group.
        fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;

        /// Joins an IPv6 multicast group.
        fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;

        /// Leaves an IPv4 multicast group.
        fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;

        /// Leaves an IPv6 multicast group.
        fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;
    }

    impl_modes!();
}

impl_fd_conversions!(UdpSocket, stdnet::UdpSocket);
