//! Harness figures formatted for tables.

use std::time::Duration;

/// `d` in milliseconds with one decimal, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
