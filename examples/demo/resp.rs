//! RESP2, the Redis protocol, as far as `kv_server` needs it: parsing commands (arrays of bulk
//! strings, or inline commands) and encoding replies.

/// A command and its arguments.
pub(crate) type Command = Vec<Vec<u8>>;

/// One RESP reply (see [`put`]).
pub(crate) enum Reply<'a> {
    Simple(&'a str),
    Error(&'a str),
    Int(i64),
    Bulk(Option<&'a [u8]>),
    Array(usize), // header only; the elements follow
}

/// Appends `reply` to `out`, encoded.
pub(crate) fn put(out: &mut Vec<u8>, reply: Reply<'_>) {
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

/// Parses one command from the front of `buf`: a RESP array of bulk strings, or an inline
/// command (`PING\r\n`). `Ok(None)`: incomplete, read more. Returns the command and its length.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Command, usize)>, &'static str> {
    let line = |from: usize| -> Option<(&[u8], usize)> {
        let end = from + buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[from..end], end + 2))
    };
    let number = |s: &[u8]| {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
    };
    if buf.first() != Some(&b'*') {
        let Some((text, next)) = line(0) else {
            return Ok(None);
        };
        let words = text.split(|b| *b == b' ').filter(|w| !w.is_empty());
        return Ok(Some((words.map(<[u8]>::to_vec).collect(), next)));
    }
    let Some((head, mut at)) = line(0) else {
        return Ok(None);
    };
    let count = number(&head[1..]).ok_or("bad array length")?;
    let mut cmd = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((head, start)) = line(at) else {
            return Ok(None);
        };
        let len = match head.split_first() {
            Some((b'$', n)) => number(n).ok_or("bad bulk length")?,
            _ => return Err("expected a bulk string"),
        };
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        cmd.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Ok(Some((cmd, at)))
}
