//! A tiny HTTP/1.1 client over `fiber::net::TcpStream`: one request per connection ([`get`]) or
//! keep-alive ([`HttpConn`]).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use fiber::net::TcpStream;

use crate::http_server::read_head;

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// One keep-alive HTTP/1.1 connection (requests one at a time).
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr`; with a `timeout`, every read and write fails with `TimedOut` after it.
    pub fn connect(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<HttpConn> {
        let stream = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t)?,
            None => TcpStream::connect(addr)?,
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(HttpConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// `GET path`; waits for the whole response.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request(path, "keep-alive")
    }

    /// `GET path` with `Connection: close`; waits until the server has closed.
    fn get_once(mut self, path: &str) -> io::Result<Response> {
        let resp = self.request(path, "close")?;
        let _ = self.stream.read(&mut [0u8; 1]); // end of stream: the server closed first
        Ok(resp)
    }

    fn request(&mut self, path: &str, connection: &str) -> io::Result<Response> {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n");
        self.stream.write_all(req.as_bytes()).map_err(timed_out)?;
        let head = read_head(&mut self.stream, &mut self.buf)
            .map_err(timed_out)?
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad response head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(bad)?;
        while self.buf.len() < len {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).map_err(timed_out)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&self.buf[..len]).into_owned();
        self.buf.drain(..len);
        Ok(Response { status, body })
    }
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, timeout: Option<Duration>) -> io::Result<Response> {
    HttpConn::connect(addr, timeout)?.get_once(path)
}

/// A socket timeout shows up as `WouldBlock` (as in std on Unix): call it `TimedOut`.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        e
    }
}
