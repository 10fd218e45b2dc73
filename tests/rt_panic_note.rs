//! A panic inside a fiber is reported with the fiber's name (the runtime's panic hook adds a
//! note before std's message). Checked in a child process, whose stderr is not captured by the
//! test harness.
mod support;

use std::process::Command;

const CHILD: &str = "FIBER_TEST_PANIC_NOTE_CHILD";

#[test]
#[ignore = "child-process entry point, run by the other test in this file"]
fn child_panics_in_a_named_fiber() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = fiber::Runtime::builder()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let h = fiber::Builder::new()
        .name("cruncher".into())
        .spawn_on(&rt, || panic!("deliberate"))
        .expect("spawn");
    assert!(h.join().is_err());
}

#[test]
fn panic_report_names_the_fiber() {
    let out = support::watchdog(60, || {
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "child_panics_in_a_named_fiber",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run child")
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stderr}");
    assert!(
        stderr.contains("note: the panic below is in fiber 'cruncher'"),
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("deliberate"),
        "std's own message must follow; stderr:\n{stderr}"
    );
}
