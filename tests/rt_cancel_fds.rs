//! Cancelling fibers blocked in I/O gives back every descriptor they held (issue 15): the count
//! of open fds returns to its baseline. Alone in its binary, so that no other test opens or
//! closes fds meanwhile.
mod support;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{eventually, runtime, watchdog, DropCounter};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn cancelled_io_waits_close_every_fd() {
    watchdog(60, || {
        let rt = runtime(2, "cancel-fds");
        // The runtime's own fds (pollers, wakers) exist before the baseline.
        rt.block_on(|| fiber::sleep(Duration::from_millis(1)));
        let baseline = open_fds();
        let n = 300;
        let waiting = Arc::new(AtomicUsize::new(0));
        let drops = DropCounter::new();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (waiting, guard) = (waiting.clone(), drops.guard());
                rt.spawn(move || {
                    let _guard = guard;
                    let listener = fiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let addr = listener.local_addr().unwrap();
                    match i % 3 {
                        // Accept on a listener nobody connects to.
                        0 => {
                            waiting.fetch_add(1, Ordering::SeqCst);
                            let _ = listener.accept();
                        }
                        // A fiber::net read from a peer that never writes.
                        1 => {
                            let mut client = fiber::net::TcpStream::connect(addr).unwrap();
                            let (_server, _) = listener.accept().unwrap();
                            waiting.fetch_add(1, Ordering::SeqCst);
                            let _ = client.read(&mut [0; 16]);
                        }
                        // An unchanged std::net read (hooked where the hooks are built in).
                        _ => {
                            let mut client = std::net::TcpStream::connect(addr).unwrap();
                            let (_server, _) = listener.accept().unwrap();
                            waiting.fetch_add(1, Ordering::SeqCst);
                            if cfg!(feature = "hook") {
                                let _ = client.read(&mut [0; 16]);
                            } else {
                                // Without the hooks a std read would hold the worker.
                                fiber::sleep(Duration::from_secs(3600));
                            }
                        }
                    }
                })
            })
            .collect();
        assert!(eventually(30, || waiting.load(Ordering::SeqCst) == n));
        assert!(
            open_fds() >= baseline + n,
            "the waiting fibers hold their sockets"
        );
        // Let the last counted ones reach their wait.
        std::thread::sleep(Duration::from_millis(50));
        for h in &handles {
            h.cancel();
        }
        for h in handles {
            // A hooked std read may return ECANCELED as an error (then the fiber finishes).
            let _ = h.join();
        }
        assert_eq!(drops.get(), n, "every fiber's destructors ran");
        let after = open_fds();
        assert_eq!(
            after, baseline,
            "fds before {baseline}, after the cancels {after}"
        );
    });
}
