//! OS-specific functionality, shaped like `std::os`.

/// Unix-specific functionality.
pub mod unix {
    /// Unix domain sockets, as `std::os::unix::net`, parking the fiber instead of the thread.
    pub mod net;
}
