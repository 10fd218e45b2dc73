//! [`IoSource`]: a kernel-non-blocking fd, its registration and its user-visible options; what
//! the socket types of `fiber::net` are made of.
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use super::op;
use super::options::{make_nonblocking, Options, Wait};
use super::registry::Registration;
use super::slot::Interest;
use crate::task::context;

/// A kernel-non-blocking I/O object `S` with its reactor registration and user-visible options.
///
/// Field order matters: `reg` drops (deregisters) before `io` closes the fd.
pub(crate) struct IoSource<S: AsRawFd> {
    reg: Registration,
    opts: Arc<Options>,
    io: S,
}

impl<S: AsRawFd> IoSource<S> {
    /// Adopts a socket made elsewhere (`From<std::net::TcpStream>`, `FromRawFd`): switches it to
    /// kernel non-blocking mode and keeps the mode and timeouts its owner had set as the
    /// user-visible ones.
    pub(crate) fn adopt(io: S) -> IoSource<S>
    where
        S: std::os::fd::AsFd,
    {
        // Only a closed/invalid fd makes these fail, which the caller's contract excludes; then
        // the socket simply stays as it was.
        let was_nonblocking = make_nonblocking(io.as_raw_fd()).unwrap_or(false);
        let sock = socket2::SockRef::from(&io);
        let read = sock.read_timeout().ok().flatten();
        let write = sock.write_timeout().ok().flatten();
        let src = IoSource::new(io, was_nonblocking);
        // The kernel accepted these, so they are not zero.
        let _ = src.opts.set_read_timeout(read);
        let _ = src.opts.set_write_timeout(write);
        src
    }

    /// Wraps `io`, which the caller has already put into kernel non-blocking mode.
    pub(crate) fn new(io: S, user_nonblocking: bool) -> IoSource<S> {
        IoSource::with_options(io, Arc::new(Options::new(user_nonblocking)))
    }

    fn with_options(io: S, opts: Arc<Options>) -> IoSource<S> {
        IoSource {
            reg: Registration::new(),
            opts,
            io,
        }
    }

    /// A clone (a dup of the fd, made by the caller) that shares this source's options.
    pub(crate) fn clone_with(&self, io: S) -> IoSource<S> {
        IoSource::with_options(io, self.opts.clone())
    }

    /// The wrapped object.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// Deregisters and returns the wrapped object (still non-blocking in the kernel).
    pub(crate) fn into_inner(self) -> S {
        let IoSource { reg, io, .. } = self;
        drop(reg);
        io
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.opts.set_nonblocking(nonblocking);
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.opts.set_read_timeout(dur)
    }

    /// As std: `Some(Duration::ZERO)` is rejected with `InvalidInput`.
    pub(crate) fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.opts.set_write_timeout(dur)
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.opts.read_timeout()
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.opts.write_timeout()
    }

    /// A read-side operation (read, recv, accept, peek) under the source's options.
    #[inline]
    pub(crate) fn read_op<T>(&self, mut f: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        let wait = self.opts.policy(Interest::READ);
        self.run(Interest::READ, wait, |_| false, || f(&self.io))
    }

    /// A read of at most `len` bytes from a byte stream. A short read (more than 0, fewer than
    /// `len` bytes) shows the receive queue empty (tokio draws the same conclusion). Not for
    /// datagrams: a short datagram says nothing about the queue.
    #[inline]
    pub(crate) fn stream_read_op(
        &self,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let wait = self.opts.policy(Interest::READ);
        let drained = |n: &usize| *n != 0 && *n < len;
        self.run(Interest::READ, wait, drained, || f(&self.io))
    }

    /// A write-side operation (write, send) under the source's options.
    #[inline]
    pub(crate) fn write_op<T>(&self, mut f: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        let wait = self.opts.policy(Interest::WRITE);
        self.run(Interest::WRITE, wait, |_| false, || f(&self.io))
    }

    /// Any operation on this source's fd, waiting for `interest` under a policy of the caller's
    /// (`connect` waits with its own timeout).
    #[inline]
    pub(crate) fn io_op<T>(
        &self,
        interest: Interest,
        policy: impl FnOnce() -> Wait,
        f: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.run(interest, policy(), |_| false, f)
    }

    #[inline]
    fn run<T>(
        &self,
        interest: Interest,
        wait: Wait,
        drained: impl Fn(&T) -> bool,
        mut f: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        // The fd is non-blocking and this loop waits for it: the libc interposition has nothing
        // to add (`context::native_io`).
        op::run(
            self.io.as_raw_fd(),
            &self.reg,
            interest,
            wait,
            drained,
            || context::native_io(&mut f),
        )
    }
}
