//! Names the fiber in panic reports.
//!
//! std's panic message names the OS thread (`thread 'fiber-worker-0' panicked at ...`), which for
//! a fiber is only its carrier. The first runtime built installs, once per process, a hook that
//! prints which fiber panicked and then calls the hook that was there before (std's, or the
//! user's), so nothing else of the report changes. A hook the user installs later replaces it.
use std::sync::Once;

pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            crate::task::context::note_panic();
            if crate::task::park::is_fiber() {
                let fiber = crate::task::park::current();
                match fiber.name() {
                    Some(name) => eprintln!(
                        "note: the panic below is in fiber '{name}' ({:?})",
                        fiber.id()
                    ),
                    None => eprintln!(
                        "note: the panic below is in an unnamed fiber ({:?})",
                        fiber.id()
                    ),
                }
            }
            previous(info);
        }));
    });
}
