//! A socket's peer address, read at dump time.
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

/// The peer of socket `fd`, if it is a connected IP socket.
///
/// The caller guarantees `fd` is open for the duration of the call (its waiter, suspended on it,
/// borrows it: `collect::read`).
pub(crate) fn peer_of(fd: i32) -> Option<SocketAddr> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is open for the duration of this call (see above); the borrow does not
    // outlive it and nothing closes it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()
}
