//! The public form of a wait reason, decoded from a fiber's wait word (`task::reason`).
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::task::reason::{self as raw, kind};
use crate::task::FiberId;

/// What a waiting fiber waits for, as a [`Dump`](crate::Dump) shows it.
///
/// Objects are named by their address (stable while anyone waits on them), so two fibers waiting
/// on the same `Mutex` show the same `lock`. Fields that need the waiter to be truly suspended
/// (a lock's owner, a socket's peer) are `None` when it was not (woken, about to run).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// [`park`](crate::park).
    Park,
    /// [`park_timeout`](crate::park_timeout), until `until` at the latest.
    ParkTimeout {
        /// The deadline (millisecond precision).
        until: Instant,
    },
    /// [`sleep`](crate::sleep) or [`sleep_until`](crate::sleep_until).
    Sleep {
        /// When the sleep ends (millisecond precision).
        until: Instant,
    },
    /// `JoinHandle::join` (or a scoped handle's, or `block_on` from a fiber).
    Join {
        /// The fiber joined.
        fiber: FiberId,
    },
    /// `Mutex::lock`.
    Mutex {
        /// The mutex's address.
        lock: usize,
        /// Who holds it: a fiber's id, or the id standing for an OS thread (see
        /// [`current`](crate::current)).
        owner: Option<FiberId>,
    },
    /// `RwLock::read`.
    RwLockRead {
        /// The lock's address.
        lock: usize,
        /// The writer holding it, if a writer does (readers are not recorded).
        writer: Option<FiberId>,
    },
    /// `RwLock::write`.
    RwLockWrite {
        /// The lock's address.
        lock: usize,
        /// The writer holding it, if a writer does (readers are not recorded).
        writer: Option<FiberId>,
    },
    /// `Condvar::wait*`.
    Condvar {
        /// The condvar's address.
        condvar: usize,
    },
    /// A channel send (`mpsc`, `mpmc`) waiting for room or a receiver.
    ChannelSend {
        /// The channel's address.
        channel: usize,
    },
    /// A channel receive waiting for a message.
    ChannelRecv {
        /// The channel's address.
        channel: usize,
    },
    /// `select!` over several channel operations.
    Select,
    /// `Semaphore::acquire*`.
    Semaphore {
        /// The semaphore's address.
        semaphore: usize,
    },
    /// `Barrier::wait`.
    Barrier {
        /// The barrier's address.
        barrier: usize,
    },
    /// `WaitGroup::wait*`.
    WaitGroup {
        /// The wait group's address.
        group: usize,
    },
    /// An fd to become readable (a fiber socket, pipe, or a hooked call's fd).
    FdRead {
        /// The fd.
        fd: i32,
        /// The socket's peer, if it is a connected socket (read at dump time).
        peer: Option<SocketAddr>,
    },
    /// An fd to become writable.
    FdWrite {
        /// The fd.
        fd: i32,
        /// The socket's peer, if it is a connected socket (read at dump time).
        peer: Option<SocketAddr>,
    },
    /// The result of [`spawn_blocking`](crate::spawn_blocking).
    Blocking,
    /// Inside a libc call interposed by the `hook` feature.
    Hook {
        /// The function (`read`, `connect`, `poll`, ...).
        function: &'static str,
        /// The fd it waits on, if one.
        fd: Option<i32>,
    },
    /// A [`scope`](crate::scope)'s owner waiting for its scoped fibers.
    Scope,
    /// A [`group`](crate::group)'s owner waiting for its members.
    Group,
}

use crate::task::reason::HOOK_NAMES;

fn instant(ms: u64) -> Instant {
    raw::base() + Duration::from_millis(ms)
}

fn id(raw_id: u64) -> Option<FiberId> {
    FiberId::from_u64(raw_id)
}

