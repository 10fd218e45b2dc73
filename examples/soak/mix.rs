//! The scenarios of the soak (`examples/soak/main.rs`). Each one draws its whole plan (sizes, modes,
//! which fibers panic and where) from its own seeded generator *before* it starts a fiber, computes
//! what the totals must be from the plan alone, runs the plan on fibers, and returns a [`Report`]
//! of `(what, expected, actual)` checks. The interleaving is up to the scheduler; the plan and the
//! expected totals are not, so a failing seed replays the same plan.
//!
//! About one fiber in ten panics on purpose with a payload naming it; whoever joins it checks that
//! the payload is exactly that. Locks held by a panicking fiber are poisoned, as in std, and the
//! scenarios that do so check it (every `lock()` result must say "poisoned" exactly when a
//! previous holder panicked).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fiber::net::{TcpListener, TcpStream};
use fiber::sync::{mpmc, mpsc, Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};

use fiber_support::rng::{splitmix, Rng};

/// Prefix of every injected panic's payload; the soak's panic hook keeps these quiet.
pub(crate) const INJECTED: &str = "soak-injected";

// ---- plumbing ----------------------------------------------------------------------------------

/// What the scenarios need to know about the run.
pub(crate) struct Ctx {
    /// Size multiplier (1.0 in release builds, smaller in debug builds).
    pub(crate) load: f64,
}

impl Ctx {
    /// A size drawn from `lo..hi`, scaled by the load, at least 1.
    fn n(&self, rng: &mut Rng, lo: usize, hi: usize) -> usize {
        ((rng.range(lo, hi) as f64 * self.load).ceil() as usize).max(1)
    }
}

/// Panics with the payload `"soak-injected: <tag>"`.
fn inject(tag: &str) -> ! {
    std::panic::panic_any(format!("{INJECTED}: {tag}"))
}

/// The payload of a panic as text.
pub(crate) fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-text payload>".to_owned()
    }
}

/// One comparison: `expected` is computed from the plan, `actual` from what happened.
pub(crate) struct Check {
    pub(crate) what: &'static str,
    pub(crate) expected: u64,
    pub(crate) actual: u64,
}

/// What one scenario did and what it checked.
pub(crate) struct Report {
    pub(crate) kind: &'static str,
    pub(crate) checks: Vec<Check>,
    /// Fibers (and pool jobs) this scenario started.
    pub(crate) fibers: u64,
    /// Messages passed over channels.
    pub(crate) messages: u64,
    /// Bytes echoed over TCP.
    pub(crate) bytes: u64,
    /// Details for a failure message (first few unexpected outcomes).
    pub(crate) notes: Vec<String>,
    planned_panics: u64,
    seen_panics: u64,
    wrong_outcomes: u64,
}

impl Report {
    fn new(kind: &'static str) -> Report {
        Report {
            kind,
            checks: Vec::new(),
            fibers: 0,
            messages: 0,
            bytes: 0,
            notes: Vec::new(),
            planned_panics: 0,
            seen_panics: 0,
            wrong_outcomes: 0,
        }
    }

    /// Records a check.
    fn check(&mut self, what: &'static str, expected: u64, actual: u64) {
        self.checks.push(Check {
            what,
            expected,
            actual,
        });
    }

    /// Records a detail (kept short: the first 8).
    fn note(&mut self, s: String) {
        if self.notes.len() < 8 {
            self.notes.push(s);
        }
    }

    /// Accounts for a join result: `planned` is the tag of the injected panic, if the plan says
    /// this fiber panics. Returns the value of a fiber that returned.
    fn outcome<T>(&mut self, res: std::thread::Result<T>, planned: Option<String>) -> Option<T> {
        if planned.is_some() {
            self.planned_panics += 1;
        }
        match (res, planned) {
            (Ok(v), None) => Some(v),
            (Ok(_), Some(tag)) => {
                self.wrong_outcomes += 1;
                self.note(format!("`{tag}` returned instead of panicking"));
                None
            }
            (Err(p), planned) => {
                let text = payload_text(&*p);
                match planned {
                    Some(tag) if text == format!("{INJECTED}: {tag}") => self.seen_panics += 1,
                    Some(tag) => {
                        self.wrong_outcomes += 1;
                        self.note(format!("`{tag}` panicked with `{text}`"));
                    }
                    None => {
                        self.wrong_outcomes += 1;
                        self.note(format!("unexpected panic: `{text}`"));
                    }
                }
                None
            }
        }
    }

    /// Adds the panic accounting to the checks.
    pub(crate) fn finish(mut self) -> Report {
        let (planned, seen, wrong) = (self.planned_panics, self.seen_panics, self.wrong_outcomes);
        self.check("injected panics seen by join", planned, seen);
        self.check("unexpected join outcomes", 0, wrong);
        self
    }

    /// Injected panics this scenario planned.
    pub(crate) fn panics(&self) -> u64 {
        self.planned_panics
    }
}

/// Counts events from several fibers.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, SeqCst);
    }
    fn get(&self) -> u64 {
        self.0.load(SeqCst)
    }
}

// ---- the scenarios -----------------------------------------------------------------------------

/// The kinds of scenario a round mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tree,
    Park,
    Sleep,
    Mpsc,
    Mpmc,
    Select,
    Mutex,
    RwLock,
    Condvar,
    Semaphore,
    Barrier,
    WaitGroup,
    Scope,
    Blocking,
    Local,
    Tcp,
    Runtime,
}

/// Every kind, in the order the final table lists them.
pub(crate) const KINDS: &[Kind] = &[
    Kind::Tree,
    Kind::Park,
    Kind::Sleep,
    Kind::Mpsc,
    Kind::Mpmc,
    Kind::Select,
    Kind::Mutex,
    Kind::RwLock,
    Kind::Condvar,
    Kind::Semaphore,
    Kind::Barrier,
    Kind::WaitGroup,
    Kind::Scope,
    Kind::Blocking,
    Kind::Local,
    Kind::Tcp,
    Kind::Runtime,
];

impl Kind {
    /// Short name, as printed.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Tree => "tree",
            Kind::Park => "park",
            Kind::Sleep => "sleep",
            Kind::Mpsc => "mpsc",
            Kind::Mpmc => "mpmc",
            Kind::Select => "select",
            Kind::Mutex => "mutex",
            Kind::RwLock => "rwlock",
            Kind::Condvar => "condvar",
            Kind::Semaphore => "semaphore",
            Kind::Barrier => "barrier",
            Kind::WaitGroup => "waitgroup",
            Kind::Scope => "scope",
            Kind::Blocking => "blocking",
            Kind::Local => "local",
            Kind::Tcp => "tcp",
            Kind::Runtime => "runtime",
        }
    }

    /// Runs one scenario of this kind (inside a fiber) and returns its report.
    pub(crate) fn run(self, ctx: &Ctx, rng: Rng) -> Report {
        let r = match self {
            Kind::Tree => tree(ctx, rng),
            Kind::Park => park(ctx, rng),
            Kind::Sleep => sleep(ctx, rng),
            Kind::Mpsc => mpsc_channel(ctx, rng),
            Kind::Mpmc => mpmc_channel(ctx, rng),
            Kind::Select => select(ctx, rng),
            Kind::Mutex => mutex(ctx, rng),
            Kind::RwLock => rwlock(ctx, rng),
            Kind::Condvar => condvar(ctx, rng),
            Kind::Semaphore => semaphore(ctx, rng),
            Kind::Barrier => barrier(ctx, rng),
            Kind::WaitGroup => waitgroup(ctx, rng),
            Kind::Scope => scope(ctx, rng),
            Kind::Blocking => blocking(ctx, rng),
            Kind::Local => local(ctx, rng),
            Kind::Tcp => tcp(ctx, rng),
            Kind::Runtime => runtime(ctx, rng),
        };
        r.finish()
    }
}

// ---- spawn/join trees (Builder: names, stack sizes) and a flat batch ---------------------------

#[derive(Default)]
struct TreeStats {
    nodes: Counter,
    panics: Counter,
    bad_names: Counter,
    bad_payloads: Counter,
}

fn node_name(id: u64) -> String {
    format!("soak-tree-{id}")
}

fn node_panics(seed: u64, id: u64) -> bool {
    id != 1 && splitmix(seed ^ id.wrapping_mul(0x9e37)) % 10 == 0
}

fn node_stack(seed: u64, id: u64, leaf: bool) -> usize {
    let sizes = [32 << 10, 64 << 10, 128 << 10, fiber::DEFAULT_STACK_SIZE];
    let pick = splitmix(seed.rotate_left(7) ^ id) as usize;
    if leaf && !node_panics(seed, id) && pick % 5 == 4 {
        fiber::MIN_STACK_SIZE
    } else {
        sizes[pick % sizes.len()]
    }
}

/// (sum the root returns, nodes, panics its parents see) — computed without fibers.
fn expect_tree(seed: u64, id: u64, depth: u32, fan: u64) -> (u64, u64, u64) {
    let (mut sum, mut nodes, mut panics) = (id, 1, 0);
    if depth > 0 {
        for k in 0..fan {
            let child = id * 8 + k;
            let (s, n, p) = expect_tree(seed, child, depth - 1, fan);
            nodes += n;
            panics += p;
            if node_panics(seed, child) {
                panics += 1;
            } else {
                sum += s;
            }
        }
    }
    (sum, nodes, panics)
}

fn run_node(seed: u64, id: u64, depth: u32, fan: u64, st: &Arc<TreeStats>) -> u64 {
    if fiber::current().name() != Some(node_name(id).as_str()) {
        st.bad_names.add(1);
    }
    let mut sum = id;
    if depth > 0 {
        let children: Vec<_> = (0..fan)
            .map(|k| {
                let child = id * 8 + k;
                let st2 = st.clone();
                let h = fiber::Builder::new()
                    .name(node_name(child))
                    .stack_size(node_stack(seed, child, depth == 1))
                    .spawn(move || run_node(seed, child, depth - 1, fan, &st2))
                    .expect("Builder::spawn");
                (child, h)
            })
            .collect();
        for (child, h) in children {
            match h.join() {
                Ok(v) => sum += v,
                Err(p)
                    if node_panics(seed, child)
                        && payload_text(&*p) == format!("{INJECTED}: tree node {child}") =>
                {
                    st.panics.add(1)
                }
                Err(_) => st.bad_payloads.add(1),
            }
        }
    }
    st.nodes.add(1);
    if node_panics(seed, id) {
        inject(&format!("tree node {id}"));
    }
    sum
}

