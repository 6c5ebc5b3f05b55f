//! The logging macros: `quill::log!`, `quill::info!` and friends, which take a logger, a message
//! and `key = value` pairs (any `serde::Serialize` value, no format string). Keys are identifiers
//! or string literals (for dotted names). Values are evaluated only if some route accepts the
//! level for the logger's facility.

/// Logs an entry at `level` through `logger`, with `key = value` fields.
///
/// ```
/// use quill::logging::{Level, Logger};
///
/// let log = Logger::local("myapp.api");
/// let user = serde_json::json!({"id": 7, "plan": "pro"});
/// // Without a global dispatcher (see `quill::logging::init`) this logs nothing.
/// quill::log!(log, Level::Notice, "signed in", user = user, "http.status" = 200, ok = true);
/// ```
#[macro_export]
macro_rules! log {
    ($logger:expr, $level:expr, $message:expr $(, $($fields:tt)*)?) => {{
        let __quill_logger: &$crate::logging::Logger = &$logger;
        let __quill_level: $crate::logging::Level = $level;
        if __quill_logger.enabled(__quill_level) {
            #[allow(unused_mut)]
            let mut __quill_fields: ::std::vec::Vec<$crate::logging::Field> =
                ::std::vec::Vec::with_capacity(8);
            $($crate::__quill_fields!(__quill_fields; $($fields)*);)?
            __quill_logger.emit(__quill_level, $message, __quill_fields);
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __quill_fields {
    ($fields:ident;) => {};
    ($fields:ident; $key:ident = $value:expr $(, $($rest:tt)*)?) => {
        $fields.push($crate::logging::Field::new(::std::stringify!($key), &$value));
        $($crate::__quill_fields!($fields; $($rest)*);)?
    };
    ($fields:ident; $key:literal = $value:expr $(, $($rest:tt)*)?) => {
        $fields.push($crate::logging::Field::new($key, &$value));
        $($crate::__quill_fields!($fields; $($rest)*);)?
    };
}

/// Logs at [`Level::Emergency`](crate::logging::Level::Emergency); see [`log!`](crate::log).
#[macro_export]
macro_rules! emergency {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Emergency, $($rest)+) };
}

/// Logs at [`Level::Alert`](crate::logging::Level::Alert); see [`log!`](crate::log).
#[macro_export]
macro_rules! alert {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Alert, $($rest)+) };
}

/// Logs at [`Level::Critical`](crate::logging::Level::Critical); see [`log!`](crate::log).
#[macro_export]
macro_rules! critical {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Critical, $($rest)+) };
}

/// Logs at [`Level::Error`](crate::logging::Level::Error); see [`log!`](crate::log).
#[macro_export]
macro_rules! error {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Error, $($rest)+) };
}

/// Logs at [`Level::Warning`](crate::logging::Level::Warning); see [`log!`](crate::log).
#[macro_export]
macro_rules! warning {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Warning, $($rest)+) };
}

/// Logs at [`Level::Notice`](crate::logging::Level::Notice); see [`log!`](crate::log).
#[macro_export]
macro_rules! notice {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Notice, $($rest)+) };
}

/// Logs at [`Level::Info`](crate::logging::Level::Info); see [`log!`](crate::log).
///
/// ```
/// let log = quill::logging::Logger::local("myapp");
/// quill::info!(log, "cache warmed", entries = 1200u32, "cache.name" = "users");
/// ```
#[macro_export]
macro_rules! info {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Info, $($rest)+) };
}

/// Logs at [`Level::Debug`](crate::logging::Level::Debug); see [`log!`](crate::log).
#[macro_export]
macro_rules! debug {
    ($logger:expr, $($rest:tt)+) => { $crate::log!($logger, $crate::logging::Level::Debug, $($rest)+) };
}