/// Decodes a wait word; `owner` is the lock owner read while the fiber was pinned (0: unknown),
/// `peer` the socket peer read likewise. `None` for `kind::NONE` (or an unknown kind).
pub(crate) fn decode(word: u64, owner: u64, peer: Option<SocketAddr>) -> Option<WaitReason> {
    let p = raw::payload_of(word);
    let addr = p as usize;
    Some(match raw::kind_of(word) {
        kind::PARK => WaitReason::Park,
        kind::PARK_TIMEOUT => WaitReason::ParkTimeout { until: instant(p) },
        kind::SLEEP => WaitReason::Sleep { until: instant(p) },
        kind::JOIN => WaitReason::Join { fiber: id(p)? },
        kind::MUTEX => WaitReason::Mutex {
            lock: addr,
            owner: id(owner),
        },
        kind::RWLOCK_READ => WaitReason::RwLockRead {
            lock: addr,
            writer: id(owner),
        },
        kind::RWLOCK_WRITE => WaitReason::RwLockWrite {
            lock: addr,
            writer: id(owner),
        },
        kind::CONDVAR => WaitReason::Condvar { condvar: addr },
        kind::CHAN_SEND => WaitReason::ChannelSend { channel: addr },
        kind::CHAN_RECV => WaitReason::ChannelRecv { channel: addr },
        kind::SELECT => WaitReason::Select,
        kind::SEMAPHORE => WaitReason::Semaphore { semaphore: addr },
        kind::BARRIER => WaitReason::Barrier { barrier: addr },
        kind::WAITGROUP => WaitReason::WaitGroup { group: addr },
        kind::FD_READ => WaitReason::FdRead {
            fd: p as u32 as i32,
            peer,
        },
        kind::FD_WRITE => WaitReason::FdWrite {
            fd: p as u32 as i32,
            peer,
        },
        kind::BLOCKING => WaitReason::Blocking,
        kind::HOOK => WaitReason::Hook {
            function: HOOK_NAMES
                .get((p >> 32) as usize & 0xff)
                .copied()
                .unwrap_or("?"),
            fd: match p as u32 {
                u32::MAX => None,
                fd => Some(fd as i32),
            },
        },
        kind::SCOPE => WaitReason::Scope,
        kind::GROUP => WaitReason::Group,
        _ => return None,
    })
}

/// Does the dumper need the fiber pinned to complete this word (a lock's owner, an fd's peer)?
pub(crate) fn needs_pin(word: u64) -> bool {
    matches!(
        raw::kind_of(word),
        kind::MUTEX | kind::RWLOCK_READ | kind::RWLOCK_WRITE | kind::FD_READ | kind::FD_WRITE
    )
}

/// Is this a lock wait (its payload the address of an `Owner`)?
pub(crate) fn is_lock(word: u64) -> bool {
    matches!(
        raw::kind_of(word),
        kind::MUTEX | kind::RWLOCK_READ | kind::RWLOCK_WRITE
    )
}

impl WaitReason {
    /// A short name of the kind of wait ("mutex", "sleep", ...): the JSON `kind` and the group
    /// headings of the text dump. The names are the task layer's (`task::reason::kind_name`), so
    /// dumps, metrics (`parks_by_reason`) and `tracing` park events say the same.
    pub fn kind(&self) -> &'static str {
        raw::kind_name(self.code()).expect("every WaitReason has a named kind")
    }

    /// The kind code this reason was decoded from (`decode`'s inverse on the kind).
    fn code(&self) -> u8 {
        match self {
            WaitReason::Park => kind::PARK,
            WaitReason::ParkTimeout { .. } => kind::PARK_TIMEOUT,
            WaitReason::Sleep { .. } => kind::SLEEP,
            WaitReason::Join { .. } => kind::JOIN,
            WaitReason::Mutex { .. } => kind::MUTEX,
            WaitReason::RwLockRead { .. } => kind::RWLOCK_READ,
            WaitReason::RwLockWrite { .. } => kind::RWLOCK_WRITE,
            WaitReason::Condvar { .. } => kind::CONDVAR,
            WaitReason::ChannelSend { .. } => kind::CHAN_SEND,
            WaitReason::ChannelRecv { .. } => kind::CHAN_RECV,
            WaitReason::Select => kind::SELECT,
            WaitReason::Semaphore { .. } => kind::SEMAPHORE,
            WaitReason::Barrier { .. } => kind::BARRIER,
            WaitReason::WaitGroup { .. } => kind::WAITGROUP,
            WaitReason::FdRead { .. } => kind::FD_READ,
            WaitReason::FdWrite { .. } => kind::FD_WRITE,
            WaitReason::Blocking => kind::BLOCKING,
            WaitReason::Hook { .. } => kind::HOOK,
            WaitReason::Scope => kind::SCOPE,
            WaitReason::Group => kind::GROUP,
        }
    }

    /// The fiber (or thread) this wait waits for, if the dump knows it: a lock's owner, a joined
    /// fiber. The edges of the wait-for graph.
    pub fn waits_for(&self) -> Option<FiberId> {
        match self {
            WaitReason::Join { fiber } => Some(*fiber),
            WaitReason::Mutex { owner, .. } => *owner,
            WaitReason::RwLockRead { writer, .. } | WaitReason::RwLockWrite { writer, .. } => {
                *writer
            }
            _ => None,
        }
    }
}