fn tree(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("tree");
    let depth = rng.range(1, if ctx.load >= 1.0 { 5 } else { 4 }) as u32;
    let fan = rng.range(2, 5) as u64;
    let seed = rng.next_u64();
    let (want_sum, want_nodes, want_panics) = expect_tree(seed, 1, depth, fan);
    let st = Arc::new(TreeStats::default());
    let st2 = st.clone();
    let root = fiber::Builder::new()
        .name(node_name(1))
        .stack_size(node_stack(seed, 1, false))
        .spawn(move || run_node(seed, 1, depth, fan, &st2))
        .expect("Builder::spawn");
    let sum = r.outcome(root.join(), None).unwrap_or(0);
    r.check("tree sum", want_sum, sum);
    r.check("tree nodes run", want_nodes, st.nodes.get());
    r.check("tree panics seen by parents", want_panics, st.panics.get());
    r.check("tree wrong names", 0, st.bad_names.get());
    r.check("tree wrong payloads", 0, st.bad_payloads.get());
    r.fibers += want_nodes;

    // A flat batch: spawn many, join all, in order.
    let flat = ctx.n(&mut rng, 50, 1000);
    let plan: Vec<bool> = (0..flat).map(|_| rng.chance(10)).collect();
    let handles: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            fiber::spawn(move || {
                if p {
                    inject(&format!("flat {i}"));
                }
                i as u64
            })
        })
        .collect();
    let mut sum = 0;
    for (i, h) in handles.into_iter().enumerate() {
        sum += r
            .outcome(h.join(), plan[i].then(|| format!("flat {i}")))
            .unwrap_or(0);
    }
    let want: u64 = (0..flat as u64).filter(|&i| !plan[i as usize]).sum();
    r.check("flat batch sum", want, sum);
    r.fibers += flat as u64;
    r
}

// ---- park/unpark pairs, park_timeout, the park token -------------------------------------------

struct Pair {
    turn: AtomicU64,
    fibers: [OnceLock<fiber::Fiber>; 2],
    steps: Counter,
}

fn park(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("park");
    let pairs = ctx.n(&mut rng, 2, 40);
    let k = ctx.n(&mut rng, 10, 200) as u64;
    let timed: Vec<[bool; 2]> = (0..pairs)
        .map(|_| [rng.chance(30), rng.chance(30)])
        .collect();
    let state: Vec<Pair> = (0..pairs)
        .map(|_| Pair {
            turn: AtomicU64::new(0),
            fibers: [OnceLock::new(), OnceLock::new()],
            steps: Counter::default(),
        })
        .collect();
    let tokens = Counter::default();
    fiber::scope(|s| {
        let mut hs = Vec::new();
        for (p, st) in state.iter().enumerate() {
            for me in 0..2usize {
                let timed = timed[p][me];
                let tokens = &tokens;
                hs.push(s.spawn(move || {
                    // An unpark before the park leaves a token: this park returns at once.
                    fiber::current().unpark();
                    fiber::park();
                    tokens.add(1);
                    st.fibers[me].set(fiber::current()).unwrap();
                    for _ in 0..k {
                        while st.turn.load(SeqCst) % 2 != me as u64 {
                            if timed {
                                fiber::park_timeout(Duration::from_millis(2));
                            } else {
                                fiber::park();
                            }
                        }
                        st.steps.add(1);
                        st.turn.fetch_add(1, SeqCst);
                        if let Some(other) = st.fibers[1 - me].get() {
                            other.unpark();
                        }
                    }
                }));
            }
        }
        for h in hs {
            r.outcome(h.join(), None);
        }
    });
    let steps: u64 = state.iter().map(|p| p.steps.get()).sum();
    let turns: u64 = state.iter().map(|p| p.turn.load(SeqCst)).sum();
    r.check("park: steps taken", pairs as u64 * 2 * k, steps);
    r.check("park: turns passed", pairs as u64 * 2 * k, turns);
    r.check("park: token parks returned", pairs as u64 * 2, tokens.get());
    r.fibers += pairs as u64 * 2;
    r
}

// ---- sleeps and park_timeout -------------------------------------------------------------------

