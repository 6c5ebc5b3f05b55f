//! A `log` crate backend: `log::info!` and friends become entries for a dispatcher (target →
//! facility, `Error`→3, `Warn`→4, `Info`→6, `Debug`/`Trace`→7, plus `file`/`line` fields and
//! the record's key-values, typed).
//! Inside a `tracing` span (with a [`GelfLayer`](super::GelfLayer) installed) the span's fields,
//! such as `txn_id`, are added too. No I/O here: entries go to the dispatcher's queue.

use std::borrow::Cow;
use std::fmt;

use super::entry::{Entry, Facility, Field};
use super::tracing_layer::current_span_fields;
use super::worker::Dispatcher;
use super::{Error, GLOBAL, Level, facility_from_target};

/// Routes `log` records through a [`Dispatcher`] (the global one unless given).
///
/// ```no_run
/// // With `init(config.capture_log())` this happens for you.
/// quill::logging::LogBackend::new().install()?;
/// # Ok::<(), quill::logging::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct LogBackend {
    dispatcher: Option<Dispatcher>,
}

impl fmt::Debug for LogBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBackend")
            .field("global", &self.dispatcher.is_none())
            .finish()
    }
}

impl LogBackend {
    /// A backend logging through the process-wide dispatcher.
    pub fn new() -> LogBackend {
        LogBackend { dispatcher: None }
    }

    /// A backend logging through `dispatcher`.
    pub fn with_dispatcher(dispatcher: &Dispatcher) -> LogBackend {
        LogBackend {
            dispatcher: Some(dispatcher.clone()),
        }
    }

    /// Makes this the `log` crate's logger (once per process) and lets every level through to
    /// the routes, which do the filtering.
    pub fn install(self) -> Result<(), Error> {
        log::set_boxed_logger(Box::new(self)).map_err(|_| Error::LogBackendTaken)?;
        log::set_max_level(log::LevelFilter::Trace);
        Ok(())
    }

    fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.as_ref().or_else(|| GLOBAL.get())
    }
}

/// Collects `log`'s structured key-values (`log::info!(user = 5; "...")`), keeping numbers
/// and booleans typed.
struct KeyValues<'a>(&'a mut Vec<Field>);

impl<'kvs> log::kv::VisitSource<'kvs> for KeyValues<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let value = if let Some(u) = value.to_u64() {
            serde_json::Value::from(u)
        } else if let Some(i) = value.to_i64() {
            serde_json::Value::from(i)
        } else if let Some(f) = value.to_f64() {
            serde_json::Value::from(f)
        } else if let Some(b) = value.to_bool() {
            serde_json::Value::from(b)
        } else if let Some(s) = value.to_borrowed_str() {
            serde_json::Value::from(s)
        } else {
            serde_json::Value::from(value.to_string())
        };
        self.0
            .push(Field::from_value(key.as_str().to_owned(), value));
        Ok(())
    }
}

fn level_from_log(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug | log::Level::Trace => Level::Debug,
    }
}

impl log::Log for LogBackend {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.dispatcher().is_some_and(|d| {
            d.enabled(
                &facility_from_target(metadata.target()),
                level_from_log(metadata.level()),
            )
        })
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(dispatcher) = self.dispatcher() else {
            return;
        };
        let level = level_from_log(record.level());
        let facility = facility_from_target(record.target()).into_owned();
        if !dispatcher.enabled(&facility, level) {
            return;
        }
        let message: Cow<'static, str> = match record.args().as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(record.args().to_string()),
        };
        let mut fields = Vec::new();
        current_span_fields(&mut fields);
        if let Some(file) = record.file() {
            fields.push(Field::new("file", file));
        }
        if let Some(line) = record.line() {
            fields.push(Field::new("line", &line));
        }
        let _ = record.key_values().visit(&mut KeyValues(&mut fields));
        dispatcher.send(Entry::from_parts(
            Facility::Shared(facility.into()),
            level,
            message,
            fields,
            None,
        ));
    }

    fn flush(&self) {
        if let Some(d) = self.dispatcher() {
            let _ = d.flush();
        }
    }
}
