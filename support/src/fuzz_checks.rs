//! The properties the fuzz targets (`fuzz/`) check of [`crate::resp`] and [`crate::http_parse`],
//! shared with the deterministic run in `tests/demo_parsers.rs`.
//!
//! Input layout for both: the first two bytes seed the split points (how the stream is cut into
//! reads), the rest is the stream a client sends.

use crate::http_parse::{self as http, Conn, Head, Progress};
use crate::resp::{self, Parser};

/// Small RESP limits, so that short inputs reach every limit.
pub const SMALL_RESP: resp::Limits = resp::Limits {
    max_line: 40,
    max_args: 6,
    max_bulk: 50,
    max_command: 120,
};

/// Small HTTP limits, likewise.
pub const SMALL_HTTP: http::Limits = http::Limits {
    max_head: 200,
    max_body: 100,
};

/// Cuts `data` into reads of 1 to `max` bytes, sizes drawn from `seed`.
pub fn chunks(data: &[u8], seed: u16, max: usize) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1 << 16;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// What a RESP stream parses to: the commands, then the error if one ended it.
#[derive(Debug, PartialEq, Eq)]
pub struct RespOutcome {
    /// The commands parsed, in order.
    pub commands: Vec<resp::Command>,
    /// The protocol error that ended the stream, if one did.
    pub error: Option<&'static str>,
}

/// Feeds `reads` to a parser the way `kv_server` does (append, parse until `None`, drop the
/// consumed bytes) and checks the invariants on the way.
pub fn resp_feed(reads: &[&[u8]], limits: resp::Limits) -> RespOutcome {
    let mut parser = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut outcome = RespOutcome {
        commands: Vec::new(),
        error: None,
    };
    for read in reads {
        buf.extend_from_slice(read);
        let mut used = 0;
        loop {
            match parser.parse(&buf[used..]) {
                Ok((n, cmd)) => {
                    assert!(
                        n <= buf.len() - used,
                        "consumed {n} of {}",
                        buf.len() - used
                    );
                    used += n;
                    match cmd {
                        Some(cmd) => {
                            assert!(!cmd.is_empty(), "empty command returned");
                            assert!(cmd.len() <= limits.max_args.max(limits.max_line));
                            outcome.commands.push(cmd);
                        }
                        None => break,
                    }
                }
                Err(e) => {
                    assert!(e.starts_with("Protocol error: "), "{e}");
                    assert_eq!(parser.parse(&buf[used..]), Err(e), "errors stick");
                    outcome.error = Some(e);
                    return outcome;
                }
            }
        }
        buf.drain(..used);
        // What stays buffered is at most an unfinished line (data is consumed as it comes).
        assert!(
            buf.len() <= limits.max_line + 1,
            "{} bytes left buffered",
            buf.len()
        );
    }
    outcome
}

/// The RESP property: never a panic, consumed ≤ input, at most a line buffered, and the same
/// commands and error whether the stream comes in one read or cut anywhere.
pub fn resp_check(input: &[u8]) {
    let (seed, data) = split_seed(input);
    for limits in [SMALL_RESP, resp::Limits::DEFAULT] {
        let whole = resp_feed(&[data], limits);
        let cut = resp_feed(&chunks(data, seed, 7), limits);
        assert_eq!(
            whole,
            cut,
            "one read vs cut at {seed}: {:?}",
            String::from_utf8_lossy(data)
        );
        let bytes = resp_feed(&chunks(data, 0, 1), limits);
        assert_eq!(
            whole,
            bytes,
            "one read vs byte by byte: {:?}",
            String::from_utf8_lossy(data)
        );
        // Each bulk command re-encoded parses back to itself.
        for cmd in &whole.commands {
            let again = resp_feed(&[&encode(cmd)], resp::Limits::DEFAULT);
            assert_eq!(again.commands, vec![cmd.clone()]);
        }
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode(cmd: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for arg in cmd {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What a connection makes of an HTTP stream: the bytes it sends, and its last state.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpOutcome {
    /// Every byte the connection sent.
    pub sent: Vec<u8>,
    /// Its state after the last read.
    pub progress: Progress,
    /// Requests answered.
    pub answered: u64,
}

/// Feeds `reads` to a [`Conn`] as `http_hello` does, until it says `Close`.
pub fn http_feed(reads: &[&[u8]], limits: http::Limits) -> HttpOutcome {
    let mut conn = Conn::new(limits);
    let mut sent = Vec::new();
    let mut progress = Progress::Idle;
    for read in reads {
        progress = conn.received(read, &mut sent);
        if progress == Progress::Close {
            break;
        }
    }
    HttpOutcome {
        sent,
        progress,
        answered: conn.answered(),
    }
}

/// The statuses of the responses in `sent`, checking that each is well formed.
pub fn statuses(mut sent: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    while !sent.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(sent) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "bad response {other:?} in {:?}",
                String::from_utf8_lossy(sent)
            ),
        };
        let body: usize = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("every response has a Content-Length");
        let code = resp.code.unwrap();
        // A `HEAD` response has no body (the hello body cannot start with `HTTP/`).
        let rest = &sent[len..];
        let take = if code == 200 && !rest.starts_with(http::HELLO) {
            0
        } else {
            body
        };
        assert!(rest.len() >= take, "truncated response body");
        if code == 200 && take > 0 {
            assert_eq!(&rest[..take], http::HELLO);
        }
        sent = &rest[take..];
        out.push(code);
    }
    out
}

/// The HTTP property: never a panic; the same responses and state whether the stream comes in
/// one read or cut anywhere; responses well formed, errors only last and followed by `Close`;
/// and [`http::parse_head`] agrees with itself on prefixes.
pub fn http_check(input: &[u8]) {
    let (seed, data) = split_seed(input);
    for limits in [SMALL_HTTP, http::Limits::DEFAULT] {
        let whole = http_feed(&[data], limits);
        let cut = http_feed(&chunks(data, seed, 9), limits);
        assert_eq!(
            whole,
            cut,
            "one read vs cut at {seed}: {:?}",
            String::from_utf8_lossy(data)
        );
        let bytes = http_feed(&chunks(data, 0, 1), limits);
        assert_eq!(
            whole,
            bytes,
            "one read vs byte by byte: {:?}",
            String::from_utf8_lossy(data)
        );
        let codes = statuses(&whole.sent);
        let ok = codes.iter().filter(|&&c| c == 200).count() as u64;
        assert_eq!(ok, whole.answered, "{codes:?}");
        if let Some(i) = codes.iter().position(|&c| c != 200) {
            assert_eq!(
                i,
                codes.len() - 1,
                "an error response is the last: {codes:?}"
            );
            assert_eq!(whole.progress, Progress::Close);
        }
        let full = http::parse_head(data, &limits);
        if let Head::Request(r) = full {
            assert!(r.len <= data.len() && r.len <= limits.max_head);
            assert!(r.body <= limits.max_body);
        }
        for cut in [
            1,
            2,
            data.len() / 3,
            data.len() / 2,
            data.len().saturating_sub(1),
        ] {
            let prefix = &data[..cut.min(data.len())];
            match http::parse_head(prefix, &limits) {
                Head::Partial => {}
                decided => assert_eq!(decided, full, "prefix of {cut} bytes"),
            }
        }
    }
}

fn split_seed(input: &[u8]) -> (u16, &[u8]) {
    match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, input),
    }
}