fn sleep(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("sleep");
    let n = ctx.n(&mut rng, 20, 400);
    let plan: Vec<(Duration, u8, bool)> = (0..n)
        .map(|_| (rng.ms(0, 20), rng.range(0, 3) as u8, rng.chance(10)))
        .collect();
    let early = Counter::default();
    let done = Counter::default();
    fiber::scope(|s| {
        let hs: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, &(d, how, panics))| {
                let (early, done) = (&early, &done);
                s.spawn(move || {
                    let start = Instant::now();
                    match how {
                        0 => {
                            fiber::sleep(d);
                            if start.elapsed() < d {
                                early.add(1);
                            }
                        }
                        // Nobody unparks: it returns at the deadline (or spuriously).
                        1 => fiber::park_timeout(d),
                        _ => {
                            while start.elapsed() < d {
                                fiber::yield_now();
                            }
                        }
                    }
                    done.add(1);
                    if panics {
                        inject(&format!("sleeper {i}"));
                    }
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            r.outcome(h.join(), plan[i].2.then(|| format!("sleeper {i}")));
        }
    });
    r.check("sleep: woke before the duration", 0, early.get());
    r.check("sleep: sleepers finished", n as u64, done.get());
    r.fibers += n as u64;
    r
}

// ---- mpsc: channel / sync_channel (incl. 0), producers panicking mid-way, thread consumers -----

#[derive(Clone)]
enum Tx {
    Unbounded(mpsc::Sender<u64>),
    Bounded(mpsc::SyncSender<u64>),
}

impl Tx {
    fn send(&self, v: u64) -> Result<(), mpsc::SendError<u64>> {
        match self {
            Tx::Unbounded(t) => t.send(v),
            Tx::Bounded(t) => t.send(v),
        }
    }
}

/// A producer's plan: how many it sends, and whether it then panics.
#[derive(Clone, Copy)]
struct Producer {
    count: u64,
    panics: bool,
    on_thread: bool,
}

fn producers(ctx: &Ctx, rng: &mut Rng, lo: usize, hi: usize, threads: bool) -> Vec<Producer> {
    let n = rng.range(lo, hi);
    let per = ctx.n(rng, 1, 1500) as u64;
    (0..n)
        .map(|_| Producer {
            count: rng.range(0, per as usize + 1) as u64,
            panics: rng.chance(10),
            on_thread: threads && rng.chance(15),
        })
        .collect()
}

fn value(p: usize, j: u64) -> u64 {
    ((p as u64) << 32) | j
}

fn expected(plan: &[Producer]) -> (u64, u64) {
    let count = plan.iter().map(|p| p.count).sum();
    let sum = plan
        .iter()
        .enumerate()
        .flat_map(|(p, pl)| (0..pl.count).map(move |j| value(p, j)))
        .fold(0u64, u64::wrapping_add);
    (count, sum)
}

fn mpsc_channel(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("mpsc");
    let cap = rng.pick(&[None, Some(0), Some(1), Some(4), Some(64)]);
    let plan = producers(ctx, &mut rng, 1, 8, true);
    let consumer = rng.range(0, 3); // 0: iter, 1: recv_timeout loop, 2: on a pool thread
    let (tx, rx) = match cap {
        None => {
            let (t, r) = mpsc::channel();
            (Tx::Unbounded(t), r)
        }
        Some(c) => {
            let (t, r) = mpsc::sync_channel(c);
            (Tx::Bounded(t), r)
        }
    };
    let hs: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(p, &pl)| {
            let tx = tx.clone();
            fiber::spawn(move || {
                let body = move || {
                    for j in 0..pl.count {
                        tx.send(value(p, j)).expect("receiver alive");
                    }
                    if pl.panics {
                        inject(&format!("mpsc producer {p}"));
                    }
                };
                if pl.on_thread {
                    fiber::spawn_blocking(body)
                } else {
                    body()
                }
            })
        })
        .collect();
    drop(tx);
    let recv_all = move || {
        let (mut n, mut sum) = (0u64, 0u64);
        match consumer {
            1 => loop {
                match rx.recv_timeout(Duration::from_millis(3)) {
                    Ok(v) => {
                        n += 1;
                        sum = sum.wrapping_add(v);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            },
            _ => {
                for v in rx.iter() {
                    n += 1;
                    sum = sum.wrapping_add(v);
                }
            }
        }
        (n, sum)
    };
    let (n, sum) = if consumer == 2 {
        fiber::spawn_blocking(recv_all)
    } else {
        recv_all()
    };
    for (p, h) in hs.into_iter().enumerate() {
        r.outcome(
            h.join(),
            plan[p].panics.then(|| format!("mpsc producer {p}")),
        );
    }
    let (want_n, want_sum) = expected(&plan);
    r.check("mpsc: messages received", want_n, n);
    r.check("mpsc: sum received", want_sum, sum);
    r.fibers += plan.len() as u64;
    r.messages += n;
    r
}

// ---- mpmc: bounded (incl. 0) / unbounded, every send and receive flavour -----------------------

#[derive(Clone, Copy, PartialEq)]
enum SendHow {
    Send,
    Timeout,
    Try,
    Select,
}

#[derive(Clone, Copy, PartialEq)]
enum RecvHow {
    Recv,
    Timeout,
    Try,
    Iter,
    Select,
    Thread,
}

/// Sends `v`, the way `how` says, retrying on time-outs; false if every receiver is gone.
fn send_as(tx: &mpmc::Sender<u64>, v: u64, how: SendHow) -> bool {
    match how {
        SendHow::Send => tx.send(v).is_ok(),
        SendHow::Timeout => loop {
            match tx.send_timeout(v, Duration::from_millis(1)) {
                Ok(()) => return true,
                Err(mpmc::SendTimeoutError::Timeout(_)) => {}
                Err(mpmc::SendTimeoutError::Disconnected(_)) => return false,
            }
        },
        SendHow::Try => {
            let mut spins = 0u32;
            loop {
                match tx.try_send(v) {
                    Ok(()) => return true,
                    Err(mpmc::TrySendError::Full(_)) => backoff(&mut spins),
                    Err(mpmc::TrySendError::Disconnected(_)) => return false,
                }
            }
        }
        SendHow::Select => loop {
            let done = fiber::select! {
                send(tx, v) -> res => Some(res.is_ok()),
                timeout(Duration::from_millis(1)) => None,
            };
            if let Some(ok) = done {
                return ok;
            }
        },
    }
}

/// Yields, and every 16th time sleeps a millisecond (a polling loop must not starve others).
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins % 16 == 0 {
        fiber::sleep(Duration::from_millis(1));
    } else {
        fiber::yield_now();
    }
}

/// Receives until the channel is empty and disconnected, adding each message to `got`.
fn recv_as(rx: &mpmc::Receiver<u64>, how: RecvHow, got: &Totals, stop_after: Option<u64>) {
    let mut taken = 0u64;
    let mut spins = 0u32;
    loop {
        if Some(taken) == stop_after {
            return;
        }
        let v = match how {
            RecvHow::Recv | RecvHow::Thread => match rx.recv() {
                Ok(v) => v,
                Err(_) => return,
            },
            RecvHow::Iter => match rx.iter().next() {
                Some(v) => v,
                None => return,
            },
            RecvHow::Timeout => match rx.recv_timeout(Duration::from_millis(2)) {
                Ok(v) => v,
                Err(mpmc::RecvTimeoutError::Timeout) => continue,
                Err(mpmc::RecvTimeoutError::Disconnected) => return,
            },
            RecvHow::Try => match rx.try_recv() {
                Ok(v) => v,
                Err(mpmc::TryRecvError::Empty) => {
                    backoff(&mut spins);
                    continue;
                }
                Err(mpmc::TryRecvError::Disconnected) => return,
            },
            RecvHow::Select => {
                let got = fiber::select! {
                    recv(rx) -> msg => Some(msg),
                    timeout(Duration::from_millis(2)) => None,
                };
                match got {
                    Some(Ok(v)) => v,
                    Some(Err(_)) => return,
                    None => continue,
                }
            }
        };
        got.add(v);
        taken += 1;
    }
}

/// Count and wrapping sum of received messages.
#[derive(Default)]
struct Totals {
    n: Counter,
    sum: AtomicU64,
}

impl Totals {
    fn add(&self, v: u64) {
        self.n.add(1);
        let _ = self
            .sum
            .fetch_update(SeqCst, SeqCst, |s| Some(s.wrapping_add(v)));
    }
}

fn mpmc_channel(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("mpmc");
    let cap = rng.pick(&[None, Some(0), Some(1), Some(4), Some(64)]);
    let plan = producers(ctx, &mut rng, 1, 6, false);
    let consumers = rng.range(1, 6);
    let mut recv_how: Vec<RecvHow> = (0..consumers)
        .map(|_| {
            rng.pick(&[
                RecvHow::Recv,
                RecvHow::Timeout,
                RecvHow::Try,
                RecvHow::Iter,
                RecvHow::Select,
                RecvHow::Thread,
            ])
        })
        .collect();
    // At most one consumer on a pool thread: the others must be able to run.
    let mut seen_thread = false;
    for h in &mut recv_how {
        if *h == RecvHow::Thread {
            if seen_thread {
                *h = RecvHow::Recv;
            }
            seen_thread = true;
        }
    }
    // Consumer 0 never stops early, so nothing sent is dropped undelivered; others may panic
    // after taking a few messages (counted as received: they were taken).
    let stop: Vec<Option<u64>> = (0..consumers)
        .map(|c| (c > 0 && rng.chance(10)).then(|| rng.range(0, 20) as u64))
        .collect();
    // On a zero-capacity channel a `try_send` succeeds only while a receiver is blocked in a
    // wait (plain, timed or `select!`), so it needs a consumer that blocks and never stops early:
    // consumer 0. If consumer 0 only polls (`try_recv`), a polling sender could never meet it.
    let rendezvous = cap == Some(0);
    let send_how: Vec<SendHow> = plan
        .iter()
        .map(|_| {
            let how = rng.pick(&[
                SendHow::Send,
                SendHow::Timeout,
                SendHow::Try,
                SendHow::Select,
            ]);
            if rendezvous && how == SendHow::Try && recv_how[0] == RecvHow::Try {
                SendHow::Send
            } else {
                how
            }
        })
        .collect();
    let (tx, rx) = match cap {
        None => mpmc::unbounded(),
        Some(c) => mpmc::bounded(c),
    };
    // Before any receiver exists, a `try_send` into a rendezvous channel has nobody to hand its
    // value to: it must be refused, the value given back.
    let probes = if rendezvous {
        rng.range(1, 4) as u64
    } else {
        0
    };
    let refused = (0..probes)
        .filter(|&k| matches!(tx.try_send(u64::MAX - k), Err(mpmc::TrySendError::Full(v)) if v == u64::MAX - k))
        .count() as u64;
    let got = Arc::new(Totals::default());
    let returned = Counter::default();
    fiber::scope(|s| {
        let ph: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(p, &pl)| {
                let tx = tx.clone();
                let how = send_how[p];
                let returned = &returned;
                s.spawn(move || {
                    for j in 0..pl.count {
                        if !send_as(&tx, value(p, j), how) {
                            returned.add(1);
                        }
                    }
                    if pl.panics {
                        inject(&format!("mpmc producer {p}"));
                    }
                })
            })
            .collect();
        drop(tx);
        let ch: Vec<_> = (0..consumers)
            .map(|c| {
                let rx = rx.clone();
                let how = recv_how[c];
                let got = got.clone();
                let stop = stop[c];
                s.spawn(move || {
                    if how == RecvHow::Thread {
                        fiber::spawn_blocking(move || recv_as(&rx, how, &got, stop));
                    } else {
                        recv_as(&rx, how, &got, stop);
                    }
                    if stop.is_some() {
                        inject(&format!("mpmc consumer {c}"));
                    }
                })
            })
            .collect();
        drop(rx);
        for (p, h) in ph.into_iter().enumerate() {
            r.outcome(
                h.join(),
                plan[p].panics.then(|| format!("mpmc producer {p}")),
            );
        }
        for (c, h) in ch.into_iter().enumerate() {
            r.outcome(h.join(), stop[c].map(|_| format!("mpmc consumer {c}")));
        }
    });
    let (want_n, want_sum) = expected(&plan);
    r.check("mpmc: messages received", want_n, got.n.get());
    r.check("mpmc: sum received", want_sum, got.sum.load(SeqCst));
    r.check("mpmc: sends refused", 0, returned.get());
    r.check(
        "mpmc: try_send into capacity 0, no receiver waiting: Full",
        probes,
        refused,
    );
    r.fibers += (plan.len() + consumers) as u64;
    r.messages += got.n.get();
    r
}

// ---- select!: two channels, consumers selecting over both, a producer selecting its target -----

fn select(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("select");
    let caps = [
        rng.pick(&[None, Some(0), Some(1), Some(8)]),
        rng.pick(&[None, Some(0), Some(1), Some(8)]),
    ];
    let plans = [
        producers(ctx, &mut rng, 1, 4, false),
        producers(ctx, &mut rng, 1, 4, false),
    ];
    let consumers = rng.range(1, 4);
    // Consumers select over both, so on a zero-capacity channel a `select!` send meets a
    // `select!` receive (or a polling `select!` with `default`).
    let hows: [Vec<SendHow>; 2] = [0, 1].map(|c| {
        plans[c]
            .iter()
            .map(|_| rng.pick(&[SendHow::Send, SendHow::Timeout, SendHow::Select]))
            .collect()
    });
    // A producer that offers each message to both channels at once.
    let dual = rng.chance(50);
    let dual_count = if dual {
        ctx.n(&mut rng, 1, 500) as u64
    } else {
        0
    };
    let use_default = rng.chance(30);
    let chans = [0, 1].map(|c| match caps[c] {
        None => mpmc::unbounded::<u64>(),
        Some(n) => mpmc::bounded(n),
    });
    let got = Totals::default();
    let per_chan = [Counter::default(), Counter::default()];
    fiber::scope(|s| {
        let mut ph = Vec::new();
        for c in 0..2 {
            for (p, &pl) in plans[c].iter().enumerate() {
                let tx = chans[c].0.clone();
                let how = hows[c][p];
                ph.push((
                    format!("select producer {c}.{p}"),
                    pl.panics,
                    s.spawn(move || {
                        for j in 0..pl.count {
                            assert!(send_as(&tx, value(c * 8 + p, j), how), "receivers gone");
                        }
                        if pl.panics {
                            inject(&format!("select producer {c}.{p}"));
                        }
                    }),
                ));
            }
        }
        if dual {
            let (t0, t1) = (chans[0].0.clone(), chans[1].0.clone());
            ph.push((
                String::new(),
                false,
                s.spawn(move || {
                    for j in 0..dual_count {
                        let v = value(99, j);
                        loop {
                            let sent = fiber::select! {
                                send(t0, v) -> res => { res.expect("receivers gone"); true }
                                send(t1, v) -> res => { res.expect("receivers gone"); true }
                                timeout(Duration::from_millis(1)) => false,
                            };
                            if sent {
                                break;
                            }
                        }
                    }
                }),
            ));
        }
        let ch: Vec<_> = (0..consumers)
            .map(|_| {
                let (r0, r1) = (chans[0].1.clone(), chans[1].1.clone());
                let (got, per_chan) = (&got, &per_chan);
                s.spawn(move || {
                    let mut open = [true, true];
                    let mut spins = 0u32;
                    while open[0] || open[1] {
                        let (c, msg) = if open[0] && open[1] {
                            if use_default {
                                let m = fiber::select! {
                                    recv(r0) -> m => Some((0, m)),
                                    recv(r1) -> m => Some((1, m)),
                                    default => None,
                                };
                                match m {
                                    Some(m) => m,
                                    None => {
                                        backoff(&mut spins);
                                        continue;
                                    }
                                }
                            } else {
                                let m = fiber::select! {
                                    recv(r0) -> m => Some((0, m)),
                                    recv(r1) -> m => Some((1, m)),
                                    timeout(Duration::from_millis(3)) => None,
                                };
                                match m {
                                    Some(m) => m,
                                    None => continue,
                                }
                            }
                        } else if open[0] {
                            (0, r0.recv())
                        } else {
                            (1, r1.recv())
                        };
                        match msg {
                            Ok(v) => {
                                got.add(v);
                                per_chan[c].add(1);
                            }
                            Err(_) => open[c] = false,
                        }
                    }
                })
            })
            .collect();
        drop(chans);
        for (tag, panics, h) in ph {
            r.outcome(h.join(), panics.then_some(tag));
        }
        for h in ch {
            r.outcome(h.join(), None);
        }
    });
    let (n0, s0) = expected(&plans[0]);
    let mut shifted = plans[1].clone();
    // Channel 1's producers are numbered from 8 (value tags): recompute with that offset.
    let (n1, s1) = {
        let n = shifted.iter().map(|p| p.count).sum::<u64>();
        let s = shifted
            .drain(..)
            .enumerate()
            .flat_map(|(p, pl)| (0..pl.count).map(move |j| value(8 + p, j)))
            .fold(0u64, u64::wrapping_add);
        (n, s)
    };
    let sd = (0..dual_count)
        .map(|j| value(99, j))
        .fold(0u64, u64::wrapping_add);
    r.check(
        "select: messages received",
        n0 + n1 + dual_count,
        got.n.get(),
    );
    r.check(
        "select: sum received",
        s0.wrapping_add(s1).wrapping_add(sd),
        got.sum.load(SeqCst),
    );
    // Without the dual producer each channel's count is exact too.
    if !dual {
        r.check("select: channel 0 messages", n0, per_chan[0].get());
        r.check("select: channel 1 messages", n1, per_chan[1].get());
    }
    r.fibers += (plans[0].len() + plans[1].len() + consumers + dual as usize) as u64;
    r.messages += got.n.get();
    r
}

