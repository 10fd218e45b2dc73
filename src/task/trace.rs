//! `tracing` instrumentation (cargo feature `tracing`, off by default; docs/observability.md).
//!
//! With the feature, each fiber gets a span (`fiber`, target `fiber::task`: `kind`,
//! `fiber.name`, `fiber.id`, `loc.file`, `loc.line`, `loc.col`, after tokio's `runtime.spawn`),
//! created at spawn and entered by its worker around every resume, so that whatever the fiber
//! records is inside it. Trace-level events: `spawn` (in the spawner's context), `park` with its
//! reason and `yield` (in the fiber's span), `unpark` (in the waker's context, with `fiber.id`,
//! as tokio's `waker.wake`), `finish` (in the fiber's span). Reports (watchdog, deadlock) are
//! warn-level events, or go to stderr when no subscriber takes them.
//!
//! Without the feature every function here is an empty `#[inline(always)]` one and
//! [`FiberSpan`] is zero-sized: nothing is compiled in, the task header does not grow.
//!
//! In the task layer, not in `observe` (the dumps, metrics and watchdog, which read the
//! scheduler): the task header holds a [`FiberSpan`] and the worker enters it, so it must sit below
//! both. It names nothing above `coro`; the callers pass what they know (ids, names, the
//! suspension kind).
use super::Task;
use crate::coro::Suspend;

/// A fiber's span, stored in its task (`Task::span`). Zero-sized without the feature.
pub(crate) struct FiberSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    /// Spans the fiber had entered inside its own when it last switched out, outermost first:
    /// exited at the switch-out and entered again at the next resume, so that a span a fiber
    /// holds entered across a wait (`let _g = span.enter(); stream.read(..)`) is current again
    /// when it resumes, and not meanwhile for the other fibers of its worker. Touched only by
    /// the worker resuming the fiber, before and after the switch.
    #[cfg(feature = "tracing")]
    held: std::cell::RefCell<Vec<tracing::Span>>,
}

/// At most this many spans entered inside a fiber's are carried across one switch (a bound
/// against a subscriber whose current span does not follow exits).
#[cfg(feature = "tracing")]
const MAX_HELD: usize = 64;

/// Is any subscriber interested in anything (one relaxed load)? Without one, no span can have
/// been entered, and the held-span bookkeeping is skipped.
#[cfg(feature = "tracing")]
#[inline(always)]
fn tracing_active() -> bool {
    tracing::level_filters::LevelFilter::current() != tracing::level_filters::LevelFilter::OFF
}

/// Exits the spans entered inside the fiber's own (innermost first) and keeps them for
/// [`reenter`]. Stops at the fiber's span, or, if that is disabled (filtered out), where the
/// subscriber tells no current span: a worker thread enters no span of its own, so whatever is
/// current there is the fiber's.
#[cfg(feature = "tracing")]
#[inline(never)]
fn stash_held(fiber: &FiberSpan) {
    let own = fiber.span.id();
    let mut held = fiber.held.borrow_mut();
    for _ in 0..MAX_HELD {
        let current = tracing::Span::current();
        match current.id() {
            Some(id) if Some(&id) != own.as_ref() => {}
            _ => break,
        }
        current.with_subscriber(|(id, dispatch)| dispatch.exit(id));
        held.push(current);
    }
    held.reverse();
}

/// Enters again, outermost first, the spans [`stash_held`] exited.
#[cfg(feature = "tracing")]
#[inline(never)]
fn reenter(held: &mut Vec<tracing::Span>) {
    for span in held.drain(..) {
        span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
    }
}

/// What kind of fiber a spawn makes: the span's `kind` field (tokio's `kind`: task, blocking...).
#[inline(always)]
pub(crate) fn kind(scoped: bool) -> &'static str {
    if scoped {
        "scoped"
    } else {
        "fiber"
    }
}

/// Creates the span of a new fiber spawned at `loc`, and records the `spawn` event in the
/// spawner's context. The span's parent is the spawner's current span, as tokio's task spans.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn spawn_span(
    id: u64,
    name: Option<&str>,
    kind: &'static str,
    loc: &'static std::panic::Location<'static>,
) -> FiberSpan {
    let span = tracing::trace_span!(
        target: "fiber::task",
        "fiber",
        kind,
        fiber.name = name.unwrap_or_default(),
        fiber.id = id,
        loc.file = loc.file(),
        loc.line = loc.line(),
        loc.col = loc.column(),
    );
    tracing::trace!(target: "fiber::task", { fiber.id = id, kind }, "spawn");
    FiberSpan {
        span,
        held: std::cell::RefCell::new(Vec::new()),
    }
}

/// See the feature's version.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn spawn_span(
    _id: u64,
    _name: Option<&str>,
    _kind: &'static str,
    _loc: &'static std::panic::Location<'static>,
) -> FiberSpan {
    FiberSpan {}
}

/// The fiber's span, entered on the worker's thread from just before the switch into the fiber
/// until [`switched_out`] (zero-sized without the feature).
pub(crate) struct Entered<'a> {
    #[cfg(feature = "tracing")]
    fiber: &'a FiberSpan,
    #[cfg(feature = "tracing")]
    _entered: tracing::span::Entered<'a>,
    #[cfg(not(feature = "tracing"))]
    _span: std::marker::PhantomData<&'a FiberSpan>,
}

