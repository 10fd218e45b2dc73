//! Smoke test of `examples/kv_server.rs` with a small RESP client written here: every command,
//! errors, inline and pipelined requests, and INCR from 20 connections at once (no lost update).
mod pattern_support;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use pattern_support::{example_command, rejects_bad_flags, KillOnDrop};

/// Encodes a command as a RESP array of bulk strings.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads one reply and renders it as text: `+OK`, `-ERR ...`, `:3`, `$hi`, `$nil`, `[a, b]`.
fn reply(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | "-" | ":" => line.to_owned(),
        "$" if rest == "-1" => "$nil".to_owned(),
        "$" => {
            let mut body = vec![0u8; rest.parse::<usize>().unwrap() + 2];
            r.read_exact(&mut body).unwrap();
            format!("${}", String::from_utf8_lossy(&body[..body.len() - 2]))
        }
        "*" => {
            let items: Vec<String> = (0..rest.parse().unwrap()).map(|_| reply(r)).collect();
            format!("[{}]", items.join(", "))
        }
        _ => panic!("bad reply line {line:?}"),
    }
}

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Client { w, r }
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.w.write_all(&command(args)).unwrap();
        reply(&mut self.r)
    }
}

/// Starts the server on a free port; returns it (killed on drop) and its address.
fn start() -> (KillOnDrop, SocketAddr) {
    let mut child = example_command("kv_server", &["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = KillOnDrop(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect(&line);
    (child, addr)
}

#[test]
fn kv_server_speaks_resp() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let mut c = Client::connect(addr);
        let cases: &[(&[&str], &str)] = &[
            (&["PING"], "+PONG"),
            (&["ping", "hello"], "$hello"),
            (&["ECHO", "a b"], "$a b"),
            (&["GET", "k"], "$nil"),
            (&["SET", "k", "v1"], "+OK"),
            (&["GET", "k"], "$v1"),
            (&["SET", "k", ""], "+OK"),
            (&["GET", "k"], "$"),
            (&["INCR", "n"], ":1"),
            (&["INCR", "n"], ":2"),
            (
                &["INCR", "k"],
                "-ERR value is not an integer or out of range",
            ),
            (&["MSET", "a", "1", "b", "2", "c", "3"], "+OK"),
            (&["MGET", "a", "b", "zz", "c"], "[$1, $2, $nil, $3]"),
            (&["EXISTS", "a", "zz", "b", "a"], ":3"),
            (&["DEL", "a", "zz", "b"], ":2"),
            (&["EXISTS", "a", "b", "c"], ":1"),
            (&["GET", "a", "b"], "-ERR wrong number of arguments"),
            (&["MSET", "a"], "-ERR wrong number of arguments"),
            (&["FLY"], "-ERR unknown command"),
        ];
        for (args, want) in cases {
            assert_eq!(c.call(args), *want, "{args:?}");
        }
        // Inline commands (redis-benchmark's PING_INLINE), and a pipelined batch in one write.
        c.w.write_all(b"PING\r\nECHO inline\r\n").unwrap();
        assert_eq!(reply(&mut c.r), "+PONG");
        assert_eq!(reply(&mut c.r), "$inline");
        let batch: Vec<u8> = (0..100).flat_map(|_| command(&["INCR", "p"])).collect();
        c.w.write_all(&batch).unwrap();
        for i in 1..=100 {
            assert_eq!(reply(&mut c.r), format!(":{i}"));
        }
    });
}

#[test]
fn kv_server_incr_is_atomic_across_connections() {
    support::watchdog(120, || {
        let (_server, addr) = start();
        let clients: Vec<_> = (0..20)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for _ in 0..100 {
                        assert!(c.call(&["INCR", "shared"]).starts_with(':'));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(Client::connect(addr).call(&["GET", "shared"]), "$2000");
    });
}

#[test]
fn kv_server_rejects_bad_flags() {
    support::watchdog(120, || rejects_bad_flags("kv_server", 110));
}