// ---- Mutex: contended counter, panics while holding it (poisoning), threads too -----------------

struct Guarded {
    count: u64,
    /// Set by a holder just before it panics with the guard held: from then on every `lock()`
    /// must report poisoning.
    poisoned: bool,
}

fn mutex(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("mutex");
    let n = ctx.n(&mut rng, 4, 300);
    let k = ctx.n(&mut rng, 5, 100) as u64;
    let plan: Vec<(bool, u8)> = (0..n)
        .map(|i| {
            (
                rng.chance(10),
                if i == 0 { 3 } else { rng.range(0, 3) as u8 },
            )
        })
        .collect();
    let m = Arc::new(Mutex::new(Guarded {
        count: 0,
        poisoned: false,
    }));
    let wrong = Arc::new(Counter::default());
    fiber::scope(|s| {
        let hs: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, &(panics, how))| {
                let (m, wrong) = (m.clone(), wrong.clone());
                s.spawn(move || {
                    let body = move || {
                        for j in 0..k {
                            let res = if how == 1 {
                                let mut spins = 0;
                                loop {
                                    match m.try_lock() {
                                        Ok(g) => break Ok(g),
                                        Err(std::sync::TryLockError::Poisoned(e)) => break Err(e),
                                        Err(std::sync::TryLockError::WouldBlock) => {
                                            backoff(&mut spins)
                                        }
                                    }
                                }
                            } else {
                                m.lock()
                            };
                            let (mut g, said_poisoned) = match res {
                                Ok(g) => (g, false),
                                Err(e) => (e.into_inner(), true),
                            };
                            if said_poisoned != g.poisoned {
                                wrong.add(1);
                            }
                            g.count += 1;
                            if how == 2 && j % 8 == 0 {
                                fiber::yield_now(); // hold it across a switch
                            }
                            if panics && j == k - 1 {
                                g.poisoned = true;
                                inject(&format!("mutex holder {i}"));
                            }
                        }
                    };
                    if how == 3 {
                        fiber::spawn_blocking(body) // one of them on an OS thread
                    } else {
                        body()
                    }
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            r.outcome(h.join(), plan[i].0.then(|| format!("mutex holder {i}")));
        }
    });
    let panickers = plan.iter().filter(|p| p.0).count() as u64;
    r.check(
        "mutex: increments",
        n as u64 * k,
        m.lock().unwrap_or_else(|e| e.into_inner()).count,
    );
    r.check(
        "mutex: poisoned",
        (panickers > 0) as u64,
        m.is_poisoned() as u64,
    );
    r.check("mutex: lock() poison reports wrong", 0, wrong.get());
    r.fibers += n as u64;
    r
}

// ---- RwLock: writers keep an invariant, readers check it; write panics poison, read panics not ---

struct Pairs {
    a: u64,
    b: u64,
    poisoned: bool,
}

fn rwlock(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("rwlock");
    let writers = rng.range(1, 8);
    let readers = ctx.n(&mut rng, 1, 40);
    let k = ctx.n(&mut rng, 5, 100) as u64;
    let wplan: Vec<(bool, bool)> = (0..writers)
        .map(|_| (rng.chance(10), rng.chance(30)))
        .collect();
    let rplan: Vec<(bool, bool)> = (0..readers)
        .map(|_| (rng.chance(10), rng.chance(30)))
        .collect();
    let l = RwLock::new(Pairs {
        a: 0,
        b: 0,
        poisoned: false,
    });
    let torn = Counter::default();
    let wrong = Counter::default();
    fiber::scope(|s| {
        let wh: Vec<_> = wplan
            .iter()
            .enumerate()
            .map(|(i, &(panics, try_))| {
                let (l, wrong) = (&l, &wrong);
                s.spawn(move || {
                    for j in 0..k {
                        let res = if try_ {
                            let mut spins = 0;
                            loop {
                                match l.try_write() {
                                    Ok(g) => break Ok(g),
                                    Err(std::sync::TryLockError::Poisoned(e)) => break Err(e),
                                    Err(std::sync::TryLockError::WouldBlock) => backoff(&mut spins),
                                }
                            }
                        } else {
                            l.write()
                        };
                        let (mut g, said) = match res {
                            Ok(g) => (g, false),
                            Err(e) => (e.into_inner(), true),
                        };
                        if said != g.poisoned {
                            wrong.add(1);
                        }
                        g.a += 1;
                        if j % 4 == 0 {
                            fiber::yield_now(); // readers must not see a != b meanwhile
                        }
                        g.b += 1;
                        if panics && j == k - 1 {
                            g.poisoned = true;
                            inject(&format!("rwlock writer {i}"));
                        }
                    }
                })
            })
            .collect();
        let rh: Vec<_> = rplan
            .iter()
            .enumerate()
            .map(|(i, &(panics, try_))| {
                let (l, wrong, torn) = (&l, &wrong, &torn);
                s.spawn(move || {
                    for j in 0..k {
                        let res = if try_ {
                            let mut spins = 0;
                            loop {
                                match l.try_read() {
                                    Ok(g) => break Ok(g),
                                    Err(std::sync::TryLockError::Poisoned(e)) => break Err(e),
                                    Err(std::sync::TryLockError::WouldBlock) => backoff(&mut spins),
                                }
                            }
                        } else {
                            l.read()
                        };
                        let (g, said) = match res {
                            Ok(g) => (g, false),
                            Err(e) => (e.into_inner(), true),
                        };
                        if said != g.poisoned {
                            wrong.add(1);
                        }
                        if g.a != g.b {
                            torn.add(1);
                        }
                        if j % 8 == 0 {
                            fiber::yield_now();
                        }
                        if panics && j == k - 1 {
                            // A reader panicking with its guard held does not poison (std).
                            inject(&format!("rwlock reader {i}"));
                        }
                    }
                })
            })
            .collect();
        for (i, h) in wh.into_iter().enumerate() {
            r.outcome(h.join(), wplan[i].0.then(|| format!("rwlock writer {i}")));
        }
        for (i, h) in rh.into_iter().enumerate() {
            r.outcome(h.join(), rplan[i].0.then(|| format!("rwlock reader {i}")));
        }
    });
    let wpanics = wplan.iter().filter(|p| p.0).count() as u64;
    r.check(
        "rwlock: poisoned (by writers only)",
        (wpanics > 0) as u64,
        l.is_poisoned() as u64,
    );
    let g = l.into_inner().unwrap_or_else(|e| e.into_inner());
    r.check("rwlock: writes (a)", writers as u64 * k, g.a);
    r.check("rwlock: writes (b)", writers as u64 * k, g.b);
    r.check("rwlock: torn reads", 0, torn.get());
    r.check("rwlock: lock poison reports wrong", 0, wrong.get());
    r.fibers += (writers + readers) as u64;
    r
}

// ---- Condvar: a queue with producers panicking mid-way and consumers waiting (timeouts too) ----

struct Queue {
    items: std::collections::VecDeque<u64>,
    producers: usize,
}

/// Marks a producer finished when dropped (also while it unwinds) and wakes the consumers.
struct Leaving<'a>(&'a Mutex<Queue>, &'a Condvar);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().producers -= 1;
        self.1.notify_all();
    }
}

fn condvar(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("condvar");
    let plan = producers(ctx, &mut rng, 1, 6, false);
    let consumers = rng.range(1, 6);
    let timed: Vec<bool> = (0..consumers).map(|_| rng.chance(40)).collect();
    let q = Mutex::new(Queue {
        items: Default::default(),
        producers: plan.len(),
    });
    let cv = Condvar::new();
    let got = Totals::default();
    fiber::scope(|s| {
        let ph: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(p, &pl)| {
                let (q, cv) = (&q, &cv);
                s.spawn(move || {
                    let _leaving = Leaving(q, cv);
                    for j in 0..pl.count {
                        q.lock().unwrap().items.push_back(value(p, j));
                        cv.notify_one();
                        if j % 32 == 0 {
                            fiber::yield_now();
                        }
                    }
                    if pl.panics {
                        inject(&format!("condvar producer {p}"));
                    }
                })
            })
            .collect();
        let ch: Vec<_> = (0..consumers)
            .map(|c| {
                let (q, cv, got, timed) = (&q, &cv, &got, timed[c]);
                s.spawn(move || loop {
                    let mut g = q.lock().unwrap();
                    if timed {
                        loop {
                            let (g2, _) = cv
                                .wait_timeout_while(g, Duration::from_millis(2), |q| {
                                    q.items.is_empty() && q.producers > 0
                                })
                                .unwrap();
                            g = g2;
                            if !g.items.is_empty() || g.producers == 0 {
                                break;
                            }
                        }
                    } else {
                        g = cv
                            .wait_while(g, |q| q.items.is_empty() && q.producers > 0)
                            .unwrap();
                    }
                    match g.items.pop_front() {
                        Some(v) => got.add(v),
                        None => return, // empty and no producers left
                    }
                })
            })
            .collect();
        for (p, h) in ph.into_iter().enumerate() {
            r.outcome(
                h.join(),
                plan[p].panics.then(|| format!("condvar producer {p}")),
            );
        }
        for h in ch {
            r.outcome(h.join(), None);
        }
    });
    let (want_n, want_sum) = expected(&plan);
    r.check("condvar: items taken", want_n, got.n.get());
    r.check("condvar: sum taken", want_sum, got.sum.load(SeqCst));
    r.check("condvar: mutex poisoned", 0, q.is_poisoned() as u64);
    r.fibers += (plan.len() + consumers) as u64;
    r.messages += got.n.get();
    r
}

