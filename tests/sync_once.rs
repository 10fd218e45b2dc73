//! fiber::sync: OnceLock / LazyLock tests (OS threads and, where the runtime exists, fibers).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fiber::sync::{LazyLock, OnceLock};
use support::{fibers, mixed, threads, watchdog};

#[test]
fn init_runs_once_others_wait() {
    watchdog(10, || {
        for _ in 0..50 {
            let cell = OnceLock::new();
            let runs = AtomicUsize::new(0);
            threads(8, |_| {
                let v = cell.get_or_init(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    42
                });
                assert_eq!(*v, 42);
            });
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    });
}

#[test]
fn panic_in_init_lets_another_try() {
    let cell = OnceLock::new();
    let r = std::panic::catch_unwind(|| {
        cell.get_or_init(|| -> i32 { panic!("init failed") });
    });
    assert!(r.is_err());
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 7), 7);
    assert_eq!(cell.set(8), Err(8));
}

#[test]
fn set_get_take_wait() {
    watchdog(10, || {
        let mut cell = OnceLock::new();
        assert!(cell.get().is_none());
        assert!(cell.set(String::from("a")).is_ok());
        assert_eq!(cell.get().map(|s| s.as_str()), Some("a"));
        assert_eq!(cell.take().as_deref(), Some("a"));
        assert!(cell.get().is_none());
        let cell = OnceLock::new();
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(*cell.wait(), 5));
            std::thread::sleep(Duration::from_millis(10));
            cell.set(5).unwrap();
        });
        assert_eq!(cell.into_inner(), Some(5));
    });
}

#[test]
fn lazy_lock_static_and_poison() {
    static L: LazyLock<Vec<u32>> = LazyLock::new(|| vec![1, 2, 3]);
    threads(4, |_| assert_eq!(L.len(), 3));
    let bad: LazyLock<u32> = LazyLock::new(|| panic!("boom"));
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *bad)).is_err());
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *bad));
    let msg = again.unwrap_err();
    let msg = msg.downcast_ref::<&str>().copied().unwrap_or("");
    assert!(msg.contains("poisoned"), "{msg}");
}

#[test]
fn fibers_park_while_another_initialises() {
    watchdog(60, || {
        let cell = OnceLock::new();
        let runs = AtomicUsize::new(0);
        fibers(2, 1_000, |_| {
            let v = cell.get_or_init(|| {
                runs.fetch_add(1, Ordering::SeqCst);
                fiber::sleep(Duration::from_millis(20));
                7
            });
            assert_eq!(*v, 7);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn lazy_lock_mixed() {
    watchdog(60, || {
        let runs = AtomicUsize::new(0);
        let lazy = LazyLock::new(|| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            vec![1u8; 10]
        });
        mixed(500, 4, |_| assert_eq!(lazy.len(), 10));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}
