//! The HTTP/1.1 request handling of `http_hello`, without I/O: [`Conn`] takes the bytes a
//! connection received and returns the bytes to send and whether to keep reading, so the fuzz
//! targets in `fuzz/` and the tests can drive it with any byte stream, split anywhere. The
//! server (`examples/http_hello.rs`) adds only the socket and the clock. Depends on `std` and the
//! `httparse` crate alone.
//!
//! What it accepts and how it answers the rest (redis-style "answer, then close"):
//!
//! - A request head is parsed by `httparse` (HTTP/1.0 and 1.1; at most [`MAX_HEADERS`] headers)
//!   once it is complete. Malformed → `400 Bad Request`; a version other than 1.0/1.1 (`HTTP/9.9`)
//!   → `505 HTTP Version Not Supported`; a head longer than [`Limits::max_head`] or with too many
//!   headers → `431 Request Header Fields Too Large`. Every error response carries
//!   `Connection: close` and the connection is closed after it.
//! - An HTTP/1.1 request must have exactly one `Host` header (RFC 9112 §3.2), else `400`.
//! - Bodies: `Content-Length` (digits only; repeated headers must agree) is honoured: the body is
//!   skipped, never parsed as a request. A bad or conflicting value → `400`; a body longer than
//!   [`Limits::max_body`] → `413 Content Too Large`. `Transfer-Encoding` is not supported:
//!   `501 Not Implemented` (and `400` if `Content-Length` comes with it, the request-smuggling
//!   shape).
//! - Keep-alive as RFC 9112 §9.3 says: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
//!   `Connection: keep-alive`. Pipelined requests are answered in order, in one write per batch.
//! - The clock is the server's: it calls [`Conn::timed_out`] when a request (head and body) has
//!   not arrived within its deadline, and gets `408 Request Timeout`.
//!
//! Decisions do not depend on how the stream is split into reads (the fuzz targets check it):
//! `httparse` runs on the unfinished head after every read, so a malformed byte is answered as
//! soon as it arrives. That re-parses the head from its start, at most [`Limits::max_head`] bytes
//! per read: a peer sending one byte per packet costs a few microseconds of parsing per packet
//! (of the order of the read itself), bounded by the head limit and cut off by the deadline.

use std::mem::MaybeUninit;

/// Most headers a request may have (the size of `httparse`'s header array).
pub const MAX_HEADERS: usize = 64;

/// What a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request head (request line, headers and the blank line), in bytes.
    pub max_head: usize,
    /// Longest request body (`Content-Length`), in bytes; the body is read and discarded.
    pub max_body: u64,
}

impl Limits {
    /// `http_hello`'s limits: an 8 KiB head (nginx's `large_client_header_buffers` and most
    /// servers' default), 1 MiB of body.
    pub const DEFAULT: Limits = Limits {
        max_head: 8 * 1024,
        max_body: 1024 * 1024,
    };
}

/// A valid request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head, up to and including its blank line.
    pub len: usize,
    /// Bytes of body that follow it.
    pub body: u64,
    /// HTTP/1.0 (1.1 otherwise).
    pub http10: bool,
    /// The connection closes after the response.
    pub close: bool,
    /// A `HEAD` request: the response has no body.
    pub head_only: bool,
}

/// What [`parse_head`] makes of the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// No complete head yet, and nothing wrong so far.
    Partial,
    /// A valid head.
    Request(Request),
    /// Answer with this status and close.
    Reject(u16),
}

/// Parses the request head at the front of `buf` (only its first [`Limits::max_head`] bytes
/// count). A pure function: the same bytes give the same answer.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Head {
    let window = &buf[..buf.len().min(limits.max_head)];
    // Uninitialised: filling 64 empty headers per request would cost more than parsing them.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(len)) => check(&req, len, limits),
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => Head::Reject(431),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Reject(431),
        // 505 or 400 depends on the whole version token: wait for the end of the line.
        Err(httparse::Error::Version) => match window.contains(&b'\n') {
            true if names_a_version(window) => Head::Reject(505),
            false if window.len() < limits.max_head => Head::Partial,
            _ => Head::Reject(400),
        },
        Err(_) => Head::Reject(400),
    }
}

