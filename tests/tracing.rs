//! The `tracing` feature (docs/observability.md, "Tracing"): a span per fiber with its name, id
//! and spawn location, entered while the fiber runs (also after a park, a sleep or a yield), and
//! the trace-level life-cycle events, counted exactly for known workloads.
//!
//! Run: `cargo test --features tracing --test tracing`.
//!
//! One global recording subscriber serves the whole binary; tests run in parallel, so each looks
//! only at the spans and events of its own fibers (by fiber id).
mod support;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use support::watchdog;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A field's value, as recorded.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    U64(u64),
    Str(String),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(n) => Some(*n),
            Value::Str(_) => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::U64(_) => None,
        }
    }
}

#[derive(Default)]
struct Fields(HashMap<String, Value>);

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0
            .insert(field.name().to_owned(), Value::U64(value as u64));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::Str(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::Str(format!("{value:?}")));
    }
}

#[derive(Clone, Debug)]
struct SpanRec {
    meta: &'static Metadata<'static>,
    name: &'static str,
    target: String,
    level: Level,
    parent: Option<u64>,
    fields: HashMap<String, Value>,
}

#[derive(Clone, Debug)]
struct EventRec {
    target: String,
    level: Level,
    /// The innermost span entered on the recording thread when the event happened.
    current: Option<u64>,
    fields: HashMap<String, Value>,
}

impl EventRec {
    fn message(&self) -> &str {
        self.fields
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Default)]
struct Records {
    spans: HashMap<u64, SpanRec>,
    events: Vec<EventRec>,
    /// Exits of a span that was not the innermost entered one on its thread.
    misordered_exits: usize,
}

static RECORDS: Mutex<Option<Records>> = Mutex::new(None);
static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The spans entered on this thread, innermost last.
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn records() -> MutexGuard<'static, Option<Records>> {
    RECORDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records every span and event, and which span is current on each thread.
struct Recorder;

thread_local! {
    /// Set on a test's thread: the fiber spans it creates are disabled (as a filter that drops
    /// `fiber::task` would), the user's spans still recorded.
    static NO_FIBER_SPANS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Subscriber for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // Ask `enabled` every time: it depends on the thread (`NO_FIBER_SPANS`).
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        !(meta.is_span() && meta.target() == "fiber::task" && NO_FIBER_SPANS.with(|f| f.get()))
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = NEXT_SPAN.fetch_add(1, Ordering::Relaxed);
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = if let Some(parent) = attrs.parent() {
            Some(parent.into_u64())
        } else if attrs.is_contextual() {
            STACK.with(|s| s.borrow().last().copied())
        } else {
            None
        };
        let meta = attrs.metadata();
        let rec = SpanRec {
            meta,
            name: meta.name(),
            target: meta.target().to_owned(),
            level: *meta.level(),
            parent,
            fields: fields.0,
        };
        records()
            .get_or_insert_with(Records::default)
            .spans
            .insert(id, rec);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(rec) = records()
            .get_or_insert_with(Records::default)
            .spans
            .get_mut(&span.into_u64())
        {
            rec.fields.extend(fields.0);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let current = match event.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if event.is_contextual() => STACK.with(|s| s.borrow().last().copied()),
            None => None,
        };
        let meta = event.metadata();
        let rec = EventRec {
            target: meta.target().to_owned(),
            level: *meta.level(),
            current,
            fields: fields.0,
        };
        records()
            .get_or_insert_with(Records::default)
            .events
            .push(rec);
    }

    fn current_span(&self) -> tracing_core::span::Current {
        let Some(id) = STACK.with(|s| s.borrow().last().copied()) else {
            return tracing_core::span::Current::none();
        };
        let meta = records()
            .as_ref()
            .and_then(|r| r.spans.get(&id).map(|s| s.meta));
        match meta {
            Some(meta) => tracing_core::span::Current::new(Id::from_u64(id), meta),
            None => tracing_core::span::Current::none(),
        }
    }

    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        let id = span.into_u64();
        let innermost = STACK.with(|s| {
            let mut stack = s.borrow_mut();
            let innermost = stack.last() == Some(&id);
            if let Some(at) = stack.iter().rposition(|&s| s == id) {
                stack.remove(at);
            }
            innermost
        });
        if !innermost {
            records()
                .get_or_insert_with(Records::default)
                .misordered_exits += 1;
        }
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(Recorder).expect("no other global subscriber");
    });
}