// ---- Semaphore: bounded concurrency, permits released by panicking holders, add_permits wakes ---

/// Decrements the in-flight count when dropped (before the permit it was declared after).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

fn semaphore(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("semaphore");
    let limit = rng.range(1, 8);
    let n = ctx.n(&mut rng, 5, 300);
    let plan: Vec<(bool, u8, Duration)> = (0..n)
        .map(|_| (rng.chance(10), rng.range(0, 3) as u8, rng.ms(0, 3)))
        .collect();
    // Start with no permits: every early acquirer waits until add_permits below.
    let sem = Semaphore::new(0);
    let inflight = AtomicU64::new(0);
    let over = Counter::default();
    let done = Counter::default();
    fiber::scope(|s| {
        let hs: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, &(panics, how, hold))| {
                let (sem, inflight, over, done) = (&sem, &inflight, &over, &done);
                s.spawn(move || {
                    let mut spins = 0;
                    let _permit = match how {
                        0 => sem.acquire(),
                        1 => loop {
                            if let Some(p) = sem.acquire_timeout(Duration::from_millis(1)) {
                                break p;
                            }
                        },
                        _ => loop {
                            if let Some(p) = sem.try_acquire() {
                                break p;
                            }
                            backoff(&mut spins);
                        },
                    };
                    let now = inflight.fetch_add(1, SeqCst) + 1;
                    let _in = InFlight(inflight);
                    if now > limit as u64 {
                        over.add(1);
                    }
                    if hold.is_zero() {
                        fiber::yield_now();
                    } else {
                        fiber::sleep(hold);
                    }
                    if panics {
                        inject(&format!("permit holder {i}"));
                    }
                    done.add(1);
                })
            })
            .collect();
        fiber::sleep(Duration::from_millis(1));
        sem.add_permits(limit);
        for (i, h) in hs.into_iter().enumerate() {
            r.outcome(h.join(), plan[i].0.then(|| format!("permit holder {i}")));
        }
    });
    let panickers = plan.iter().filter(|p| p.0).count() as u64;
    r.check("semaphore: holders over the limit", 0, over.get());
    r.check(
        "semaphore: holders finished",
        n as u64 - panickers,
        done.get(),
    );
    r.check(
        "semaphore: permits back",
        limit as u64,
        sem.available_permits() as u64,
    );
    r.fibers += n as u64;
    r
}

// ---- Barrier: generations, one leader each ------------------------------------------------------

fn barrier(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("barrier");
    let n = rng.range(1, 16);
    let gens = ctx.n(&mut rng, 1, 40) as u64;
    let b = Barrier::new(n);
    let arrived = Counter::default();
    let leaders = Counter::default();
    let early = Counter::default();
    fiber::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (b, arrived, leaders, early) = (&b, &arrived, &leaders, &early);
                s.spawn(move || {
                    for g in 0..gens {
                        if (i as u64 + g) % 5 == 0 {
                            fiber::yield_now();
                        }
                        arrived.add(1);
                        if b.wait().is_leader() {
                            leaders.add(1);
                        }
                        // Everybody of this generation has arrived before anyone leaves it.
                        if arrived.get() < (g + 1) * n as u64 {
                            early.add(1);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            r.outcome(h.join(), None);
        }
    });
    r.check("barrier: leaders (one per generation)", gens, leaders.get());
    r.check("barrier: left before all arrived", 0, early.get());
    r.check("barrier: arrivals", gens * n as u64, arrived.get());
    r.fibers += n as u64;
    r
}

// ---- WaitGroup: waiters in a fiber and on a pool thread, done() by panicking fibers too --------

/// Calls `done` when dropped (also while unwinding).
struct Done(Arc<WaitGroup>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done();
    }
}

fn waitgroup(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("waitgroup");
    let n = ctx.n(&mut rng, 1, 300);
    let plan: Vec<(bool, Duration)> = (0..n).map(|_| (rng.chance(10), rng.ms(0, 4))).collect();
    let thread_waiter = rng.chance(30);
    let timed = rng.chance(50);
    let wg = Arc::new(WaitGroup::new());
    let work = Arc::new(Counter::default());
    wg.add(n);
    let hs: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &(panics, d))| {
            let (wg, work) = (wg.clone(), work.clone());
            fiber::spawn(move || {
                let _done = Done(wg);
                fiber::sleep(d);
                work.add(1);
                if panics {
                    inject(&format!("waitgroup member {i}"));
                }
            })
        })
        .collect();
    let other = thread_waiter.then(|| {
        let (wg, work) = (wg.clone(), work.clone());
        fiber::spawn(move || {
            fiber::spawn_blocking(move || {
                wg.wait();
                work.get()
            })
        })
    });
    if timed {
        while !wg.wait_timeout(Duration::from_millis(2)) {}
    } else {
        wg.wait();
    }
    r.check(
        "waitgroup: work done when wait returned",
        n as u64,
        work.get(),
    );
    r.check("waitgroup: count after wait", 0, wg.count() as u64);
    if let Some(h) = other {
        let seen = r.outcome(h.join(), None).unwrap_or(0);
        r.check("waitgroup: work seen by the thread waiter", n as u64, seen);
    }
    for (i, h) in hs.into_iter().enumerate() {
        r.outcome(h.join(), plan[i].0.then(|| format!("waitgroup member {i}")));
    }
    r.fibers += n as u64 + thread_waiter as u64;
    r
}

// ---- scope: borrowed data, mutable chunks, joined and unjoined panics ---------------------------

fn scope(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("scope");
    let len = ctx.n(&mut rng, 100, 20_000);
    let chunks = rng.range(1, 16);
    let data: Vec<u64> = (0..len).map(|_| rng.next_u64() >> 32).collect();
    let mut out = vec![0u64; len];
    let size = len.div_ceil(chunks);
    let nchunks = len.div_ceil(size);
    let plan: Vec<bool> = (0..nchunks).map(|_| rng.chance(10)).collect();
    // Sometimes one more fiber panics and is never joined: then `scope` itself panics.
    let unjoined_panic = rng.chance(10);
    let mut sums: Vec<Option<u64>> = vec![None; nchunks];
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fiber::scope(|s| {
            let hs: Vec<_> = data
                .chunks(size)
                .zip(out.chunks_mut(size))
                .enumerate()
                .map(|(c, (src, dst))| {
                    let panics = plan[c];
                    s.spawn(move || {
                        for (d, x) in dst.iter_mut().zip(src) {
                            *d = x * 2;
                        }
                        fiber::yield_now();
                        if panics {
                            inject(&format!("scoped chunk {c}"));
                        }
                        src.iter().sum::<u64>()
                    })
                })
                .collect();
            if unjoined_panic {
                s.spawn(|| {
                    inject("unjoined scoped fiber");
                });
            }
            for (c, h) in hs.into_iter().enumerate() {
                sums[c] = r.outcome(h.join(), plan[c].then(|| format!("scoped chunk {c}")));
            }
        })
    }));
    let mut wrong_payload = 0;
    let scope_panicked = match res {
        Ok(()) => false,
        Err(p) => {
            let text = payload_text(&*p);
            if text != "a scoped fiber panicked" {
                wrong_payload += 1;
                r.note(format!("scope panicked with `{text}`"));
            }
            true
        }
    };
    let want: u64 = data
        .chunks(size)
        .enumerate()
        .filter(|(c, _)| !plan[*c])
        .map(|(_, x)| x.iter().sum::<u64>())
        .sum();
    let got: u64 = sums.iter().flatten().sum();
    let wrong_out = out
        .iter()
        .zip(&data)
        .filter(|(o, d)| **o != **d * 2)
        .count();
    r.check("scope: sum of joined chunks", want, got);
    r.check("scope: output elements wrong", 0, wrong_out as u64);
    r.check(
        "scope: panicked for an unjoined panic",
        unjoined_panic as u64,
        scope_panicked as u64,
    );
    r.check(
        "scope: wrong payload of the scope's panic",
        0,
        wrong_payload,
    );
    r.fibers += nchunks as u64 + unjoined_panic as u64;
    r
}

// ---- spawn_blocking: values back, panics resumed in the caller ---------------------------------

fn blocking(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("blocking");
    let n = ctx.n(&mut rng, 2, 60);
    let calls = rng.range(1, 4) as u64;
    let plan: Vec<(bool, Duration)> = (0..n).map(|_| (rng.chance(10), rng.ms(0, 3))).collect();
    let hs: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &(panics, d))| {
            fiber::spawn(move || {
                let mut sum = 0;
                for c in 0..calls {
                    sum += fiber::spawn_blocking(move || {
                        assert!(!fiber::is_fiber(), "spawn_blocking ran on a fiber");
                        std::thread::sleep(d);
                        if panics && c == calls - 1 {
                            inject(&format!("blocking job {i}"));
                        }
                        i as u64 * 3 + c
                    });
                }
                sum
            })
        })
        .collect();
    let mut sum = 0;
    for (i, h) in hs.into_iter().enumerate() {
        sum += r
            .outcome(h.join(), plan[i].0.then(|| format!("blocking job {i}")))
            .unwrap_or(0);
    }
    let want: u64 = (0..n as u64)
        .filter(|&i| !plan[i as usize].0)
        .map(|i| (0..calls).map(|c| i * 3 + c).sum::<u64>())
        .sum();
    r.check("blocking: sum of results", want, sum);
    r.fibers += n as u64 * (1 + calls);
    r
}

// ---- fiber-local values: no cross-talk between fibers of one worker, dropped at the end --------

/// Increments a counter when dropped.
struct DropMark(Arc<Counter>);

impl Drop for DropMark {
    fn drop(&mut self) {
        self.0.add(1);
    }
}

fiber::fiber_local! {
    static STEP: Cell<u64> = Cell::new(0);
    static MARK: RefCell<Option<DropMark>> = RefCell::new(None);
}

