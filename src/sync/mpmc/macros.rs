//! The `select!` macro (exported at the crate root).

/// Waits on several channel operations at once and runs the arm of the first that completes.
///
/// ```
/// use std::time::Duration;
/// use fiber::sync::mpmc;
///
/// let (tx1, rx1) = mpmc::unbounded::<i32>();
/// let (tx2, rx2) = mpmc::bounded::<&str>(1);
/// tx1.send(7).unwrap();
/// let got = fiber::select! {
///     recv(rx1) -> msg => msg.unwrap(),
///     send(tx2, "hi") -> res => { res.unwrap(); 0 }
///     timeout(Duration::from_millis(10)) => -1,
/// };
/// assert!(got == 7 || got == 0);
/// ```
///
/// Arms, separated by commas (optional after a `{ block }`):
/// - `recv(receiver) -> pattern => body`: `pattern` binds `Result<T, RecvError>`; `Err` means
///   the channel is empty and disconnected.
/// - `send(sender, value) -> pattern => body`: `pattern` binds `Result<(), SendError<T>>`;
///   `value` is evaluated once, up front, and given back inside `SendError` on disconnection.
/// - at most one of `timeout(duration) => body` (runs if nothing completes in time) or
///   `default => body` (runs at once if nothing is ready).
///
/// Receivers and senders of `fiber::sync::mpmc` and `fiber::sync::mpsc` can be mixed. When several
/// arms are ready, one is chosen at random (fairness). Up to 64 channel arms.
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_parse!(() () $($tokens)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // Done.
    (($($arms:tt)*) ($($else:tt)*)) => {
        $crate::__select_expand!(($($arms)*) ($($else)*))
    };
    // Separator.
    (($($arms:tt)*) ($($else:tt)*) , $($rest:tt)*) => {
        $crate::__select_parse!(($($arms)*) ($($else)*) $($rest)*)
    };
    // recv arm.
    (($($arms:tt)*) ($($else:tt)*) recv($rx:expr) -> $pat:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            ($($arms)* [recv (__chan __val __slot __ix) ($rx) () ($pat) ($body)]) ($($else)*) $($rest)*
        )
    };
    (($($arms:tt)*) ($($else:tt)*) recv($rx:expr) -> $pat:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(
            ($($arms)* [recv (__chan __val __slot __ix) ($rx) () ($pat) ($body)]) ($($else)*) $($($rest)*)?
        )
    };
    // send arm.
    (($($arms:tt)*) ($($else:tt)*) send($tx:expr, $v:expr) -> $pat:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            ($($arms)* [send (__chan __val __slot __ix) ($tx) ($v) ($pat) ($body)]) ($($else)*) $($rest)*
        )
    };
    (($($arms:tt)*) ($($else:tt)*) send($tx:expr, $v:expr) -> $pat:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(
            ($($arms)* [send (__chan __val __slot __ix) ($tx) ($v) ($pat) ($body)]) ($($else)*) $($($rest)*)?
        )
    };
    // timeout / default arms.
    (($($arms:tt)*) () timeout($dur:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(($($arms)*) (timeout ($dur) ($body)) $($rest)*)
    };
    (($($arms:tt)*) () timeout($dur:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(($($arms)*) (timeout ($dur) ($body)) $($($rest)*)?)
    };
    (($($arms:tt)*) () default => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(($($arms)*) (default () ($body)) $($rest)*)
    };
    (($($arms:tt)*) () default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(($($arms)*) (default () ($body)) $($($rest)*)?)
    };
    (($($arms:tt)*) ($($else:tt)+) timeout $($rest:tt)*) => {
        compile_error!("select!: only one `timeout` or `default` arm is allowed")
    };
    (($($arms:tt)*) ($($else:tt)+) default $($rest:tt)*) => {
        compile_error!("select!: only one `timeout` or `default` arm is allowed")
    };
    (($($arms:tt)*) ($($else:tt)*) $($rest:tt)+) => {
        compile_error!("select!: expected `recv(rx) -> pat => body`, `send(tx, value) -> pat => body`, `timeout(duration) => body` or `default => body`")
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_expand {
    (() ($($else:tt)*)) => {
        compile_error!("select!: needs at least one `recv` or `send` arm")
    };
    (($([$kind:ident ($chan:ident $val:ident $slot:ident $ix:ident) ($end:expr) ($($v:expr)?) ($pat:pat) ($body:expr)])+)
     ($($else_kind:ident ($($dur:expr)?) ($else_body:expr))?)) => {{
        let mut __n = 0usize;
        $(
            let $chan = &$end;
            let $val = $crate::__select_value!($kind $($v)?);
            let mut $slot = ::core::option::Option::None;
            let $ix = __n;
            __n += 1;
        )+
        let __arms = [$($crate::__select_arm!($kind $chan $val)),+];
        #[allow(unused_mut, unused_assignments)]
        let mut __deadline: ::core::option::Option<::std::time::Instant> = ::core::option::Option::None;
        #[allow(unused_mut, unused_assignments)]
        let mut __nonblocking = false;
        $( $crate::__select_else_setup!($else_kind ($($dur)?) __deadline __nonblocking); )?
        let mut __notified = 0u64;
        let __done: usize = 'select: loop {
            let __start = $crate::sync::mpmc::__select_start(__n);
            for __k in 0..__n {
                let __j = (__start + __k) % __n;
                $(
                    if __j == $ix && $crate::__select_try!($kind $chan $val $slot) {
                        break 'select $ix;
                    }
                )+
            }
            if __nonblocking {
                break 'select usize::MAX;
            }
            let __wait = $crate::sync::mpmc::__select_wait(&__arms, __deadline);
            __notified = __wait.notified;
            if let ::core::option::Option::Some(__k) = __wait.claimed {
                // A zero-capacity partner completed this arm: complete exactly it.
                $(
                    if __k == $ix {
                        $crate::__select_claimed!($kind $val $slot);
                    }
                )+
                break 'select __k;
            }
            if __wait.timed_out {
                break 'select usize::MAX;
            }
        };
        $crate::sync::mpmc::__select_finish(&__arms, __notified, __done);
        $(
            if __done == $ix {
                let $pat = $slot.unwrap();
                $body
            } else
        )+
        {
            $crate::__select_else_body!($($else_body)?)
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_value {
    (recv) => {
        $crate::sync::mpmc::__Packet::new(::core::option::Option::None)
    };
    (send $v:expr) => {
        $crate::sync::mpmc::__Packet::new(::core::option::Option::Some($v))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_arm {
    (recv $chan:ident $val:ident) => {
        $crate::sync::mpmc::__RecvEnd::__arm($chan, &$val)
    };
    (send $chan:ident $val:ident) => {
        $crate::sync::mpmc::__SendEnd::__arm($chan, &$val)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_claimed {
    (recv $val:ident $slot:ident) => {
        $slot = ::core::option::Option::Some(::core::result::Result::Ok(
            $val.take().expect("a claimed recv arm holds the message"),
        ));
    };
    (send $val:ident $slot:ident) => {
        $slot = ::core::option::Option::Some(::core::result::Result::Ok(()));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_try {
    (recv $chan:ident $val:ident $slot:ident) => {
        match $crate::sync::mpmc::__RecvEnd::__try_recv($chan) {
            ::core::result::Result::Ok(__m) => {
                $slot = ::core::option::Option::Some(::core::result::Result::Ok(__m));
                true
            }
            ::core::result::Result::Err($crate::sync::mpmc::TryRecvError::Disconnected) => {
                $slot = ::core::option::Option::Some(::core::result::Result::Err(
                    $crate::sync::mpmc::RecvError,
                ));
                true
            }
            ::core::result::Result::Err($crate::sync::mpmc::TryRecvError::Empty) => false,
        }
    };
    (send $chan:ident $val:ident $slot:ident) => {
        match $crate::sync::mpmc::__SendEnd::__try_send(
            $chan,
            $val.take().expect("an unsent send arm holds its message"),
        ) {
            ::core::result::Result::Ok(()) => {
                $slot = ::core::option::Option::Some(::core::result::Result::Ok(()));
                true
            }
            ::core::result::Result::Err($crate::sync::mpmc::TrySendError::Full(__m)) => {
                $val.put(__m);
                false
            }
            ::core::result::Result::Err($crate::sync::mpmc::TrySendError::Disconnected(__m)) => {
                $slot = ::core::option::Option::Some(::core::result::Result::Err(
                    $crate::sync::mpmc::SendError(__m),
                ));
                true
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_else_setup {
    (timeout ($dur:expr) $deadline:ident $nonblocking:ident) => {
        $deadline = ::std::time::Instant::now().checked_add($dur);
    };
    (default () $deadline:ident $nonblocking:ident) => {
        $nonblocking = true;
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_else_body {
    () => {
        unreachable!("select!: no arm completed")
    };
    ($body:expr) => {
        $body
    };
}
