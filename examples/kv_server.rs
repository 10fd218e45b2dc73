//! kv_server: a small Redis-protocol (RESP2) key-value server in blocking style, one fiber per
//! connection, that the real `redis-benchmark` and `redis-cli` can talk to. Commands: PING, ECHO,
//! GET, SET, DEL, INCR, MGET, MSET, EXISTS (plus CONFIG GET and COMMAND, answered with an empty
//! list: clients send them at start-up). Pipelined requests are answered in one write.
//!
//! `cargo run --release --example kv_server -- --addr 127.0.0.1:6380`, then
//! `redis-benchmark -p 6380 -q -n 100000 -c 50 -t ping,set,get,incr,mset`
mod demo;

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::sync::Arc;

use demo::resp::{parse, put, Reply};
use fiber::net::TcpStream;
use fiber::sync::{Mutex, MutexGuard};

const USAGE: &str = "usage: kv_server [--addr HOST:PORT] [--workers N]
  --addr     where to listen (default 127.0.0.1:6380; port 0 picks a free one)
  --workers  worker threads (default 2)";

type Map = HashMap<Vec<u8>, Vec<u8>>;

/// The keyspace, in shards so that connections rarely wait for one another's lock.
struct Store {
    shards: Vec<Mutex<Map>>,
}

/// The shards a command needs, locked in index order (so two commands cannot deadlock): a
/// multi-key command sees and changes all its keys atomically.
struct Locked<'a> {
    store: &'a Store,
    guards: Vec<(usize, MutexGuard<'a, Map>)>,
}

impl Store {
    fn shard(&self, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    fn lock<'a>(&'a self, keys: &[&[u8]]) -> Locked<'a> {
        let mut ids: Vec<usize> = keys.iter().map(|k| self.shard(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        let guards = ids
            .into_iter()
            .map(|i| (i, self.shards[i].lock().unwrap()))
            .collect();
        Locked {
            store: self,
            guards,
        }
    }
}

impl Locked<'_> {
    fn map(&mut self, key: &[u8]) -> &mut Map {
        let i = self.store.shard(key);
        &mut self.guards.iter_mut().find(|(j, _)| *j == i).unwrap().1
    }
}

/// Runs one command, appending its reply.
fn execute(store: &Store, cmd: &[Vec<u8>], out: &mut Vec<u8>) {
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
    let args: Vec<&[u8]> = cmd[1..].iter().map(Vec::as_slice).collect();
    let reply = match (name.as_str(), args.len()) {
        ("PING", 0) => Reply::Simple("PONG"),
        ("PING" | "ECHO", 1) => Reply::Bulk(Some(args[0])),
        ("GET", 1) => {
            return put(
                out,
                Reply::Bulk(store.lock(&args).map(args[0]).get(args[0]).map(|v| &v[..])),
            )
        }
        ("SET", 2) => {
            store
                .lock(&args[..1])
                .map(args[0])
                .insert(args[0].to_vec(), args[1].to_vec());
            Reply::Simple("OK")
        }
        ("DEL" | "EXISTS", n) if n > 0 => {
            let mut locked = store.lock(&args);
            let del = name == "DEL";
            let hits = args.iter().filter(|k| {
                let map = locked.map(k);
                if del {
                    map.remove(**k).is_some()
                } else {
                    map.contains_key(**k)
                }
            });
            Reply::Int(hits.count() as i64)
        }
        ("INCR", 1) => {
            let mut locked = store.lock(&args);
            let value = locked
                .map(args[0])
                .entry(args[0].to_vec())
                .or_insert(b"0".to_vec());
            match std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) if n < i64::MAX => {
                    *value = (n + 1).to_string().into_bytes();
                    Reply::Int(n + 1)
                }
                _ => Reply::Error("value is not an integer or out of range"),
            }
        }
        ("MGET", n) if n > 0 => {
            let mut locked = store.lock(&args);
            put(out, Reply::Array(n));
            for k in &args {
                put(out, Reply::Bulk(locked.map(k).get(*k).map(|v| &v[..])));
            }
            return;
        }
        ("MSET", n) if n > 0 && n % 2 == 0 => {
            let keys: Vec<&[u8]> = args.iter().step_by(2).copied().collect();
            let mut locked = store.lock(&keys);
            for kv in args.chunks(2) {
                locked.map(kv[0]).insert(kv[0].to_vec(), kv[1].to_vec());
            }
            Reply::Simple("OK")
        }
        // redis-benchmark asks for `save` and `appendonly` at start-up: nothing to report.
        ("CONFIG", 2) if args[0].eq_ignore_ascii_case(b"GET") => {
            put(out, Reply::Array(2));
            put(out, Reply::Bulk(Some(args[1])));
            return put(out, Reply::Bulk(Some(b"")));
        }
        ("CONFIG" | "COMMAND", _) => Reply::Array(0),
        ("PING" | "ECHO" | "GET" | "SET" | "DEL" | "EXISTS" | "INCR" | "MGET" | "MSET", _) => {
            Reply::Error("wrong number of arguments")
        }
        _ => Reply::Error("unknown command"),
    };
    put(out, reply);
}

/// One connection: read, run every complete command, write all replies, repeat.
fn serve(mut stream: TcpStream, store: &Store) {
    let _ = stream.set_nodelay(true);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut used = 0;
        loop {
            match parse(&buf[used..]) {
                Ok(Some((cmd, len))) => {
                    used += len;
                    if cmd.first().is_some_and(|c| c.eq_ignore_ascii_case(b"QUIT")) {
                        let _ = stream.write_all(&out).and(stream.write_all(b"+OK\r\n"));
                        return;
                    }
                    if !cmd.is_empty() {
                        execute(store, &cmd, &mut out);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    put(&mut out, Reply::Error(e));
                    let _ = stream.write_all(&out);
                    return;
                }
            }
        }
        buf.drain(..used);
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn main() {
    let mut args = demo::Args::parse(USAGE);
    let addr: std::net::SocketAddr = args.get("--addr", "127.0.0.1:6380".parse().unwrap());
    let workers: usize = args.get("--workers", 2);
    args.done();
    let rt = fiber::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let store = Arc::new(Store {
        shards: (0..64).map(|_| Mutex::default()).collect(),
    });
    rt.block_on(|| {
        let listener = demo::listen(addr)
            .unwrap_or_else(|e| demo::Args::fail(USAGE, &format!("cannot listen on {addr}: {e}")));
        println!("kv_server listening on {}", listener.local_addr().unwrap());
        let _ = std::io::stdout().flush();
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let store = store.clone();
                    fiber::spawn(move || serve(stream, &store));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    fiber::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    })
}
