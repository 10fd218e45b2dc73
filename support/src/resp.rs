//! RESP2, the Redis protocol, as far as `kv_server` needs it: parsing commands (arrays of bulk
//! strings, or inline commands) and encoding replies.
//!
//! The parser is written for hostile input, and depends on nothing but `std` (the fuzz targets in
//! `fuzz/` include this file):
//!
//! - **Incremental.** [`Parser::parse`] consumes what it can and remembers where it stopped: the
//!   arguments read so far, the bulk string it is in, how far it has searched for the end of an
//!   unfinished line. Each input byte is looked at a bounded number of times, however the input
//!   is split into reads (a 100 MB line arriving in 16 KiB reads is not rescanned from its start
//!   after every read).
//! - **Bounded.** Every length is checked against [`Limits`] before anything is allocated or
//!   buffered; allocation follows the bytes actually received, never a declared count (an
//!   argument vector starts at most [`PREALLOC_ARGS`] long, a bulk string at most
//!   [`PREALLOC_BULK`] bytes, plus what is already in the buffer).
//! - **Checked.** Numbers are parsed with checked arithmetic; no sum can wrap.
//! - **Errors, not panics.** Bad input yields a `Protocol error: ...` message that the server
//!   sends as `-ERR ...` before closing the connection, as redis-server does.

/// A command and its arguments.
pub type Command = Vec<Vec<u8>>;