/// The span of fiber `id` (exactly one).
fn span_of(id: u64) -> (u64, SpanRec) {
    let guard = records();
    let spans: Vec<(u64, SpanRec)> = guard
        .as_ref()
        .map(|r| {
            r.spans
                .iter()
                .filter(|(_, s)| {
                    s.name == "fiber" && s.fields.get("fiber.id") == Some(&Value::U64(id))
                })
                .map(|(k, s)| (*k, s.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(spans.len(), 1, "fiber {id} has one span: {spans:?}");
    spans.into_iter().next().unwrap()
}

/// The recorded events for which `keep` holds.
fn events(keep: impl Fn(&EventRec) -> bool) -> Vec<EventRec> {
    records()
        .as_ref()
        .map(|r| r.events.iter().filter(|e| keep(e)).cloned().collect())
        .unwrap_or_default()
}

/// Fiber-life-cycle events (target `fiber::task`) with `message` inside one of `spans`.
fn count_in(spans: &HashSet<u64>, message: &str) -> usize {
    events(|e| {
        e.target == "fiber::task"
            && e.message() == message
            && e.current.is_some_and(|c| spans.contains(&c))
    })
    .len()
}

/// Fiber-life-cycle events with `message` that name one of `ids` in their `fiber.id` field.
fn count_naming(ids: &HashSet<u64>, message: &str) -> usize {
    events(|e| {
        e.target == "fiber::task"
            && e.message() == message
            && e.fields
                .get("fiber.id")
                .and_then(Value::as_u64)
                .is_some_and(|id| ids.contains(&id))
    })
    .len()
}

/// Waits until `n()` reaches `at_least` (the worker records `finish` after the fiber's body has
/// returned, so a `join` may return just before it): loose bound, the watchdog covers a hang.
fn await_count(at_least: usize, n: impl Fn() -> usize) {
    let start = Instant::now();
    while n() < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still {} of {at_least}",
            n()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_fibers_span_has_its_name_id_and_spawn_location() {
    install();
    watchdog(60, || {
        let line = line!() + 3; // the line of `.spawn(` below
        let handle = fiber::Builder::new()
            .name("traced-one".to_owned())
            .spawn(|| {
                tracing::info!(probe = "inside", "user event");
                fiber::current().id().as_u64()
            })
            .unwrap();
        let id = handle.fiber().id().as_u64();
        assert_eq!(handle.join().unwrap(), id);
        let (span_id, span) = span_of(id);
        assert_eq!(span.target, "fiber::task");
        assert_eq!(span.level, Level::TRACE);
        assert_eq!(
            span.fields.get("fiber.name"),
            Some(&Value::Str("traced-one".into()))
        );
        assert_eq!(span.fields.get("kind"), Some(&Value::Str("fiber".into())));
        let file = span.fields.get("loc.file").and_then(Value::as_str).unwrap();
        assert!(file.ends_with("tracing.rs"), "spawn location {file}");
        assert_eq!(
            span.fields.get("loc.line"),
            Some(&Value::U64(line as u64)),
            "the span records the user's spawn call"
        );
        assert!(span.fields.contains_key("loc.col"));
        // The user's event happened inside the fiber's span.
        let user = events(|e| e.fields.get("probe") == Some(&Value::Str("inside".into())));
        let mine: Vec<_> = user.iter().filter(|e| e.current == Some(span_id)).collect();
        assert_eq!(
            mine.len(),
            1,
            "the user event is in the fiber's span: {user:?}"
        );
        assert_eq!(mine[0].level, Level::INFO);
        // Spawn (named by id, outside the span), finish (inside it), both at trace level.
        let ids = HashSet::from([id]);
        let spans = HashSet::from([span_id]);
        assert_eq!(count_naming(&ids, "spawn"), 1);
        await_count(1, || count_in(&spans, "finish"));
        assert_eq!(count_in(&spans, "finish"), 1);
        for e in events(|e| e.target == "fiber::task") {
            assert_eq!(e.level, Level::TRACE, "{e:?}");
        }
    });
}

#[test]
fn a_hundred_fibers_parking_and_sleeping_once_give_exact_counts() {
    install();
    watchdog(120, || {
        const N: usize = 100;
        let handles: Vec<_> = (0..N)
            .map(|_| {
                fiber::spawn(|| {
                    fiber::park();
                    tracing::info!(probe = "after-park", "resumed");
                    fiber::sleep(Duration::from_millis(1));
                    tracing::info!(probe = "after-sleep", "resumed");
                })
            })
            .collect();
        let ids: HashSet<u64> = handles.iter().map(|h| h.fiber().id().as_u64()).collect();
        assert_eq!(ids.len(), N);
        let spans: HashSet<u64> = ids.iter().map(|&id| span_of(id).0).collect();
        // Unpark only parked fibers (their park event is recorded once they are switched out), so
        // that every unpark finds its fiber parked: one wake-up each, no token left over.
        let parked = |spans: &HashSet<u64>| {
            events(|e| {
                e.message() == "park"
                    && e.fields.get("reason") == Some(&Value::Str("park".into()))
                    && e.current.is_some_and(|c| spans.contains(&c))
            })
            .len()
        };
        let start = Instant::now();
        while parked(&spans) < N {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "fibers did not park"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for h in &handles {
            h.fiber().unpark();
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(count_naming(&ids, "spawn"), N);
        assert_eq!(parked(&spans), N);
        let slept = events(|e| {
            e.message() == "park"
                && e.fields.get("reason") == Some(&Value::Str("sleep".into()))
                && e.current.is_some_and(|c| spans.contains(&c))
        });
        assert_eq!(slept.len(), N);
        // One wake-up per park (the unpark) and one per sleep (the timer).
        assert_eq!(count_naming(&ids, "unpark"), 2 * N);
        await_count(N, || count_in(&spans, "finish"));
        assert_eq!(count_in(&spans, "finish"), N);
        // After each park and each sleep the fiber is back in its own span.
        for probe in ["after-park", "after-sleep"] {
            let after = events(|e| e.fields.get("probe") == Some(&Value::Str(probe.into())));
            let inside = after
                .iter()
                .filter(|e| e.current.is_some_and(|c| spans.contains(&c)))
                .count();
            assert_eq!(inside, N, "{probe}: each event in its fiber's span");
        }
        // Each fiber's own events are in its own span, not a neighbour's.
        for id in &ids {
            let (span_id, _) = span_of(*id);
            assert_eq!(count_in(&HashSet::from([span_id]), "park"), 2);
            assert_eq!(count_in(&HashSet::from([span_id]), "finish"), 1);
        }
        assert_eq!(records().as_ref().unwrap().misordered_exits, 0);
    });
}

#[test]
fn a_yield_leaves_and_reenters_the_span_and_children_nest_under_their_spawner() {
    install();
    watchdog(60, || {
        let handle = fiber::spawn(|| {
            fiber::yield_now();
            tracing::info!(probe = "after-yield", "resumed");
            let child = fiber::spawn(|| fiber::current().id().as_u64());
            let scoped = fiber::scope(|s| s.spawn(|| fiber::current().id().as_u64()).join());
            (child.join().unwrap(), scoped.unwrap())
        });
        let id = handle.fiber().id().as_u64();
        let (child, scoped) = handle.join().unwrap();
        let (span_id, _) = span_of(id);
        let spans = HashSet::from([span_id]);
        assert_eq!(count_in(&spans, "yield"), 1);
        let after = events(|e| e.fields.get("probe") == Some(&Value::Str("after-yield".into())));
        assert_eq!(
            after.iter().filter(|e| e.current == Some(span_id)).count(),
            1
        );
        // A fiber spawned from a fiber: its span's parent is the spawner's; the spawn event is
        // recorded in the spawner's span.
        let (_, child_span) = span_of(child);
        assert_eq!(child_span.parent, Some(span_id));
        assert_eq!(
            child_span.fields.get("kind"),
            Some(&Value::Str("fiber".into()))
        );
        let (_, scoped_span) = span_of(scoped);
        assert_eq!(scoped_span.parent, Some(span_id));
        assert_eq!(
            scoped_span.fields.get("kind"),
            Some(&Value::Str("scoped".into()))
        );
        let spawned_here = events(|e| {
            e.message() == "spawn"
                && e.current == Some(span_id)
                && e.fields
                    .get("fiber.id")
                    .and_then(Value::as_u64)
                    .is_some_and(|c| c == child || c == scoped)
        });
        assert_eq!(spawned_here.len(), 2);
    });
}

#[test]
fn fibers_on_many_workers_keep_their_spans_apart() {
    install();
    watchdog(120, || {
        // Fibers ping-pong through channels, so each worker switches between many fibers and
        // every resume must enter exactly the resumed fiber's span.
        const PAIRS: usize = 50;
        const ROUNDS: usize = 20;
        let mut handles = Vec::new();
        for _ in 0..PAIRS {
            let (to_b, from_a) = fiber::sync::mpsc::channel::<usize>();
            let (to_a, from_b) = fiber::sync::mpsc::channel::<usize>();
            handles.push(fiber::spawn(move || {
                for i in 0..ROUNDS {
                    to_b.send(i).unwrap();
                    let me = fiber::current().id().as_u64();
                    tracing::info!(probe = "pingpong", me, "got {}", from_b.recv().unwrap());
                }
            }));
            handles.push(fiber::spawn(move || {
                for _ in 0..ROUNDS {
                    let i = from_a.recv().unwrap();
                    let me = fiber::current().id().as_u64();
                    tracing::info!(probe = "pingpong", me, "got {i}");
                    to_a.send(i).unwrap();
                }
            }));
        }
        let ids: Vec<u64> = handles.iter().map(|h| h.fiber().id().as_u64()).collect();
        for h in handles {
            h.join().unwrap();
        }
        let span_ids: HashMap<u64, u64> = ids.iter().map(|&id| (span_of(id).0, id)).collect();
        let ping = events(|e| {
            e.fields.get("probe") == Some(&Value::Str("pingpong".into()))
                && e.fields
                    .get("me")
                    .and_then(Value::as_u64)
                    .is_some_and(|me| ids.contains(&me))
        });
        assert_eq!(ping.len(), 2 * PAIRS * ROUNDS);
        for e in &ping {
            let me = e.fields["me"].as_u64().unwrap();
            let in_span = e.current.and_then(|c| span_ids.get(&c).copied());
            assert_eq!(
                in_span,
                Some(me),
                "an event of fiber {me} in another span: {e:?}"
            );
        }
    });
}

#[test]
fn a_span_held_across_a_wait_is_current_again_after_it_and_not_meanwhile() {
    install();
    watchdog(60, || {
        // One worker: the two fibers share its thread, so a span left entered by one would be
        // seen by the other.
        let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
        let holder = rt.spawn(|| {
            let outer = tracing::info_span!("request", probe = "outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!("step", probe = "inner");
            let _inner = inner.enter();
            fiber::sleep(Duration::from_millis(20));
            tracing::info!(probe = "holder-after-sleep", "resumed");
            fiber::yield_now();
            tracing::info!(probe = "holder-after-yield", "resumed");
            (
                outer.id().unwrap().into_u64(),
                inner.id().unwrap().into_u64(),
            )
        });
        let other = rt.spawn(|| {
            fiber::sleep(Duration::from_millis(5));
            tracing::info!(probe = "other", "meanwhile");
        });
        other.join().unwrap();
        let holder_id = holder.fiber().id().as_u64();
        let (outer, inner) = holder.join().unwrap();
        let (fiber_span, _) = span_of(holder_id);
        // The held spans nest in the fiber's span, and are current again after each wait.
        let (outer_rec, inner_rec) = {
            let r = records();
            let r = r.as_ref().unwrap();
            (r.spans[&outer].clone(), r.spans[&inner].clone())
        };
        assert_eq!(outer_rec.parent, Some(fiber_span));
        assert_eq!(inner_rec.parent, Some(outer));
        for probe in ["holder-after-sleep", "holder-after-yield"] {
            let after = events(|e| e.fields.get("probe") == Some(&Value::Str(probe.into())));
            assert_eq!(after.len(), 1);
            assert_eq!(after[0].current, Some(inner), "{probe}: in the held span");
        }
        // The other fiber's event, while the holder slept on the same thread, is in its own
        // span only.
        let meanwhile = events(|e| e.fields.get("probe") == Some(&Value::Str("other".into())));
        assert_eq!(meanwhile.len(), 1);
        let current = meanwhile[0].current.unwrap();
        let current_rec = records().as_ref().unwrap().spans[&current].clone();
        assert_eq!(current_rec.name, "fiber");
        assert_ne!(current, fiber_span);
        // The park and yield events of the holder are recorded in its innermost held span.
        let parks = events(|e| e.message() == "park" && e.current == Some(inner));
        assert_eq!(parks.len(), 1);
        assert_eq!(records().as_ref().unwrap().misordered_exits, 0);
    });
}

#[test]
fn a_held_span_does_not_leak_to_other_fibers_when_fiber_spans_are_filtered_out() {
    install();
    watchdog(60, || {
        // Fiber spans disabled (spawned from this thread), user spans recorded: the held span
        // must still leave the worker's thread while its fiber waits.
        NO_FIBER_SPANS.with(|f| f.set(true));
        let rt = fiber::Runtime::builder().worker_threads(1).build().unwrap();
        let holder = rt.spawn(|| {
            let held = tracing::info_span!("request", probe = "filtered-held");
            let _held = held.enter();
            fiber::sleep(Duration::from_millis(20));
            tracing::info!(probe = "filtered-holder-after", "resumed");
            held.id().unwrap().into_u64()
        });
        let other = rt.spawn(|| {
            fiber::sleep(Duration::from_millis(5));
            tracing::info!(probe = "filtered-other", "meanwhile");
        });
        other.join().unwrap();
        let held = holder.join().unwrap();
        NO_FIBER_SPANS.with(|f| f.set(false));
        let after =
            events(|e| e.fields.get("probe") == Some(&Value::Str("filtered-holder-after".into())));
        assert_eq!(after.len(), 1);
        assert_eq!(
            after[0].current,
            Some(held),
            "the held span is current after the sleep"
        );
        let meanwhile =
            events(|e| e.fields.get("probe") == Some(&Value::Str("filtered-other".into())));
        assert_eq!(meanwhile.len(), 1);
        assert_eq!(
            meanwhile[0].current, None,
            "the other fiber (no span of its own) is in no span, not in the sleeping one's"
        );
        // The held span's parent: no fiber span, so none.
        assert_eq!(records().as_ref().unwrap().spans[&held].parent, None);
        assert_eq!(records().as_ref().unwrap().misordered_exits, 0);
    });
}