fn local(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("local");
    let n = ctx.n(&mut rng, 5, 300);
    let k = rng.range(1, 20) as u64;
    let plan: Vec<bool> = (0..n).map(|_| rng.chance(10)).collect();
    let drops = Arc::new(Counter::default());
    let wrong = Arc::new(Counter::default());
    let hs: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &panics)| {
            let (drops, wrong) = (drops.clone(), wrong.clone());
            fiber::spawn(move || {
                MARK.with(|m| *m.borrow_mut() = Some(DropMark(drops)));
                for j in 0..k {
                    STEP.with(|s| {
                        if s.get() != j {
                            wrong.add(1);
                        }
                        s.set(j + 1);
                    });
                    if j % 3 == 0 {
                        fiber::sleep(Duration::from_millis(1));
                    } else {
                        fiber::yield_now();
                    }
                }
                if panics {
                    inject(&format!("local holder {i}"));
                }
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        r.outcome(h.join(), plan[i].then(|| format!("local holder {i}")));
    }
    r.check("local: values seen from another fiber", 0, wrong.get());
    r.check(
        "local: values dropped by the time join returned",
        n as u64,
        drops.get(),
    );
    r.fibers += n as u64;
    r
}

// ---- TCP echo: whole transfers, half-close, and aborted connections (drop, RST, shutdown) -------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Conn {
    /// Write a chunk, read it back, until done; then half-close and expect end of stream.
    Normal,
    /// Writer and reader fibers on one socket; the writer half-closes, the reader reads to EOF.
    HalfClose,
    /// Write part, read part, drop the socket with the echo unread (the kernel may reset).
    AbortDrop,
    /// Write part, set SO_LINGER 0 and drop: a reset.
    AbortReset,
    /// Write part, shut down both directions, drop.
    AbortShutdown,
    /// The server's handler panics part-way.
    ServerPanic,
}

#[derive(Clone, Copy)]
struct ConnPlan {
    how: Conn,
    len: usize,
    chunk: usize,
    /// For aborts: bytes written before the abort. For ServerPanic: bytes echoed before it.
    cut: usize,
}

fn byte_at(idx: usize, off: usize) -> u8 {
    (off.wrapping_mul(31) ^ idx.wrapping_mul(7)) as u8
}

const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// Outcome of one server handler.
struct Served {
    idx: usize,
    echoed: u64,
    reset: bool,
    error: Option<String>,
}

fn serve_conn(stream: TcpStream, plans: &[ConnPlan]) -> Served {
    let mut served = Served {
        idx: usize::MAX,
        echoed: 0,
        reset: false,
        error: None,
    };
    let res = (|| -> io::Result<()> {
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        stream.set_write_timeout(Some(TCP_TIMEOUT))?;
        let mut s = &stream;
        let mut header = [0u8; 8];
        s.read_exact(&mut header)?;
        s.write_all(&header)?;
        served.idx = u64::from_le_bytes(header) as usize;
        let plan = plans[served.idx];
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
            served.echoed += n as u64;
            if plan.how == Conn::ServerPanic && served.echoed >= plan.cut as u64 {
                inject(&format!("tcp handler {}", served.idx));
            }
        }
    })();
    if let Err(e) = res {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ) {
            served.reset = true;
        } else {
            served.error = Some(format!("server, connection {}: {e}", served.idx));
        }
    }
    served
}

/// What a client saw: bytes echoed back (and checked) and any failure.
struct Client {
    echoed: u64,
    wrong_bytes: u64,
    error: Option<String>,
}

fn client_conn(addr: std::net::SocketAddr, idx: usize, plan: ConnPlan) -> Client {
    let mut c = Client {
        echoed: 0,
        wrong_bytes: 0,
        error: None,
    };
    let aborting = matches!(
        plan.how,
        Conn::AbortDrop | Conn::AbortReset | Conn::AbortShutdown
    );
    let res = (|| -> io::Result<()> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        stream.set_write_timeout(Some(TCP_TIMEOUT))?;
        let mut s = &stream;
        s.write_all(&(idx as u64).to_le_bytes())?;
        let mut header = [0u8; 8];
        s.read_exact(&mut header)?;
        if u64::from_le_bytes(header) != idx as u64 {
            c.wrong_bytes += 8;
        }
        let payload: Vec<u8> = (0..plan.len).map(|o| byte_at(idx, o)).collect();
        match plan.how {
            Conn::Normal => {
                let mut back = vec![0u8; plan.chunk];
                for (i, part) in payload.chunks(plan.chunk).enumerate() {
                    s.write_all(part)?;
                    s.read_exact(&mut back[..part.len()])?;
                    let off = i * plan.chunk;
                    c.wrong_bytes += back[..part.len()]
                        .iter()
                        .enumerate()
                        .filter(|(o, b)| **b != byte_at(idx, off + o))
                        .count() as u64;
                    c.echoed += part.len() as u64;
                }
                stream.shutdown(Shutdown::Write)?;
                let mut rest = [0u8; 16];
                if s.read(&mut rest)? != 0 {
                    c.wrong_bytes += 1;
                }
            }
            Conn::HalfClose | Conn::ServerPanic => {
                let tolerate = plan.how == Conn::ServerPanic;
                let (wres, rres) = fiber::scope(|sc| {
                    let writer = sc.spawn(|| -> io::Result<()> {
                        let mut s = &stream;
                        for part in payload.chunks(plan.chunk) {
                            s.write_all(part)?;
                        }
                        stream.shutdown(Shutdown::Write)
                    });
                    let reader = sc.spawn(|| -> io::Result<(u64, u64)> {
                        let mut s = &stream;
                        let (mut got, mut wrong) = (0u64, 0u64);
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = s.read(&mut buf)?;
                            if n == 0 {
                                return Ok((got, wrong));
                            }
                            for (o, b) in buf[..n].iter().enumerate() {
                                if *b != byte_at(idx, got as usize + o) {
                                    wrong += 1;
                                }
                            }
                            got += n as u64;
                        }
                    });
                    (writer.join().unwrap(), reader.join().unwrap())
                });
                match rres {
                    Ok((got, wrong)) => {
                        c.echoed = got;
                        c.wrong_bytes += wrong;
                    }
                    Err(e) if tolerate && is_reset(&e) => {}
                    Err(e) => return Err(e),
                }
                match wres {
                    Err(e)
                        if tolerate
                            && (is_reset(&e) || e.kind() == io::ErrorKind::NotConnected) => {}
                    r => r?,
                }
            }
            Conn::AbortDrop | Conn::AbortReset | Conn::AbortShutdown => {
                let part = &payload[..plan.cut];
                s.write_all(part)?;
                // Read a little of the echo back, not all of it.
                let want = (plan.cut / 2).min(plan.chunk);
                let mut back = vec![0u8; want];
                s.read_exact(&mut back)?;
                c.wrong_bytes += back
                    .iter()
                    .enumerate()
                    .filter(|(o, b)| **b != byte_at(idx, *o))
                    .count() as u64;
                match plan.how {
                    Conn::AbortReset => {
                        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                    }
                    Conn::AbortShutdown => stream.shutdown(Shutdown::Both)?,
                    _ => {}
                }
                drop(stream);
            }
        }
        Ok(())
    })();
    if let Err(e) = res {
        if !(aborting && is_reset(&e)) {
            c.error = Some(format!("client, connection {idx} ({:?}): {e}", plan.how));
        }
    }
    c
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

fn tcp(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("tcp");
    let conns = ctx.n(&mut rng, 2, 40);
    let plans: Vec<ConnPlan> = (0..conns)
        .map(|_| {
            let how = match rng.range(0, 100) {
                0..50 => Conn::Normal,
                50..70 => Conn::HalfClose,
                70..78 => Conn::AbortDrop,
                78..86 => Conn::AbortReset,
                86..93 => Conn::AbortShutdown,
                _ => Conn::ServerPanic,
            };
            let len = ctx.n(&mut rng, 2, 64 << 10).max(2);
            let chunk = rng.range(1, 8 << 10);
            ConnPlan {
                how,
                len,
                chunk,
                cut: rng.range(1, len),
            }
        })
        .collect();
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            r.note(format!("bind: {e}"));
            r.check("tcp: bind failed", 0, 1);
            return r;
        }
    };
    let addr = listener.local_addr().expect("local_addr");
    let plans = Arc::new(plans);
    let p2 = plans.clone();
    let acceptor = fiber::spawn(move || {
        let mut handlers = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..p2.len() {
            match listener.accept() {
                Ok((stream, _)) => {
                    let p3 = p2.clone();
                    handlers.push(fiber::spawn(move || serve_conn(stream, &p3)));
                }
                Err(e) => errors.push(format!("accept: {e}")),
            }
        }
        (handlers, errors)
    });
    let clients: Vec<_> = (0..conns)
        .map(|i| {
            let plan = plans[i];
            fiber::spawn(move || client_conn(addr, i, plan))
        })
        .collect();
    let mut client_echoed = vec![0u64; conns];
    let mut errors = 0u64;
    let mut wrong = 0u64;
    for (i, h) in clients.into_iter().enumerate() {
        if let Some(c) = r.outcome(h.join(), None) {
            client_echoed[i] = c.echoed;
            wrong += c.wrong_bytes;
            if let Some(e) = c.error {
                errors += 1;
                r.note(e);
            }
        }
    }
    let (handlers, accept_errors) = r.outcome(acceptor.join(), None).unwrap_or_default();
    for e in &accept_errors {
        r.note(e.clone());
    }
    errors += accept_errors.len() as u64;
    let mut server_echoed = vec![None; conns];
    let mut handled = 0u64;
    let mut resets = 0u64;
    // Handlers are joined in accept order; which connection each served is in its result, or in
    // its panic payload.
    let server_panics: Vec<usize> = (0..conns)
        .filter(|&i| plans[i].how == Conn::ServerPanic)
        .collect();
    let mut panics_seen = 0u64;
    for h in handlers {
        handled += 1;
        match h.join() {
            Ok(s) => {
                resets += s.reset as u64;
                if let Some(e) = s.error {
                    errors += 1;
                    r.note(e);
                }
                if s.idx < conns {
                    server_echoed[s.idx] = Some(s.echoed);
                }
            }
            Err(p) => {
                let text = payload_text(&*p);
                let known = server_panics
                    .iter()
                    .any(|i| text == format!("{INJECTED}: tcp handler {i}"));
                if known {
                    panics_seen += 1;
                } else {
                    errors += 1;
                    r.note(format!("server handler panicked: {text}"));
                }
            }
        }
    }
    let mut whole_mismatch = 0u64;
    let mut over = 0u64;
    for (i, p) in plans.iter().enumerate() {
        match p.how {
            Conn::Normal | Conn::HalfClose => {
                if client_echoed[i] != p.len as u64 || server_echoed[i] != Some(p.len as u64) {
                    whole_mismatch += 1;
                    r.note(format!(
                        "connection {i} ({:?}): sent {}, client got {}, server echoed {:?}",
                        p.how, p.len, client_echoed[i], server_echoed[i]
                    ));
                }
            }
            Conn::AbortDrop | Conn::AbortReset | Conn::AbortShutdown => {
                if server_echoed[i].is_some_and(|e| e > p.cut as u64) {
                    over += 1;
                }
            }
            Conn::ServerPanic => {}
        }
    }
    r.check("tcp: connections handled", conns as u64, handled);
    r.check("tcp: io errors", 0, errors);
    r.check("tcp: wrong bytes echoed", 0, wrong);
    r.check("tcp: whole transfers short or long", 0, whole_mismatch);
    r.check("tcp: aborted connections echoing more than sent", 0, over);
    r.check(
        "tcp: handler panics",
        server_panics.len() as u64,
        panics_seen,
    );
    r.planned_panics += server_panics.len() as u64;
    r.seen_panics += panics_seen;
    r.check(
        "tcp: resets seen only on aborted connections",
        0,
        resets.saturating_sub(
            plans
                .iter()
                .filter(|p| !matches!(p.how, Conn::Normal | Conn::HalfClose))
                .count() as u64,
        ),
    );
    r.bytes += client_echoed.iter().sum::<u64>();
    r.fibers += 1 + 2 * conns as u64;
    r
}

