//! The RESP parser of `kv_server` and the request handling of `http_hello`, as pure functions
//! over bytes: a short deterministic fuzz run (seeded mutations of a small corpus of valid and
//! hostile inputs, the same checks as the `fuzz/` targets: no panic, consumed ≤ input, bounded
//! buffering, the same outcome however the stream is split), plus direct checks of the limits.
mod support;

use fiber_support::fuzz_checks::{self as checks, chunks, encode, http_feed, resp_feed, statuses};
use fiber_support::http_parse::{self as http, Head, Progress};
use fiber_support::resp::{self, Limits, Parser};

/// xorshift64*: a reproducible stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The seed inputs of the fuzz targets (`fuzz/seeds/<target>/`).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/fuzz/seeds/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let seeds: Vec<Vec<u8>> = names.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(seeds.len() >= 8, "corpus in {dir}");
    seeds
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"*",
    b"$",
    b"-1",
    b"0",
    b"99999999999",
    b"18446744073709551615",
    b"9223372036854775807",
    b" ",
    b"\r\n\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: x\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: h\r\n",
    b"Connection: close\r\n",
    b"GET / HTTP/1.1\r\n",
    b"HTTP/1.0",
    b"HEAD",
];

/// One mutation of a corpus entry: byte flips, inserted tokens, deleted or duplicated ranges,
/// splices with another entry.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + rng.below(8)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(40)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                data.splice(at..at, other[from..].iter().copied());
            }
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

#[test]
fn resp_parser_survives_mutated_streams() {
    support::watchdog(120, || {
        let corpus = seeds("resp");
        let mut rng = Rng(0x5eed_0001);
        for seed in &corpus {
            checks::resp_check(seed);
        }
        let cases = support::scaled(5000, 2000);
        for _ in 0..cases {
            checks::resp_check(&mutate(&mut rng, &corpus));
        }
    });
}

#[test]
fn http_conn_survives_mutated_streams() {
    support::watchdog(120, || {
        let corpus = seeds("http");
        let mut rng = Rng(0x5eed_0002);
        for seed in &corpus {
            checks::http_check(seed);
        }
        let cases = support::scaled(5000, 2000);
        for _ in 0..cases {
            checks::http_check(&mutate(&mut rng, &corpus));
        }
    });
}

#[test]
fn resp_random_commands_round_trip_however_split() {
    support::watchdog(120, || {
        let mut rng = Rng(7);
        for _ in 0..300 {
            let cmds: Vec<resp::Command> = (0..1 + rng.below(5))
                .map(|_| {
                    (0..1 + rng.below(5))
                        .map(|_| (0..rng.below(300)).map(|_| rng.next() as u8).collect())
                        .collect()
                })
                .collect();
            let wire: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
            let seed = rng.next() as u16;
            let got = resp_feed(&chunks(&wire, seed, 50), Limits::DEFAULT);
            assert_eq!(got.error, None);
            assert_eq!(got.commands, cmds);
        }
    });
}

fn resp_error(input: &[u8]) -> (usize, Result<(usize, Option<resp::Command>), &'static str>) {
    let mut p = Parser::new(Limits::DEFAULT);
    (input.len(), p.parse(input))
}

