//! Smoke tests of `examples/metrics_http.rs` (a scrape in the Prometheus text format, a 404, a
//! bounded run that exits) and `examples/stuck.rs` (the watchdog's reports, and the example ends
//! on its own).
mod pattern_support;
mod support;

use std::io::{Read, Write};
use std::time::Duration;

use pattern_support::{run_example, start_server};

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    response
}

#[test]
fn metrics_http_serves_the_prometheus_text_and_exits_after_its_requests() {
    support::watchdog(300, || {
        let (mut child, line) = start_server("metrics_http", &["--port", "0", "--requests", "2"]);
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line}"))
            .to_string();
        let response = get(&addr, "/metrics");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        let mut types = 0;
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                types += 1;
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                assert!(body.contains(&format!("# HELP {name} ")), "{name}");
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(series.starts_with("fiber_"), "{line}");
                value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
            }
        }
        assert!(types >= 10, "{body}");
        assert!(body.contains("\nfiber_fibers_spawned_total "), "{body}");
        let other = get(&addr, "/");
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        // Two requests served: it exits by itself.
        let status = child.0.wait().expect("wait");
        assert!(status.success(), "{status}");
    });
}

#[test]
fn stuck_reports_the_cpu_loop_and_the_std_lock_and_ends() {
    support::watchdog(300, || {
        let run = run_example("stuck", &[], 240);
        assert_eq!(run.code, Some(0));
        assert!(
            run.stderr.contains("\"cpu-loop\" has held worker"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.contains("100 of 100 fibers"), "{}", run.stdout);
        if cfg!(feature = "hook") {
            assert!(run.stdout.contains("std lock: reported \"asks-std-lock\""));
        }
    });
}
