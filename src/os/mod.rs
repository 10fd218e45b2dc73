//! OS-specific functionality, shaped like `std::os`.

/// Unix-specific functionality.
pub mod unix {
    /// Unix domain sockets, as `std::os::unix::net`, parking the fiber instead of the thread.
    pub mod net;
}

/// Linux-specific functionality.
#[cfg(target_os = "linux")]
pub mod linux {
    /// Linux's socket extensions, as `std::os::linux::net`: `SocketAddrExt` makes and reads
    /// abstract Unix addresses, which [`crate::os::unix::net`]'s `*_addr` calls take.
    pub mod net {
        pub use std::os::linux::net::SocketAddrExt;
    }
}
