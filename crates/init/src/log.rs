//! Logging macros: one-line records through [`dynamod_sys::kmsg`], which formats into a fixed
//! buffer (no allocation) and writes to `/dev/kmsg` on a real machine or stderr elsewhere.

/// Logs at an explicit [`Level`](dynamod_sys::kmsg::Level).
macro_rules! log_at {
    ($level:ident, $($arg:tt)*) => {
        ::dynamod_sys::kmsg::log(::dynamod_sys::kmsg::Level::$level, format_args!($($arg)*))
    };
}

/// Something an operator must act on right now.
macro_rules! emerg {
    ($($arg:tt)*) => { log_at!(Emerg, $($arg)*) };
}

/// A failure.
macro_rules! error {
    ($($arg:tt)*) => { log_at!(Err, $($arg)*) };
}

/// Something unusual that init works around.
macro_rules! warn {
    ($($arg:tt)*) => { log_at!(Warning, $($arg)*) };
}

/// Normal progress.
macro_rules! info {
    ($($arg:tt)*) => { log_at!(Info, $($arg)*) };
}
