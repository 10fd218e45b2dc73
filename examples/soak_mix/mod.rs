//! The scenarios of the soak (`examples/soak.rs`). Each one draws its whole plan (sizes, modes,
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

/// Prefix of every injected panic's payload; the soak's panic hook keeps these quiet.
pub(crate) const INJECTED: &str = "soak-injected";

// ---- plumbing ----------------------------------------------------------------------------------

/// xorshift64* seeded through splitmix64: a deterministic choice sequence, no dependency.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// True with probability `pct` percent.
    pub(crate) fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    /// One of `xs`.
    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len())]
    }

    /// A generator for a sub-task, drawn from this one.
    pub(crate) fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }

    /// A duration of `lo..hi` milliseconds.
    fn ms(&mut self, lo: usize, hi: usize) -> Duration {
        Duration::from_millis(self.range(lo, hi) as u64)
    }
}

/// splitmix64's finaliser: a good 64-bit mix.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the scenarios need to know about the run.
pub(crate) struct Ctx {
    /// Size multiplier (1.0 in release builds, smaller in debug builds).
    pub(crate) load: f64,
    /// Also exercise combinations with known, not yet fixed defects (`--with-known-bugs`).
    pub(crate) known_bugs: bool,
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

    /// Does this kind trip a known leak (so it runs only a few times per run unless
    /// `--with-known-bugs`)? The `runtime` scenario does: a runtime dropped after running fibers
    /// leaks its stack slab, its address space by design (`StackPool::drop`) but also the
    /// pre-faulted top pages of the stacks never carved from it (~0.9 MiB resident per runtime).
    pub(crate) fn known_leak(self) -> bool {
        self == Kind::Runtime
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
    let seed = rng.next();
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
    // What the zero-capacity channel supports: a `select!` send arm completes only against a
    // receiver blocked in a plain `recv`, and two `select!`s cannot rendezvous (known defect).
    let rendezvous = cap == Some(0);
    let plain_receivers = recv_how
        .iter()
        .all(|h| matches!(h, RecvHow::Recv | RecvHow::Thread | RecvHow::Iter));
    let any_select = recv_how.contains(&RecvHow::Select);
    let mut send_how: Vec<SendHow> = Vec::new();
    for _ in &plan {
        let mut how = rng.pick(&[
            SendHow::Send,
            SendHow::Timeout,
            SendHow::Try,
            SendHow::Select,
        ]);
        if rendezvous && how == SendHow::Try {
            how = SendHow::Send; // try_send into a rendezvous needs a blocked receiver
        }
        if rendezvous && how == SendHow::Select && !plain_receivers {
            let allowed = ctx.known_bugs && any_select;
            if !allowed {
                how = SendHow::Timeout;
            }
        }
        send_how.push(how);
    }
    let (tx, rx) = match cap {
        None => mpmc::unbounded(),
        Some(c) => mpmc::bounded(c),
    };
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
    // Consumers select over both; a `select!` send into a rendezvous channel would then meet a
    // `select!` receive: the known hang, only with --with-known-bugs.
    let select_send_ok = |cap: Option<usize>| cap != Some(0) || ctx.known_bugs;
    let hows: [Vec<SendHow>; 2] = [0, 1].map(|c| {
        plans[c]
            .iter()
            .map(|_| {
                let how = rng.pick(&[SendHow::Send, SendHow::Timeout, SendHow::Select]);
                if how == SendHow::Select && !select_send_ok(caps[c]) {
                    SendHow::Send
                } else {
                    how
                }
            })
            .collect()
    });
    // A producer that offers each message to both channels at once.
    let dual = select_send_ok(caps[0]) && select_send_ok(caps[1]) && rng.chance(50);
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
    let data: Vec<u64> = (0..len).map(|_| rng.next() >> 32).collect();
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

// ---- a runtime dropped while fibers sleep, park and wait on a channel -------------------------

fn runtime(ctx: &Ctx, mut rng: Rng) -> Report {
    let mut r = Report::new("runtime");
    let workers = rng.range(1, 3);
    let quick = ctx.n(&mut rng, 5, 100);
    let stuck = [rng.range(0, 10), rng.range(0, 10), rng.range(0, 10)];
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
    let total_stuck: usize = stuck.iter().sum();
    while started.get() < total_stuck as u64 {
        fiber::sleep(Duration::from_millis(1));
    }
    fiber::sleep(Duration::from_millis(2)); // let them reach their waits
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
    r.fibers += (quick + total_stuck) as u64;
    r
}