/// Enters the fiber's span before its worker resumes it, and the spans the fiber held entered
/// inside it when it switched out.
#[inline(always)]
pub(crate) fn enter(span: &FiberSpan) -> Entered<'_> {
    #[cfg(feature = "tracing")]
    {
        let entered = span.span.enter();
        if tracing_active() {
            let mut held = span.held.borrow_mut();
            if !held.is_empty() {
                reenter(&mut held);
            }
        }
        Entered {
            fiber: span,
            _entered: entered,
        }
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        Entered {
            _span: std::marker::PhantomData,
        }
    }
}

/// The fiber switched out: records how (a `park` event with its reason, `yield`, or `finish`)
/// in its current span, exits the spans it holds entered inside its own (kept for the next
/// [`enter`]), then its own span.
#[inline(always)]
pub(crate) fn switched_out(entered: Entered<'_>, suspended: Option<Suspend>, task: &Task) {
    #[cfg(feature = "tracing")]
    {
        match suspended {
            Some(Suspend::Yield) => tracing::trace!(target: "fiber::task", "yield"),
            Some(how) => {
                let word = task.wait.load(std::sync::atomic::Ordering::Relaxed);
                tracing::trace!(target: "fiber::task", reason = park_reason(how, word), "park")
            }
            None => tracing::trace!(target: "fiber::task", "finish"),
        }
        if suspended.is_some() && tracing_active() {
            stash_held(entered.fiber);
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (suspended, task);
    // `entered` exits the fiber's span here, after the event.
    let _entered = entered;
}

/// Why the fiber stopped running, for the `park` event: the wait it described (`word`, its
/// `Task::wait`, src/task/reason.rs: `mutex`, `channel_recv`, `fd_read`, ...), else what the
/// switch-out knows (its [`Suspend`] kind).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn park_reason(how: Suspend, word: u64) -> &'static str {
    if let Some(name) = super::reason::kind_name(super::reason::kind_of(word)) {
        return name;
    }
    match how {
        Suspend::Park => "park",
        Suspend::Wait => "sleep",
        Suspend::Yield => "yield",
    }
}

/// Fiber `id` was taken out of its park or sleep and requeued (by an unpark, a notifier, I/O
/// readiness, a timer or a cancellation): recorded in the waker's context.
#[inline(always)]
pub(crate) fn unparked(id: u64) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: "fiber::task", { fiber.id = id }, "unpark");
    #[cfg(not(feature = "tracing"))]
    let _ = id;
}

/// A report of the runtime about itself (a watchdog's, a deadlock's): a warn-level event of
/// target `fiber::report` with the field `kind`, if a subscriber takes it; else (or without the
/// feature) a line on stderr, so that a report is never lost for want of a subscriber.
///
/// Out of line and cold: call sites in the worker loop must not change how the loop is inlined
/// (two `report_warn(.., &format!(..))` calls in the worker's cold paths cost the switch 4
/// instructions, by callgrind, through changed inlining). Called by the watchdog's monitor thread
/// (`monitor::watchdog`); the deadlock reports come with the fiber registry work.
#[cold]
#[inline(never)]
pub(crate) fn report_warn(kind: &'static str, text: &str) {
    #[cfg(feature = "tracing")]
    if tracing::event_enabled!(target: "fiber::report", tracing::Level::WARN) {
        tracing::warn!(target: "fiber::report", kind, "{text}");
        return;
    }
    eprintln!("fiber: {kind}: {text}");
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// Records the warn events it gets (level, target, fields); takes only those of `min` and
    /// more severe.
    struct Warns {
        min: Level,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    /// An event's level, target and fields.
    type Seen = (Level, String, Vec<(String, String)>);

    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl Subscriber for Warns {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            *meta.level() <= self.min
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            let meta = event.metadata();
            self.seen
                .lock()
                .unwrap()
                .push((*meta.level(), meta.target().to_owned(), fields.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_report_is_a_warn_event_with_its_kind() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = Warns {
            min: Level::WARN,
            seen: seen.clone(),
        };
        tracing::subscriber::with_default(subscriber, || {
            super::report_warn("watchdog", "worker 1 stuck for 2 s");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (level, target, fields) = &seen[0];
        assert_eq!(*level, Level::WARN);
        assert_eq!(target, "fiber::report");
        assert!(
            fields.contains(&("kind".into(), "\"watchdog\"".into())),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("message".into(), "worker 1 stuck for 2 s".into())),
            "{fields:?}"
        );
    }

    #[test]
    fn a_report_no_subscriber_takes_goes_to_stderr_not_to_the_subscriber() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Takes errors only: the warn is not enabled, so it goes to stderr.
        let subscriber = Warns {
            min: Level::ERROR,
            seen: seen.clone(),
        };
        tracing::subscriber::with_default(subscriber, || {
            super::report_warn("deadlock", "(a test report: ignore)");
        });
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn without_a_subscriber_the_fiber_span_is_disabled() {
        // No subscriber on this thread (the default no-op one): the span costs nothing more.
        let span =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                super::spawn_span(7, Some("x"), "fiber", std::panic::Location::caller())
            });
        assert!(span.span.is_none());
    }
}
