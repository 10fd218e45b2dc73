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
//! This module names nothing above `coro`: the callers pass what they know (ids, names, the
//! suspension kind), so the task header can hold a [`FiberSpan`] without a layering cycle.
use crate::coro::Suspend;

/// A fiber's span, stored in its task (`Task::span`). Zero-sized without the feature.
pub(crate) struct FiberSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl FiberSpan {
    /// No span (the task's value until spawn sets it; also what a disabled span is).
    #[inline(always)]
    pub(crate) fn none() -> FiberSpan {
        FiberSpan {
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
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

/// Creates the span of a new fiber, with the caller's location (the public spawn functions are
/// `#[track_caller]` down to here), and records the `spawn` event in the spawner's context.
/// The span's parent is the spawner's current span, as tokio's task spans.
#[cfg(feature = "tracing")]
#[track_caller]
#[inline]
pub(crate) fn spawn_span(id: u64, name: Option<&str>, kind: &'static str) -> FiberSpan {
    let loc = std::panic::Location::caller();
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
    FiberSpan { span }
}

/// See the feature's version.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn spawn_span(_id: u64, _name: Option<&str>, _kind: &'static str) -> FiberSpan {
    FiberSpan {}
}

/// Runs `f` (one resume of the fiber, and the worker's look at how it ended) inside the fiber's
/// span: entered before the switch in, exited after the switch out, on the worker's thread.
#[inline(always)]
pub(crate) fn in_span<R>(span: &FiberSpan, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "tracing")]
    {
        span.span.in_scope(f)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        f()
    }
}

/// Why the fiber stopped running, for the `park` event: what the switch-out knows (its
/// [`Suspend`] kind). The one place that names a park's reason, to be given the fiber's recorded
/// wait reason once there is one.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn park_reason(how: Suspend) -> &'static str {
    match how {
        Suspend::Park => "park",
        Suspend::Wait => "sleep",
        Suspend::Yield => "yield",
    }
}

/// The fiber just switched out with `how` (called by its worker inside [`in_span`]): a `park`
/// event with its reason, or a `yield` event.
#[inline(always)]
pub(crate) fn suspended(how: Suspend) {
    #[cfg(feature = "tracing")]
    match how {
        Suspend::Yield => tracing::trace!(target: "fiber::task", "yield"),
        _ => tracing::trace!(target: "fiber::task", reason = park_reason(how), "park"),
    }
    #[cfg(not(feature = "tracing"))]
    let _ = how;
}

/// The fiber's body returned (called by its worker inside [`in_span`]).
#[inline(always)]
pub(crate) fn finished() {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: "fiber::task", "finish");
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
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn report_warn(kind: &'static str, text: &str) {
    #[cfg(feature = "tracing")]
    if tracing::event_enabled!(target: "fiber::report", tracing::Level::WARN) {
        tracing::warn!(target: "fiber::report", kind, "{text}");
        return;
    }
    eprintln!("fiber: {kind}: {text}");
}