/// One RESP reply (see [`put`]).
pub enum Reply<'a> {
    /// `+OK`.
    Simple(&'a str),
    /// `-ERR message`.
    Error(&'a str),
    /// `:42`.
    Int(i64),
    /// A bulk string, or nil.
    Bulk(Option<&'a [u8]>),
    /// The header of an array of this many elements (they follow).
    Array(usize),
}

/// Appends `reply` to `out`, encoded.
pub fn put(out: &mut Vec<u8>, reply: Reply<'_>) {
    match reply {
        Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-ERR {s}\r\n").as_bytes()),
        Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Array(n) => out.extend_from_slice(format!("*{n}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// What a client may send. redis-server's figures, for reference: lines 64 KiB
/// (`PROTO_INLINE_MAX_SIZE`), 1,048,576 array elements, bulk strings 512 MB
/// (`proto-max-bulk-len`), 1 GB of unparsed query (`client-query-buffer-limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, in bytes before its `\n`: an inline command, or an array or bulk header.
    pub max_line: usize,
    /// Most elements in one command array.
    pub max_args: usize,
    /// Longest bulk string.
    pub max_bulk: usize,
    /// Most bytes one command array may take on the wire (headers, data and line ends).
    pub max_command: usize,
}

impl Limits {
    /// The defaults of `kv_server`: redis-server's line and element limits, smaller bulk and
    /// command limits (16 MiB and 64 MiB: a demo should not let one client take half a gigabyte).
    pub const DEFAULT: Limits = Limits {
        max_line: 64 * 1024,
        max_args: 1024 * 1024,
        max_bulk: 16 * 1024 * 1024,
        max_command: 64 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// An argument vector starts with room for at most this many arguments, whatever the array
/// header declares; it grows as arguments arrive.
pub const PREALLOC_ARGS: usize = 64;
/// A bulk string's buffer starts at most this large (or as large as the part already received);
/// it grows as its data arrives.
pub const PREALLOC_BULK: usize = 64 * 1024;

const BAD_COUNT: &str = "Protocol error: invalid multibulk length";
const LONG_COUNT: &str = "Protocol error: too big mbulk count string";
const BAD_LEN: &str = "Protocol error: invalid bulk length";
const LONG_LEN: &str = "Protocol error: too big bulk count string";
const LONG_INLINE: &str = "Protocol error: too big inline request";
const NOT_BULK: &str = "Protocol error: expected '$'";
const NO_CRLF: &str = "Protocol error: expected CRLF after bulk data";
const TOO_BIG: &str = "Protocol error: command too large";

/// Where the parser is between two calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first byte of a command.
    Start,
    /// Inside an array, before the `$` header of the next of `left` bulk strings.
    Header { left: usize },
    /// Inside a bulk string: `need` bytes of data to go, then CRLF; `left` strings after it.
    Data { left: usize, need: usize },
    /// A protocol error was reported; every later call reports it again.
    Failed(&'static str),
}

/// An incremental RESP2 command parser for one connection (see the module docs).
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// How many bytes at the front of the pending input are known to hold no `\n` (the unfinished
    /// line the last call stopped in): the search resumes there.
    scanned: usize,
    /// The arguments of the array being parsed.
    args: Command,
    /// Bytes the array being parsed has taken on the wire so far.
    size: usize,
}

impl Parser {
    /// A parser for a new connection.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            state: State::Start,
            scanned: 0,
            args: Vec::new(),
            size: 0,
        }
    }

    /// Parses from the front of `input`, the bytes received and not consumed yet. Returns how
    /// many bytes it consumed and, if it completed one, a command (never an empty one: empty
    /// arrays and blank lines are skipped, as redis does). `Ok((n, None))`: all of `input` but
    /// an unfinished line was used; read more.
    ///
    /// The caller drops the consumed bytes from the front of its buffer and calls again with
    /// the rest, followed by whatever arrived since (it never changes bytes it passed before).
    /// It calls again after each command, without reading, until it gets `None`. After an error
    /// the connection cannot be resynchronised: answer with the message and close.
    pub fn parse(&mut self, input: &[u8]) -> Result<(usize, Option<Command>), &'static str> {
        let result = self.parse_inner(input);
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }

    fn parse_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Command>), &'static str> {
        let mut at = 0;
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Start => {
                    let Some(&first) = input.get(at) else {
                        return Ok((at, None));
                    };
                    let too_long = if first == b'*' {
                        LONG_COUNT
                    } else {
                        LONG_INLINE
                    };
                    let Some(nl) = self.find_line(input, at, too_long)? else {
                        return Ok((at, None));
                    };
                    let line = &input[at..nl];
                    at = nl + 1;
                    if first != b'*' {
                        let words = inline_words(line);
                        if !words.is_empty() {
                            return Ok((at, Some(words)));
                        }
                        continue;
                    }
                    let count = header_number(line).ok_or(BAD_COUNT)?;
                    if count > self.limits.max_args as i64 {
                        return Err(BAD_COUNT);
                    }
                    if count <= 0 {
                        continue; // `*0` and `*-1`: nothing to run
                    }
                    let count = count as usize; // 1..=max_args: fits
                    self.args = Vec::with_capacity(count.min(PREALLOC_ARGS));
                    self.size = line.len() + 1;
                    self.state = State::Header { left: count };
                }
                State::Header { left } => {
                    let Some(&first) = input.get(at) else {
                        return Ok((at, None));
                    };
                    if first != b'$' {
                        return Err(NOT_BULK);
                    }
                    let Some(nl) = self.find_line(input, at, LONG_LEN)? else {
                        return Ok((at, None));
                    };
                    let line = &input[at..nl];
                    at = nl + 1;
                    let len = header_number(line).ok_or(BAD_LEN)?;
                    if len < 0 || len > self.limits.max_bulk as i64 {
                        return Err(BAD_LEN);
                    }
                    let len = len as usize; // 0..=max_bulk: fits
                                            // Header, data and CRLF, all bounded by the limits: no overflow.
                    self.size = self
                        .size
                        .checked_add(line.len() + 1 + len + 2)
                        .filter(|&s| s <= self.limits.max_command)
                        .ok_or(TOO_BIG)?;
                    let have = input.len() - at;
                    let room = len.min(PREALLOC_BULK.max(have));
                    self.args.push(Vec::with_capacity(room));
                    self.state = State::Data {
                        left: left - 1,
                        need: len,
                    };
                }
                State::Data { left, need } => {
                    let have = input.len() - at;
                    if need > 0 {
                        let take = need.min(have);
                        let arg = self.args.last_mut().expect("Data follows a push");
                        arg.extend_from_slice(&input[at..at + take]);
                        at += take;
                        self.state = State::Data {
                            left,
                            need: need - take,
                        };
                        if take < need {
                            return Ok((at, None));
                        }
                    }
                    match input.get(at..at + 2) {
                        None if input.get(at).is_none_or(|&b| b == b'\r') => {
                            return Ok((at, None)); // CRLF not (all) here yet
                        }
                        Some(b"\r\n") => at += 2,
                        _ => return Err(NO_CRLF),
                    }
                    if left > 0 {
                        self.state = State::Header { left };
                    } else {
                        self.state = State::Start;
                        return Ok((at, Some(std::mem::take(&mut self.args))));
                    }
                }
            }
        }
    }

    /// The index of the `\n` ending the line that starts at `at`, or `None` if it has not all
    /// arrived; `too_long` if the line is longer than the limit. Resumes the search where the
    /// previous call stopped.
    fn find_line(
        &mut self,
        input: &[u8],
        at: usize,
        too_long: &'static str,
    ) -> Result<Option<usize>, &'static str> {
        // `scanned` counts from the front of the input: only the line at 0 can have been searched.
        let from = if at == 0 {
            self.scanned.min(input.len())
        } else {
            at
        };
        match input[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.scanned = 0;
                let nl = from + i;
                if nl - at > self.limits.max_line {
                    return Err(too_long);
                }
                Ok(Some(nl))
            }
            None => {
                if input.len() - at > self.limits.max_line {
                    return Err(too_long);
                }
                // What is left of `input` after the caller drops `at` bytes: all searched.
                self.scanned = input.len() - at;
                Ok(None)
            }
        }
    }
}

/// The number in a `*N\r` or `$N\r` line (the `\n` already cut off): an optional `-`, then
/// decimal digits; `None` if malformed or out of `i64`'s range.
fn header_number(line: &[u8]) -> Option<i64> {
    let digits = line.get(1..)?.strip_suffix(b"\r")?;
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

/// An inline command (`PING`, `SET k v`): the line (its `\n` cut off, an `\r` before it
/// dropped) split at spaces and tabs. No quoting.
fn inline_words(line: &[u8]) -> Command {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
