//! Waiting with a deadline: the one park loop that I/O readiness and every sync primitive use.
use std::time::Instant;

use crate::task::wait::{Node, WaitResult};

/// it must take the owner's lock and `remove` the node, returning true if the node was still
/// queued (then this returns `TimedOut`); if a notifier got there first it returns false and the
/// token (now visible) is returned instead. This is the one park loop of
/// the crate: `sync::waitq`, the channels and the fds' readiness slots all wait here.
pub(crate) fn park_node(
    node: &Node,
    deadline: Option<Instant>,
    mut expire: impl FnMut() -> bool,
) -> WaitResult {
    loop {
        if let Some(token) = node.token() {
            return WaitResult::Notified(token);
        }
        match deadline {
            None => crate::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now < deadline {
                    crate::park_timeout(deadline - now);
                } else if expire() {
                    return WaitResult::TimedOut;
                }
            }
        }
    }
}
