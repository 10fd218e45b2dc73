//! Harness figures formatted for tables.

use std::time::Duration;

/// `d` in milliseconds with one decimal, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A latency: whole microseconds below a millisecond, else milliseconds with two decimals.
pub fn latency(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}us", d.as_micros())
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    }
}
