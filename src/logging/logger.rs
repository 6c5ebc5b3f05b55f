//! Loggers: a facility name, optional context fields and the dispatcher they log through
//! (the process-wide one unless given). Making an entry costs a clock read, the field captures
//! and one queue push; nothing here does I/O.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

use super::entry::{Entry, Facility, Field};
use super::tracing_layer::current_span_fields;
use super::worker::{Dispatcher, THRESHOLD_NONE};
use super::{GLOBAL, Level};

/// Threshold cache value meaning "not computed yet".
const THRESHOLD_UNKNOWN: u8 = u8::MAX;

/// A named source of log entries, usually one per module.
///
/// The facility is a dotted name (`myapp.api.handler`); routes select sinks by its prefix.
/// Whether a level is enabled is computed once from the routes and cached in the logger, so a
/// disabled call costs one atomic load.
///
/// ```
/// use quill::logging::Logger;
///
/// static LOG: Logger = Logger::local("myapp.api.handler");
///
/// fn handle(account: u64) {
///     let log = LOG.with("account_id", &account);
///     quill::info!(log, "handled", items = 3);
/// }
/// handle(42);
/// ```
pub struct Logger {
    facility: Facility,
    context: Option<Arc<[Field]>>,
    dispatcher: Option<Dispatcher>,
    /// `THRESHOLD_UNKNOWN`, or one more than the least severe accepted level (0: none).
    threshold: AtomicU8,
}

impl Logger {
    /// A logger for `facility` that logs through the process-wide dispatcher installed by
    /// [`init`](super::init). Usable in a `static`.
    pub const fn local(facility: &'static str) -> Logger {
        Logger {
            facility: Facility::Static(facility),
            context: None,
            dispatcher: None,
            threshold: AtomicU8::new(THRESHOLD_UNKNOWN),
        }
    }

    /// A logger for a facility name computed at run time.
    pub fn new(facility: impl Into<String>) -> Logger {
        Logger {
            facility: Facility::Shared(Arc::from(facility.into())),
            context: None,
            dispatcher: None,
            threshold: AtomicU8::new(THRESHOLD_UNKNOWN),
        }
    }

    /// A logger for `facility` bound to an explicit dispatcher instead of the global one.
    pub fn with_dispatcher(facility: impl Into<String>, dispatcher: &Dispatcher) -> Logger {
        let mut logger = Logger::new(facility);
        logger.dispatcher = Some(dispatcher.clone());
        logger
    }

    /// A child logger (same facility and dispatcher) that adds `key = value` to every entry,
    /// e.g. the request's `txn_id`. Replaces an existing context field of the same key.
    pub fn with<T: Serialize + ?Sized>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: &T,
    ) -> Logger {
        let field = Field::new(key, value);
        let mut context: Vec<Field> = match &self.context {
            Some(c) => c.iter().filter(|f| f.key != field.key).cloned().collect(),
            None => Vec::with_capacity(1),
        };
        context.push(field);
        Logger {
            facility: self.facility.clone(),
            context: Some(context.into()),
            dispatcher: self.dispatcher.clone(),
            threshold: AtomicU8::new(self.threshold.load(Ordering::Relaxed)),
        }
    }

    /// The facility name.
    pub fn facility(&self) -> &str {
        self.facility.as_str()
    }

    fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.as_ref().or_else(|| GLOBAL.get())
    }

    /// Whether some route accepts entries of `level` from this logger's facility.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        let mut threshold = self.threshold.load(Ordering::Relaxed);
        if threshold == THRESHOLD_UNKNOWN {
            match self.dispatcher() {
                // Not initialized yet: log nothing, and ask again next time.
                None => return false,
                Some(d) => {
                    threshold = d.threshold_for(self.facility.as_str());
                    self.threshold.store(threshold, Ordering::Relaxed);
                }
            }
        }
        threshold != THRESHOLD_NONE && level.as_u8() < threshold
    }

    /// Queues an entry (what the macros call). Does nothing if the level is not enabled.
    ///
    /// Inside a `tracing` span (with a [`GelfLayer`](super::GelfLayer) installed), the span's
    /// fields (its `txn_id`) come first; then this logger's context fields, then `fields`.
    pub fn emit(
        &self,
        level: Level,
        message: impl Into<Cow<'static, str>>,
        mut fields: Vec<Field>,
    ) {
        if !self.enabled(level) {
            return;
        }
        let mut context = self.context.clone();
        let mut span_fields = Vec::new();
        current_span_fields(&mut span_fields);
        if !span_fields.is_empty() {
            // Span fields first, then the logger's context, then the entry's (the last wins).
            if let Some(context) = context.take() {
                span_fields.extend(context.iter().cloned());
            }
            span_fields.append(&mut fields);
            fields = span_fields;
        }
        if let Some(d) = self.dispatcher() {
            d.send(Entry::from_parts(
                self.facility.clone(),
                level,
                message.into(),
                fields,
                context,
            ));
        }
    }

    /// Starts an entry to be completed with [`EntryBuilder::field`] and sent with
    /// [`EntryBuilder::emit`]: the builder form of the macros.
    ///
    /// ```
    /// use quill::logging::{Level, Logger};
    /// let log = Logger::local("myapp.jobs");
    /// log.entry(Level::Warning, "job slow")
    ///     .field("job", "reindex")
    ///     .field("seconds", &12.5)
    ///     .emit();
    /// ```
    pub fn entry(&self, level: Level, message: impl Into<Cow<'static, str>>) -> EntryBuilder<'_> {
        EntryBuilder {
            logger: self,
            level,
            message: message.into(),
            fields: Vec::new(),
            enabled: self.enabled(level),
        }
    }

    /// `entry(Level::Error, message)`.
    pub fn error(&self, message: impl Into<Cow<'static, str>>) -> EntryBuilder<'_> {
        self.entry(Level::Error, message)
    }

    /// `entry(Level::Warning, message)`.
    pub fn warning(&self, message: impl Into<Cow<'static, str>>) -> EntryBuilder<'_> {
        self.entry(Level::Warning, message)
    }

    /// `entry(Level::Info, message)`.
    pub fn info(&self, message: impl Into<Cow<'static, str>>) -> EntryBuilder<'_> {
        self.entry(Level::Info, message)
    }

    /// `entry(Level::Debug, message)`.
    pub fn debug(&self, message: impl Into<Cow<'static, str>>) -> EntryBuilder<'_> {
        self.entry(Level::Debug, message)
    }
}

impl Clone for Logger {
    fn clone(&self) -> Logger {
        Logger {
            facility: self.facility.clone(),
            context: self.context.clone(),
            dispatcher: self.dispatcher.clone(),
            threshold: AtomicU8::new(self.threshold.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("facility", &self.facility.as_str())
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// An entry being built by [`Logger::entry`]; nothing is logged until [`EntryBuilder::emit`].
#[must_use = "call .emit() to log the entry"]
pub struct EntryBuilder<'a> {
    logger: &'a Logger,
    level: Level,
    message: Cow<'static, str>,
    fields: Vec<Field>,
    enabled: bool,
}

impl EntryBuilder<'_> {
    /// Adds `key = value` (skipped cheaply when the level is disabled).
    pub fn field<T: Serialize + ?Sized>(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: &T,
    ) -> Self {
        if self.enabled {
            self.fields.push(Field::new(key, value));
        }
        self
    }

    /// Queues the entry.
    pub fn emit(self) {
        if self.enabled {
            self.logger.emit(self.level, self.message, self.fields);
        }
    }
}
