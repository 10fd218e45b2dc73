//! Progress bars on stderr (indicatif) for the stages of the demos.

use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr (indicatif): `name`, the elapsed time, a bar with its position out of
/// `len`, and a message (cut to the terminal's width). Hidden unless `show` and stderr is a
/// terminal.
pub fn bar(name: &str, len: u64, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let style =
        ProgressStyle::with_template("{prefix:<15} {elapsed:>3} [{bar:20}] {pos}/{len} {wide_msg}")
            .expect("progress template")
            .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(len), target)
        .with_style(style)
        .with_prefix(name.to_owned());
    if !bar.is_hidden() {
        // Keeps the elapsed time moving while the position does not.
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}

/// Runs one step of a stage: shows `name` on `bar`, runs `f`, advances the bar by one.
pub fn step<T>(bar: &ProgressBar, name: &str, f: impl FnOnce() -> T) -> T {
    bar.set_message(name.to_owned());
    let r = f();
    bar.inc(1);
    r
}