// ---- a runtime dropped while its fibers sleep, park, hold and wait on shared sync objects -----

/// Sends `value` with `try_send` when dropped (here: while its fiber is unwound by the runtime's
/// drop, so the value is in flight while the receivers on that runtime are unwound too), and
/// accounts for the outcome.
struct SendOnDrop {
    tx: mpmc::Sender<u64>,
    value: u64,
    sent: Arc<Totals>,
    refused: Arc<Counter>,
}

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        match self.tx.try_send(self.value) {
            Ok(()) => self.sent.add(self.value),
            Err(_) => self.refused.add(1),
        }
    }
}

/// The sync objects the dropped runtime's fibers hold and wait on; shared with this scenario's
/// fiber (on the soak's runtime) and with plain OS threads.
struct Shared {
    mutex: Mutex<u64>,
    rwlock: RwLock<u64>,
    sem: Semaphore,
    cv: (Mutex<bool>, Condvar),
    /// Receivers on the dropped runtime and the survivors, senders here and in fibers that
    /// send while unwound: `[capacity 0, capacity 1]`. (No sender here: the channels must
    /// disconnect once the senders are gone.)
    inbound: [mpmc::Receiver<u64>; 2],
}

/// The plan of the sync part of the runtime scenario.
struct SyncPlan {
    mutex_waiters: usize,
    /// The RwLock is held by a writer (else by `readers_holding` readers).
    write_held: bool,
    readers_holding: usize,
    /// Waiters queued on the RwLock: true = writer.
    rw_waiters: Vec<bool>,
    permits: usize,
    sem_waiters: usize,
    cv_waiters: usize,
    /// Per inbound channel: receivers on the dropped runtime, true = `select!`.
    in_receivers: [Vec<bool>; 2],
    /// Per inbound channel: messages sent before the drop.
    in_sent: [u64; 2],
    /// Per inbound channel: fibers that `try_send` one value while being unwound.
    on_drop: [usize; 2],
    /// Per outbound channel: senders blocked on the dropped runtime, true = `select!`.
    out_senders: [Vec<bool>; 2],
    /// The survivors (a receiver per inbound channel, a condvar waiter) are plain OS threads
    /// (else fibers on the soak's runtime).
    survivors_on_threads: bool,
}

fn sync_plan(ctx: &Ctx, rng: &mut Rng) -> SyncPlan {
    let write_held = rng.chance(50);
    let flags = |rng: &mut Rng, lo, hi, pct| -> Vec<bool> {
        (0..rng.range(lo, hi)).map(|_| rng.chance(pct)).collect()
    };
    let rw_waiters = flags(rng, 1, 5, 50);
    let in_receivers = [flags(rng, 1, 4, 50), flags(rng, 1, 4, 50)];
    let out_senders = [flags(rng, 1, 4, 50), flags(rng, 1, 4, 50)];
    SyncPlan {
        mutex_waiters: rng.range(1, 5),
        write_held,
        readers_holding: rng.range(1, 4),
        rw_waiters,
        permits: rng.range(1, 4),
        sem_waiters: rng.range(1, 4),
        cv_waiters: rng.range(1, 4),
        in_receivers,
        in_sent: [ctx.n(rng, 1, 40) as u64, ctx.n(rng, 1, 40) as u64],
        on_drop: [rng.range(0, 3), rng.range(0, 3)],
        out_senders,
        survivors_on_threads: rng.chance(50),
    }
}

/// Either a plain OS thread or a fiber on the current runtime, joined the same way.
enum Survivor {
    Thread(std::thread::JoinHandle<()>),
    Fiber(fiber::JoinHandle<()>),
}

impl Survivor {
    fn start(on_thread: bool, f: impl FnOnce() + Send + 'static) -> Survivor {
        if on_thread {
            Survivor::Thread(std::thread::spawn(f))
        } else {
            Survivor::Fiber(fiber::spawn(f))
        }
    }

    /// Joins it without blocking this fiber's worker; true if it returned.
    fn join(self) -> bool {
        match self {
            Survivor::Thread(h) => fiber::spawn_blocking(move || h.join().is_ok()),
            Survivor::Fiber(h) => h.join().is_ok(),
        }
    }
}