fn until(f: &mut fmt::Formatter<'_>, at: Instant) -> fmt::Result {
    let now = Instant::now();
    if at >= now {
        write!(f, "for {:.3?} more", at - now)
    } else {
        write!(f, "due {:.3?} ago", now - at)
    }
}

fn peer(f: &mut fmt::Formatter<'_>, peer: &Option<SocketAddr>) -> fmt::Result {
    match peer {
        Some(p) => write!(f, ", peer {p}"),
        None => Ok(()),
    }
}

fn owner(f: &mut fmt::Formatter<'_>, what: &str, who: &Option<FiberId>) -> fmt::Result {
    match who {
        Some(id) => write!(f, ", {what} fiber {}", id.as_u64()),
        None => Ok(()),
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Park => f.write_str("park"),
            WaitReason::ParkTimeout { until: at } => {
                f.write_str("park_timeout ")?;
                until(f, *at)
            }
            WaitReason::Sleep { until: at } => {
                f.write_str("sleep ")?;
                until(f, *at)
            }
            WaitReason::Join { fiber } => write!(f, "join fiber {}", fiber.as_u64()),
            WaitReason::Mutex { lock, owner: who } => {
                write!(f, "Mutex {lock:#x}")?;
                owner(f, "held by", who)
            }
            WaitReason::RwLockRead { lock, writer } => {
                write!(f, "RwLock::read {lock:#x}")?;
                owner(f, "written by", writer)
            }
            WaitReason::RwLockWrite { lock, writer } => {
                write!(f, "RwLock::write {lock:#x}")?;
                owner(f, "written by", writer)
            }
            WaitReason::Condvar { condvar } => write!(f, "Condvar {condvar:#x}"),
            WaitReason::ChannelSend { channel } => write!(f, "channel send {channel:#x}"),
            WaitReason::ChannelRecv { channel } => write!(f, "channel recv {channel:#x}"),
            WaitReason::Select => f.write_str("select"),
            WaitReason::Semaphore { semaphore } => write!(f, "Semaphore {semaphore:#x}"),
            WaitReason::Barrier { barrier } => write!(f, "Barrier {barrier:#x}"),
            WaitReason::WaitGroup { group } => write!(f, "WaitGroup {group:#x}"),
            WaitReason::FdRead { fd, peer: p } => {
                write!(f, "fd {fd} readable")?;
                peer(f, p)
            }
            WaitReason::FdWrite { fd, peer: p } => {
                write!(f, "fd {fd} writable")?;
                peer(f, p)
            }
            WaitReason::Blocking => f.write_str("spawn_blocking result"),
            WaitReason::Hook { function, fd } => {
                write!(f, "hooked {function}()")?;
                match fd {
                    Some(fd) => write!(f, " on fd {fd}"),
                    None => Ok(()),
                }
            }
            WaitReason::Scope => f.write_str("scope (its scoped fibers)"),
            WaitReason::Group => f.write_str("group (its members)"),
        }
    }
}