#[test]
fn resp_rejects_hostile_lengths() {
    // The 14-byte bomb: rejected from its header, nothing reserved for it.
    let (_, r) = resp_error(b"*99999999999\r\n");
    assert_eq!(r, Err("Protocol error: invalid multibulk length"));
    assert_eq!(
        resp_error(b"*1048577\r\n").1,
        Err("Protocol error: invalid multibulk length")
    );
    // A declared bulk over the limit: rejected before any of its data is buffered.
    for len in [
        "99999999999",
        "16777217",
        "18446744073709551615",
        "18446744073709551614",
        "9223372036854775807",
        "-5",
    ] {
        let input = format!("*1\r\n${len}\r\nabc");
        assert_eq!(
            resp_error(input.as_bytes()).1,
            Err("Protocol error: invalid bulk length"),
            "{len}"
        );
    }
    // Exactly at the limit is accepted (and waits for the data).
    let input = format!("*1\r\n${}\r\nabc", 16 * 1024 * 1024);
    let (n, r) = resp_error(input.as_bytes());
    assert_eq!(r, Ok((n, None)));
    // Too many bytes in one command, from the declared lengths.
    let big = 16 * 1024 * 1024;
    let input = format!("*5\r\n${big}\r\n");
    let mut p = Parser::new(Limits::DEFAULT);
    let mut wire = input.into_bytes();
    assert_eq!(p.parse(&wire), Ok((wire.len(), None)));
    let data = vec![b'x'; big];
    let mut rest = data.clone();
    rest.extend_from_slice(b"\r\n");
    for _ in 0..3 {
        rest.extend_from_slice(format!("${big}\r\n").as_bytes());
        rest.extend_from_slice(&data);
        rest.extend_from_slice(b"\r\n");
    }
    rest.extend_from_slice(format!("${big}\r\n").as_bytes());
    wire = rest;
    let mut used = 0;
    let err = loop {
        match p.parse(&wire[used..]) {
            Ok((n, None)) => {
                used += n;
                assert!(used < wire.len(), "no error");
            }
            Ok((_, Some(_))) => panic!("a 5 x 16 MiB command was accepted"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, "Protocol error: command too large");
}

#[test]
fn resp_long_line_is_rejected_at_the_limit_in_linear_time() {
    support::watchdog(60, || {
        // 100 MB without a line end, in 16 KiB reads: the error comes once the line passes the
        // 64 KiB limit, and each read is searched once (with the old rescanning parser this
        // was quadratic; here it is about 5 reads).
        for first in [b'A', b'*'] {
            let mut p = Parser::new(Limits::DEFAULT);
            let mut buf = vec![first];
            let chunk = vec![b'7'; 16 * 1024];
            let mut reads = 0;
            let err = loop {
                reads += 1;
                assert!(reads < 100, "no error after {} bytes", buf.len());
                buf.extend_from_slice(&chunk);
                match p.parse(&buf) {
                    Ok((0, None)) => {}
                    other => break other,
                }
            };
            let want = if first == b'*' {
                "Protocol error: too big mbulk count string"
            } else {
                "Protocol error: too big inline request"
            };
            assert_eq!(err, Err(want));
            assert_eq!(
                reads, 4,
                "1 + 4 x 16 KiB bytes: the first read over the limit"
            );
        }
        // A line of exactly 64 KiB (before its \n) is accepted.
        let mut line = vec![b'A'; 64 * 1024];
        line.push(b'\n');
        let (n, r) = resp_error(&line);
        assert_eq!(r, Ok((n, Some(vec![vec![b'A'; 64 * 1024]]))));
    });
}

#[test]
fn resp_bulk_data_is_consumed_as_it_arrives() {
    // A 1 MiB value in 1 KiB reads: the caller's buffer never holds more than one read.
    let value = vec![b'v'; 1024 * 1024];
    let wire = encode(&[b"SET".to_vec(), b"k".to_vec(), value.clone()]);
    let got = resp_feed(&chunks(&wire, 3, 1024), Limits::DEFAULT);
    assert_eq!(
        got.commands,
        vec![vec![b"SET".to_vec(), b"k".to_vec(), value]]
    );
}

fn request(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn http_pipelined_requests_with_bodies_are_all_answered_however_split() {
    support::watchdog(120, || {
        let mut rng = Rng(11);
        for _ in 0..300 {
            let n = 1 + rng.below(6);
            let mut wire = Vec::new();
            for _ in 0..n {
                // Bodies that look like requests must not be taken for requests.
                let body: Vec<u8> = match rng.below(3) {
                    0 => Vec::new(),
                    1 => b"GET /evil HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
                    _ => (0..rng.below(100)).map(|_| rng.next() as u8).collect(),
                };
                wire.extend_from_slice(&request(&body));
            }
            let seed = rng.next() as u16;
            let got = http_feed(
                &chunks(&wire, seed, 1 + rng.below(64)),
                http::Limits::DEFAULT,
            );
            assert_eq!(got.progress, Progress::Idle);
            assert_eq!(got.answered, n as u64);
            assert_eq!(statuses(&got.sent), vec![200; n]);
        }
    });
}

fn head(input: &[u8]) -> Head {
    http::parse_head(input, &http::Limits::DEFAULT)
}

#[test]
fn http_bad_requests_get_the_right_status() {
    let cases: &[(&[u8], u16)] = &[
        (b"garbage\r\n\r\n", 400),
        (b"\x00\x01\x02\xff\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
            413,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
    ];
    for (input, status) in cases {
        assert_eq!(
            head(input),
            Head::Reject(*status),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // 9 KiB of headers: 431, decided as soon as 8 KiB have arrived.
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.resize(9 * 1024, b'a');
    assert_eq!(head(&big[..8 * 1024]), Head::Reject(431));
    assert_eq!(head(&big[..8 * 1024 - 1]), Head::Partial);
    let many: Vec<u8> = (0..100)
        .flat_map(|i| format!("X-{i}: y\r\n").into_bytes())
        .collect();
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    req.extend_from_slice(&many);
    req.extend_from_slice(b"\r\n");
    assert_eq!(head(&req), Head::Reject(431), "more than 64 headers");
    // The same repeated length is fine, and keep-alive follows the version.
    let ok = head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n");
    assert!(
        matches!(ok, Head::Request(r) if r.body == 2 && !r.close),
        "{ok:?}"
    );
    let ok = head(b"GET / HTTP/1.0\r\n\r\n");
    assert!(matches!(ok, Head::Request(r) if r.close), "{ok:?}");
    let ok = head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(matches!(ok, Head::Request(r) if !r.close), "{ok:?}");
    let ok = head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n");
    assert!(matches!(ok, Head::Request(r) if r.close), "{ok:?}");
}

#[test]
fn http_timeout_answers_408_only_inside_a_request() {
    let mut conn = http::Conn::new(http::Limits::DEFAULT);
    let mut out = Vec::new();
    assert_eq!(
        conn.received(b"GET / HTTP/1.1\r\nHo", &mut out),
        Progress::InRequest
    );
    assert_eq!(conn.timed_out(&mut out), Progress::Close);
    assert_eq!(statuses(&out), vec![408]);
    let mut idle = http::Conn::new(http::Limits::DEFAULT);
    let mut out = Vec::new();
    assert_eq!(
        idle.received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut out),
        Progress::Idle
    );
    assert_eq!(idle.timed_out(&mut out), Progress::Close);
    assert_eq!(statuses(&out), vec![200], "no 408 for an idle connection");
}