fn runtime(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("runtime");
    let workers = rng.range(1, 3);
    let quick = ctx.n(&mut rng, 5, 100);
    let stuck = [rng.range(0, 10), rng.range(0, 10), rng.range(0, 10)];
    let sp = sync_plan(ctx, &mut rng);
    let rt = fiber::RuntimeBuilder::new()
        .worker_threads(workers)
        .thread_name("soak-rt")
        .build()
        .expect("build a runtime");
    let dropped = Arc::new(Counter::default());
    let started = Arc::new(Counter::default());
    let (tx, rx) = mpmc::unbounded::<u64>();
    let mut stuck_handles = Vec::new();
    for (how, &n) in stuck.iter().enumerate() {
        for _ in 0..n {
            let mark = DropMark(dropped.clone());
            let (started, rx) = (started.clone(), rx.clone());
            stuck_handles.push(rt.spawn(move || {
                let _mark = mark;
                started.add(1);
                match how {
                    0 => fiber::sleep(Duration::from_secs(3600)),
                    1 => loop {
                        fiber::park();
                    },
                    _ => {
                        let _ = rx.recv();
                    }
                }
            }));
        }
    }
    drop(rx);
    let quick_handles: Vec<_> = (0..quick as u64)
        .map(|i| {
            rt.spawn(move || {
                fiber::yield_now();
                i
            })
        })
        .collect();
    let mut sum = 0;
    for h in quick_handles {
        sum += r.outcome(h.join(), None).unwrap_or(0);
    }
    let mut total_stuck: usize = stuck.iter().sum();

    // ---- the sync objects: holders first (each reports that it holds), then the waiters.
    let (in0, in1) = (mpmc::bounded::<u64>(0), mpmc::bounded::<u64>(1));
    let sh = Arc::new(Shared {
        mutex: Mutex::new(0),
        rwlock: RwLock::new(0),
        sem: Semaphore::new(sp.permits),
        cv: (Mutex::new(false), Condvar::new()),
        inbound: [in0.1, in1.1],
    });
    let in_tx: [mpmc::Sender<u64>; 2] = [in0.0, in1.0];
    // Outbound channels: senders on the dropped runtime, nobody receives before the drop.
    let (out0, out1) = (mpmc::bounded::<u64>(0), mpmc::bounded::<u64>(1));
    let out_rx: [mpmc::Receiver<u64>; 2] = [out0.1, out1.1];
    let out_tx: [mpmc::Sender<u64>; 2] = [out0.0, out1.0];
    let holding = Arc::new(Counter::default());
    let in_got: [Arc<Totals>; 2] = Default::default();
    let in_sent: [Arc<Totals>; 2] = Default::default();
    let out_sent: [Arc<Totals>; 2] = Default::default();
    let drop_refused = Arc::new(Counter::default());
    let mut stuck_fiber = |f: Box<dyn FnOnce(&Shared) + Send>| {
        let (mark, started, sh) = (DropMark(dropped.clone()), started.clone(), sh.clone());
        stuck_handles.push(rt.spawn(move || {
            let _mark = mark;
            started.add(1);
            f(&sh);
        }));
        total_stuck += 1;
    };
    let wait_holding = |n: u64| {
        while holding.get() < n {
            fiber::sleep(Duration::from_millis(1));
        }
    };
    let mut held = 0;
    // Mutex: one holder, waiters behind it.
    {
        let h = holding.clone();
        stuck_fiber(Box::new(move |sh| {
            let _g = sh.mutex.lock();
            h.add(1);
            park_forever()
        }));
        held += 1;
        wait_holding(held);
        for _ in 0..sp.mutex_waiters {
            stuck_fiber(Box::new(|sh| {
                let _g = sh.mutex.lock();
                park_forever()
            }));
        }
    }
    // RwLock: a writer or some readers hold it; readers and writers queue behind.
    {
        let holders = if sp.write_held { 1 } else { sp.readers_holding };
        for _ in 0..holders {
            let (h, write) = (holding.clone(), sp.write_held);
            stuck_fiber(Box::new(move |sh| {
                if write {
                    let _g = sh.rwlock.write();
                    h.add(1);
                    park_forever()
                } else {
                    let _g = sh.rwlock.read();
                    h.add(1);
                    park_forever()
                }
            }));
        }
        held += holders as u64;
        wait_holding(held);
        for &write in &sp.rw_waiters {
            stuck_fiber(Box::new(move |sh| {
                if write {
                    let _g = sh.rwlock.write();
                    park_forever()
                } else {
                    let _g = sh.rwlock.read();
                    park_forever()
                }
            }));
        }
    }
    // Semaphore: every permit held, waiters behind.
    {
        for _ in 0..sp.permits {
            let h = holding.clone();
            stuck_fiber(Box::new(move |sh| {
                let _p = sh.sem.acquire();
                h.add(1);
                park_forever()
            }));
        }
        held += sp.permits as u64;
        wait_holding(held);
        for _ in 0..sp.sem_waiters {
            stuck_fiber(Box::new(|sh| {
                let _p = sh.sem.acquire();
                park_forever()
            }));
        }
    }
    // Condvar: waiters that are never notified before the drop.
    for _ in 0..sp.cv_waiters {
        stuck_fiber(Box::new(|sh| {
            let g = sh.cv.0.lock().unwrap_or_else(|e| e.into_inner());
            let _g = sh.cv.1.wait_while(g, |ready| !*ready);
            park_forever()
        }));
    }
    // Inbound channels: receivers (plain and `select!`) on the dropped runtime, values in
    // flight from fibers that `try_send` while they are unwound.
    for c in 0..2 {
        for &sel in &sp.in_receivers[c] {
            let got = in_got[c].clone();
            stuck_fiber(Box::new(move |sh| {
                let rx = &sh.inbound[c];
                let (_never_tx, never) = mpmc::bounded::<u64>(0);
                loop {
                    let msg = if sel {
                        fiber::select! {
                            recv(never) -> m => m,
                            recv(rx) -> m => m,
                        }
                    } else {
                        rx.recv()
                    };
                    match msg {
                        Ok(v) => got.add(v),
                        Err(_) => park_forever(),
                    }
                }
            }));
        }
        for k in 0..sp.on_drop[c] {
            let guard = SendOnDrop {
                tx: in_tx[c].clone(),
                value: value(300 + c, k as u64),
                sent: in_sent[c].clone(),
                refused: drop_refused.clone(),
            };
            stuck_fiber(Box::new(move |_| {
                let _guard = guard;
                park_forever()
            }));
        }
    }
    // Outbound channels: senders (plain and `select!`) blocked on the dropped runtime with a
    // value in flight; nobody receives before the drop, so only capacity 1 takes one value.
    for c in 0..2 {
        for (i, &sel) in sp.out_senders[c].iter().enumerate() {
            let (sent, tx) = (out_sent[c].clone(), out_tx[c].clone());
            stuck_fiber(Box::new(move |_| {
                for j in 0.. {
                    let v = value(400 + 8 * c + i, j);
                    let res = if sel {
                        fiber::select! {
                            send(tx, v) -> res => res,
                        }
                    } else {
                        tx.send(v)
                    };
                    match res {
                        Ok(()) => sent.add(v),
                        Err(_) => break,
                    }
                }
                park_forever()
            }));
        }
    }
    drop(out_tx); // the blocked senders hold the only others
                  // Survivors: a receiver per inbound channel and a condvar waiter, on plain OS threads or on
                  // the soak's runtime, that must carry on after the drop.
    let survivors: Vec<Survivor> = (0..2)
        .map(|c| {
            let (rx, got) = (sh.inbound[c].clone(), in_got[c].clone());
            Survivor::start(sp.survivors_on_threads, move || {
                while let Ok(v) = rx.recv() {
                    got.add(v);
                }
            })
        })
        .collect();
    let cv_woken = Arc::new(Counter::default());
    let cv_survivor = {
        let (sh, woken) = (sh.clone(), cv_woken.clone());
        Survivor::start(sp.survivors_on_threads, move || {
            let g = sh.cv.0.lock().unwrap_or_else(|e| e.into_inner());
            let g = sh.cv.1.wait_while(g, |ready| !*ready);
            woken.add(g.is_ok() as u64);
        })
    };
    // Messages into the inbound channels, taken by the receivers on either side.
    for c in 0..2 {
        for j in 0..sp.in_sent[c] {
            let v = value(200 + c, j);
            if in_tx[c].send(v).is_ok() {
                in_sent[c].add(v);
            }
        }
    }
    while started.get() < total_stuck as u64 || out_sent[1].n.get() < 1 {
        fiber::sleep(Duration::from_millis(1));
    }
    fiber::sleep(Duration::from_millis(3)); // let them reach their waits
    let sent_before_drop = [in_sent[0].n.get(), in_sent[1].n.get()];
    // Dropping joins the runtime's threads: do it on a pool thread, not on our worker.
    fiber::spawn_blocking(move || drop(rt));
    r.check("runtime: quick fibers' sum", (0..quick as u64).sum(), sum);
    r.check(
        "runtime: destructors run on the stuck fibers",
        total_stuck as u64,
        dropped.get(),
    );
    let cancelled = stuck_handles
        .into_iter()
        .map(|h| h.join().is_err() as u64)
        .sum();
    r.check(
        "runtime: stuck fibers' join is Err",
        total_stuck as u64,
        cancelled,
    );
    r.check(
        "runtime: channel disconnected after the drop",
        1,
        tx.send(1).is_err() as u64,
    );

    // ---- after the drop: everything the unwound fibers held is free at once.
    let (free, poisoned) = match sh.mutex.try_lock() {
        Ok(_) => (1, 0),
        Err(fiber::sync::TryLockError::Poisoned(_)) => (1, 1),
        Err(fiber::sync::TryLockError::WouldBlock) => (0, 0),
    };
    r.check("runtime: Mutex try_lock succeeds after the drop", 1, free);
    // A cancellation (here, runtime drop) is not a panic: no poisoning (docs/cancellation.md).
    r.check(
        "runtime: Mutex not poisoned by its unwound holder",
        0,
        poisoned,
    );
    let (free, poisoned) = match sh.rwlock.try_write() {
        Ok(_) => (1, 0),
        Err(fiber::sync::TryLockError::Poisoned(_)) => (1, 1),
        Err(fiber::sync::TryLockError::WouldBlock) => (0, 0),
    };
    r.check("runtime: RwLock try_write succeeds after the drop", 1, free);
    r.check(
        "runtime: RwLock not poisoned by an unwound writer",
        0,
        poisoned,
    );
    let (a, b) = (sh.rwlock.try_read(), sh.rwlock.try_read());
    let readers = [&a, &b]
        .iter()
        .filter(|g| !matches!(g, Err(fiber::sync::TryLockError::WouldBlock)))
        .count() as u64;
    drop((a, b));
    r.check(
        "runtime: RwLock: two try_reads at once succeed after drop",
        2,
        readers,
    );
    r.check(
        "runtime: Semaphore permits available after the drop",
        sp.permits as u64,
        sh.sem.available_permits() as u64,
    );
    let permits: Vec<_> = (0..=sp.permits)
        .filter_map(|_| sh.sem.try_acquire())
        .collect();
    r.check(
        "runtime: Semaphore try_acquires succeeding after drop",
        sp.permits as u64,
        permits.len() as u64,
    );
    drop(permits);
    let (free, poisoned) = match sh.cv.0.try_lock() {
        Ok(mut g) => {
            *g = true;
            (1, 0)
        }
        Err(fiber::sync::TryLockError::Poisoned(e)) => {
            *e.into_inner() = true;
            (1, 1)
        }
        Err(fiber::sync::TryLockError::WouldBlock) => (0, 0),
    };
    r.check(
        "runtime: Condvar's Mutex try_lock succeeds after the drop",
        1,
        free,
    );
    r.check(
        "runtime: Condvar's Mutex poisoned by unwound waiters",
        0,
        poisoned,
    );
    sh.cv.1.notify_one();
    let returned = cv_survivor.join() as u64;
    r.check(
        "runtime: Condvar survivor woken by notify_one after drop",
        1,
        returned * cv_woken.get(),
    );
    // Every message sent was received exactly once or is still in the channel.
    drop(in_tx);
    let survivors_returned = survivors.into_iter().map(|s| s.join() as u64).sum();
    r.check("runtime: inbound survivors returned", 2, survivors_returned);
    let drain = |rx: &mpmc::Receiver<u64>, into: &Totals| {
        while let Ok(v) = rx.try_recv() {
            into.add(v);
        }
        matches!(rx.try_recv(), Err(mpmc::TryRecvError::Disconnected)) as u64
    };
    let mut disconnected: u64 = sh
        .inbound
        .iter()
        .zip(&in_got)
        .map(|(rx, got)| drain(rx, got))
        .sum();
    let before = sent_before_drop[0] + sent_before_drop[1];
    r.check(
        "runtime: inbound sent before the drop",
        sp.in_sent[0] + sp.in_sent[1],
        before,
    );
    let on_drop = (sp.on_drop[0] + sp.on_drop[1]) as u64;
    r.check(
        "runtime: inbound try_sends while unwound, sent or refused",
        on_drop,
        (in_sent[0].n.get() + in_sent[1].n.get()).wrapping_sub(before) + drop_refused.get(),
    );
    for c in 0..2 {
        r.check(
            "runtime: inbound messages received or left, vs sent",
            in_sent[c].n.get(),
            in_got[c].n.get(),
        );
        r.check(
            "runtime: inbound sum received or left, vs sent",
            in_sent[c].sum.load(SeqCst),
            in_got[c].sum.load(SeqCst),
        );
    }
    let out_left: [Totals; 2] = Default::default();
    for c in 0..2 {
        disconnected += drain(&out_rx[c], &out_left[c]);
        r.check(
            "runtime: outbound sends completed (cap 0: 0, cap 1: 1)",
            c as u64,
            out_sent[c].n.get(),
        );
        r.check(
            "runtime: outbound messages left in the channel, vs sent",
            out_sent[c].n.get(),
            out_left[c].n.get(),
        );
        r.check(
            "runtime: outbound sum left in the channel, vs sent",
            out_sent[c].sum.load(SeqCst),
            out_left[c].sum.load(SeqCst),
        );
    }
    r.check(
        "runtime: sync channels disconnected after drop and drain",
        4,
        disconnected,
    );
    r.messages += in_got[0].n.get() + in_got[1].n.get() + out_left[0].n.get() + out_left[1].n.get();
    r.fibers += (quick + total_stuck) as u64;
    if !sp.survivors_on_threads {
        r.fibers += 3;
    }
    r
}

/// Parks until the fiber is unwound (by its runtime's drop).
fn park_forever() -> ! {
    loop {
        fiber::park();
    }
}
