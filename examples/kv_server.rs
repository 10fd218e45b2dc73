//! kv_server: a small Redis-protocol (RESP2) key-value server in blocking style, one fiber per
//! connection, that the real `redis-benchmark` and `redis-cli` can talk to. Commands: PING, ECHO,
//! GET, SET, DEL, INCR, MGET, MSET, EXISTS (plus CONFIG GET and COMMAND, answered with an empty
//! list: clients send them at start-up). Pipelined requests are answered in one write.
//!
//! Hostile input is bounded (`fiber_support::resp`: lines 64 KiB, 1M elements, bulk strings 16 MiB,
//! 64 MiB per command; parsing in linear time, allocation following the bytes received) and
//! answered as redis-server does: `-ERR Protocol error: ...`, then the connection is closed.
//!
//! `cargo run --release --example kv_server -- --addr 127.0.0.1:6380`, then
//! `redis-benchmark -p 6380 -q -n 100000 -c 50 -t ping,set,get,incr,mset`

use std::collections::HashMap;
use std::io::{self, Read, Write};

use fiber::net::TcpStream;
use fiber::sync::Mutex;

use fiber_support::flags::{self, Flags};
use fiber_support::http_server;
use fiber_support::resp::{put, Limits, Parser, Reply};

const USAGE: &str = "usage: kv_server [--addr HOST:PORT] [--workers N]
  --addr     where to listen (default 127.0.0.1:6380; port 0 picks a free one)
  --workers  worker threads (default 2)";

/// The keyspace: one lock, held for one command (so multi-key commands are atomic). Commands
/// are a few hundred nanoseconds against a syscall per request, so on a few workers the lock is
/// rarely contended; when it is, the waiting fiber parks, not its worker.
type Store = Mutex<HashMap<Vec<u8>, Vec<u8>>>;

/// Runs one command, appending its reply; false for QUIT.
fn execute(store: &Store, cmd: &[Vec<u8>], out: &mut Vec<u8>) -> bool {
    let Some((name, args)) = cmd.split_first() else {
        return true; // the parser never returns an empty command
    };
    let name = name.to_ascii_uppercase();
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let mut db = store.lock().unwrap();
    match (&name[..], &args[..]) {
        (b"QUIT", _) => {
            put(out, Reply::Simple("OK"));
            return false;
        }
        (b"PING", []) => put(out, Reply::Simple("PONG")),
        (b"PING" | b"ECHO", [msg]) => put(out, Reply::Bulk(Some(msg))),
        (b"GET", [k]) => put(out, Reply::Bulk(db.get(*k).map(|v| &v[..]))),
        (b"SET", [k, v]) => {
            db.insert(k.to_vec(), v.to_vec());
            put(out, Reply::Simple("OK"));
        }
        (b"DEL", [_, ..]) => {
            let n = args.iter().filter(|k| db.remove(**k).is_some());
            put(out, Reply::Int(n.count() as i64));
        }
        (b"EXISTS", [_, ..]) => {
            let n = args.iter().filter(|k| db.contains_key(**k));
            put(out, Reply::Int(n.count() as i64));
        }
        (b"INCR", [k]) => {
            let value = db.entry(k.to_vec()).or_insert(b"0".to_vec());
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            match n.and_then(|n| n.checked_add(1)) {
                Some(n) => {
                    *value = n.to_string().into_bytes();
                    put(out, Reply::Int(n));
                }
                None => put(out, Reply::Error("value is not an integer or out of range")),
            }
        }
        (b"MGET", [_, ..]) => {
            put(out, Reply::Array(args.len()));
            for k in &args {
                put(out, Reply::Bulk(db.get(*k).map(|v| &v[..])));
            }
        }
        (b"MSET", [_, _, ..]) if args.len() % 2 == 0 => {
            for kv in args.chunks(2) {
                db.insert(kv[0].to_vec(), kv[1].to_vec());
            }
            put(out, Reply::Simple("OK"));
        }
        // redis-benchmark asks for `save` and `appendonly` at start-up: nothing to report.
        (b"CONFIG", [sub, key]) if sub.eq_ignore_ascii_case(b"GET") => {
            put(out, Reply::Array(2));
            put(out, Reply::Bulk(Some(key)));
            put(out, Reply::Bulk(Some(b"")));
        }
        (b"CONFIG" | b"COMMAND", _) => put(out, Reply::Array(0)),
        (
            b"PING" | b"ECHO" | b"GET" | b"SET" | b"DEL" | b"EXISTS" | b"INCR" | b"MGET" | b"MSET",
            _,
        ) => put(out, Reply::Error("wrong number of arguments")),
        _ => put(out, Reply::Error("unknown command")),
    }
    true
}

/// One connection: read, run every complete command, write all replies, repeat. Ends on end of
/// stream, QUIT or a protocol error (answered with `-ERR Protocol error: ...`, then closed, as
/// redis-server does). The parser consumes what it has parsed, so `buf` holds at most an
/// unfinished line (bounded by `Limits::max_line`) plus one read.
fn serve(mut stream: TcpStream, store: &Store) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut parser = Parser::new(Limits::DEFAULT);
    let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 16 * 1024]);
    let mut open = true;
    while open {
        match stream.read(&mut chunk)? {
            0 => return Ok(()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
        let mut used = 0;
        while open {
            match parser.parse(&buf[used..]) {
                Ok((n, Some(cmd))) => {
                    used += n;
                    open = execute(store, &cmd, &mut out);
                }
                Ok((n, None)) => {
                    used += n;
                    break;
                }
                Err(e) => {
                    put(&mut out, Reply::Error(e));
                    open = false;
                }
            }
        }
        buf.drain(..used);
        stream.write_all(&out)?;
        out.clear();
    }
    http_server::linger(stream); // after QUIT or a protocol error: let the client read the reply
    Ok(())
}

fn main() {
    let mut args = Flags::parse(USAGE, &[]);
    let addr: std::net::SocketAddr = args.get("--addr", "127.0.0.1:6380".parse().unwrap());
    let workers: usize = args.get("--workers", 2);
    args.done();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let store = Store::default();
    rt.block_on(|| {
        let listener = http_server::listen(addr)
            .unwrap_or_else(|e| flags::fail(USAGE, &format!("cannot listen on {addr}: {e}")));
        println!("kv_server listening on {}", listener.local_addr().unwrap());
        http_server::accept_loop(listener, move |stream| {
            let _ = serve(stream, &store);
        })
    })
}
