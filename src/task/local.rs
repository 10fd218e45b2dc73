//! Fiber-local storage: `fiber_local!` and [`LocalKey`].
//!
//! Each fiber has its own map from key to value, created on first access and dropped when the fiber
//! finishes (on its own stack, so destructors may still use the fiber API). On a plain OS thread the
//! same keys use a per-thread map, so `fiber_local!` there behaves like `thread_local!`.
use std::any::Any;
use std::cell::{RefCell, UnsafeCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::AccessError;

/// Values of one fiber (or thread), indexed by key id. Boxed so that references stay put while the
/// map grows. The map itself is boxed too and made on first use: most fibers never use a
/// fiber-local, and every task carries this field (8 bytes instead of a `Vec`'s 24).
#[derive(Default)]
pub(crate) struct LocalMap {
    slots: UnsafeCell<Option<Box<Slots>>>,
}

type Slots = Vec<Option<Box<dyn Any>>>;

impl LocalMap {
    /// Returns the value for `id`, creating it with `init` first if absent.
    ///
    /// # Safety
    /// Only the owner of the map (the fiber, or thread) calls this, and the map must outlive the
    /// returned reference; values are never removed except by [`LocalMap::take_all`].
    unsafe fn get_or_init<T: 'static>(&self, id: usize, init: fn() -> T) -> *const T {
        {
            // SAFETY: single owner (caller's contract); no reference into the Vec outlives this block.
            let slots = unsafe { &*self.slots.get() };
            if let Some(Some(value)) = slots.as_ref().and_then(|s| s.get(id)) {
                return value
                    .downcast_ref::<T>()
                    .expect("fiber-local key type mismatch") as *const T;
            }
        }
        // `init` may itself access fiber locals: no borrow of the Vec is held while it runs.
        let value: Box<dyn Any> = Box::new(init());
        // SAFETY: as above; the Vec is borrowed only within this block.
        let slots = unsafe { &mut *self.slots.get() }.get_or_insert_with(Box::default);
        if slots.len() <= id {
            slots.resize_with(id + 1, || None);
        }
        let slot = slots[id].get_or_insert(value);
        slot.downcast_ref::<T>()
            .expect("fiber-local key type mismatch") as *const T
    }

    /// Drops every value (repeatedly, since a destructor may create new ones; bounded).
    pub(crate) fn clear(&self) {
        for _ in 0..8 {
            // SAFETY: called by the owner when its fiber finishes; no reference into the map is live.
            let Some(taken) = (unsafe { &mut *self.slots.get() }).take() else {
                return; // the common case: the fiber never used a fiber-local
            };
            if taken.iter().all(Option::is_none) {
                return;
            }
            drop(taken);
        }
    }
}

thread_local! {
    static THREAD_LOCALS: RefCell<Option<Box<LocalMap>>> = const { RefCell::new(None) };
}

/// A key to a fiber-local value, made by [`fiber_local!`](crate::fiber_local).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    id: AtomicUsize,
}

static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey {
            init,
            id: AtomicUsize::new(0),
        }
    }

    fn id(&self) -> usize {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id - 1;
        }
        let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh - 1,
            Err(won) => won - 1,
        }
    }

    /// Runs `f` with a reference to this fiber's value, initialising it first if needed.
    ///
    /// On a plain OS thread, the value is per thread.
    ///
    /// # Panics
    /// On a plain OS thread whose thread-locals are being destroyed, as `std`'s `LocalKey::with`.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        self.try_with(f)
            .expect("cannot access a fiber-local value during or after its thread's destruction")
    }

    /// As [`with`](Self::with), but `Err` instead of a panic where the value cannot be reached,
    /// as `std`'s `LocalKey::try_with`: only on a plain OS thread whose thread-locals are being
    /// destroyed. A fiber's values are dropped on its own stack, so inside a fiber it is always
    /// `Ok`.
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        let id = self.id();
        if let Some(map) = running_fiber_map() {
            // SAFETY: the map belongs to the running fiber, which is the only one that touches it
            // (the single-owner contract of `get_or_init`).
            let ptr = unsafe { map.get_or_init(id, self.init) };
            // SAFETY: the value lives in the fiber's map, which outlives this call; values are only
            // dropped when the fiber finishes.
            let value = unsafe { &*ptr };
            return Ok(f(value));
        }
        let map: *const LocalMap = THREAD_LOCALS.try_with(|cell| {
            let mut cell = cell.borrow_mut();
            &**cell.get_or_insert_with(Default::default) as *const LocalMap
        })?;
        // SAFETY: the thread's map is boxed, owned by this thread and never replaced once created;
        // it lives until the thread exits, after this call returns.
        let map = unsafe { &*map };
        // SAFETY: only this thread touches its map (the single-owner contract of `get_or_init`).
        let ptr = unsafe { map.get_or_init(id, self.init) };
        // SAFETY: the value lives in the thread's map, which outlives this call.
        let value = unsafe { &*ptr };
        Ok(f(value))
    }
}

/// Declares fiber-local keys: `fiber_local! { static NAME: Type = init; }`.
///
/// Each fiber sees its own value, created on first use; on a plain OS thread the value is per
/// thread. Use `Cell`/`RefCell` inside for mutation, as with `thread_local!`.
///
/// ```
/// use std::cell::Cell;
/// fiber::fiber_local! { static COUNT: Cell<u32> = Cell::new(0); }
/// COUNT.with(|c| c.set(c.get() + 1));
/// assert_eq!(COUNT.with(|c| c.get()), 1);
/// ```
#[macro_export]
macro_rules! fiber_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$ty> = $crate::LocalKey::new(|| $init);
        $crate::fiber_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$ty> = $crate::LocalKey::new(|| $init);
    };
}

/// The running fiber's local map, if the caller is a fiber.
fn running_fiber_map() -> Option<&'static LocalMap> {
    let task = super::context::task_ptr()?;
    // SAFETY: the pointer is the task being run on this thread; the worker holds it alive while
    // it runs, and the reference is only used during the calling fiber's own code. The 'static
    // lifetime never escapes `LocalKey::with`, which returns before the fiber finishes.
    Some(unsafe { &task.as_ref().locals })
}