/// Does the request line end in a well-formed `HTTP/d.d` (one `httparse` does not support)?
fn names_a_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(line);
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// The checks `httparse` leaves to us: framing (`Content-Length`, `Transfer-Encoding`), `Host`,
/// and keep-alive.
fn check(req: &httparse::Request<'_, '_>, len: usize, limits: &Limits) -> Head {
    let http10 = req.version == Some(0);
    let (mut length, mut chunked, mut hosts) = (None, false, 0);
    let (mut close, mut keep_alive) = (false, false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length(h.value), length) {
                (None, _) => return Head::Reject(400),
                (Some(n), Some(m)) if n != m => return Head::Reject(400),
                (Some(n), _) => length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    if chunked {
        return Head::Reject(if length.is_some() { 400 } else { 501 });
    }
    if hosts > 1 || (!http10 && hosts == 0) {
        return Head::Reject(400);
    }
    let body = length.unwrap_or(0);
    if body > limits.max_body {
        return Head::Reject(413);
    }
    Head::Request(Request {
        len,
        body,
        http10,
        close: close || (http10 && !keep_alive),
        head_only: req.method == Some("HEAD"),
    })
}

/// A `Content-Length` value: 1 to 19 decimal digits (optional whitespace around), else `None`.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')) // at most 19 digits: no overflow
    })
}

/// What the connection should do after [`Conn::received`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Between requests: wait for the next one (the idle timeout applies).
    Idle,
    /// Inside a request (part of its head or body is here): its deadline applies.
    InRequest,
    /// Send what was written, then close.
    Close,
}

/// The body of every successful response.
pub const HELLO: &[u8] = b"Hello world\n";
const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n";

/// One connection's request handling (see the module docs).
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    /// Received and not consumed: the front is the start of the next request head.
    buf: Vec<u8>,
    /// Body bytes of the current request still to skip (then `pending` is answered).
    body_left: u64,
    pending: Option<Request>,
    /// Requests answered.
    answered: u64,
    closed: bool,
}

impl Conn {
    /// A new connection's state.
    pub fn new(limits: Limits) -> Conn {
        Conn {
            limits,
            buf: Vec::new(),
            body_left: 0,
            pending: None,
            answered: 0,
            closed: false,
        }
    }

    /// Requests answered so far (a request's deadline starts when the one before is answered).
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Takes `data`, just received; appends to `out` the responses to every request it
    /// completes, in order.
    pub fn received(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Progress {
        if self.closed {
            return Progress::Close;
        }
        if let Some(req) = self.pending {
            // Skipping a body; `buf` is empty meanwhile.
            let take = self.body_left.min(data.len() as u64);
            data = &data[take as usize..];
            self.body_left -= take;
            if self.body_left > 0 {
                return Progress::InRequest;
            }
            self.pending = None;
            if self.answer(req, out) {
                return Progress::Close;
            }
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            match self.next_head(at) {
                Head::Partial => break,
                Head::Reject(status) => {
                    error_response(status, out);
                    return self.close();
                }
                Head::Request(req) => {
                    at += req.len;
                    let take = req.body.min((self.buf.len() - at) as u64);
                    at += take as usize;
                    if take < req.body {
                        self.body_left = req.body - take;
                        self.pending = Some(req);
                        break; // all of `buf` is used
                    }
                    if self.answer(req, out) {
                        return Progress::Close;
                    }
                }
            }
        }
        self.buf.drain(..at);
        if self.buf.is_empty() && self.pending.is_none() {
            Progress::Idle
        } else {
            Progress::InRequest
        }
    }

    /// The current request missed its deadline: `408` if one was under way, then close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) -> Progress {
        if !self.closed && (!self.buf.is_empty() || self.pending.is_some()) {
            error_response(408, out);
        }
        self.close()
    }

    fn close(&mut self) -> Progress {
        self.closed = true;
        self.buf = Vec::new();
        self.pending = None;
        Progress::Close
    }

    /// Appends the response to `req`; true if the connection closes after it.
    fn answer(&mut self, req: Request, out: &mut Vec<u8>) -> bool {
        self.answered += 1;
        out.extend_from_slice(OK_HEAD);
        if req.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if req.http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !req.head_only {
            out.extend_from_slice(HELLO);
        }
        if req.close {
            self.close();
        }
        req.close
    }

    /// The head starting at `buf[at..]`.
    fn next_head(&self, at: usize) -> Head {
        match &self.buf[at..] {
            [] => Head::Partial,
            buf => parse_head(buf, &self.limits),
        }
    }
}

/// Appends a complete error response with `Connection: close`.
pub fn error_response(status: u16, out: &mut Vec<u8>) {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let body = format!("{status} {reason}\n");
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}
