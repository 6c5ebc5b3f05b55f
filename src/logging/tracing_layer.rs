//! A `tracing_subscriber::Layer` that turns `tracing` events into entries for a dispatcher:
//! span fields (from the root span to the innermost) then event fields become entry fields, so
//! the current span's `txn_id` lands on every event; the `message` field is the
//! `short_message`; the target (`myapp::api`) becomes the facility (`myapp.api`). No I/O here:
//! entries go to the dispatcher's queue.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;
use tracing::field::{Field as TracingField, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::entry::{Entry, Facility, Field};
use super::worker::Dispatcher;
use super::{GLOBAL, Level, facility_from_target};

/// Emits `tracing` events as GELF through a [`Dispatcher`].
///
/// ```
/// use quill::logging::sinks::{SharedBuffer, WriterSink};
/// use quill::logging::{Config, GelfLayer, Route, TxnId};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let buffer = SharedBuffer::default();
/// let dispatcher = Config::new()
///     .sink("mem", WriterSink::new(buffer.clone()))
///     .route(Route::new("").to("mem"))
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(GelfLayer::with_dispatcher(&dispatcher));
///
/// let txn = TxnId::new();
/// tracing::subscriber::with_default(subscriber, || {
///     let _request = txn.span().entered();
///     tracing::info!(rows = 3, "query done");
/// });
/// dispatcher.flush()?;
/// let line: serde_json::Value = serde_json::from_slice(buffer.contents().trim_ascii())?;
/// assert_eq!(line["_txn_id"], txn.as_str());
/// assert_eq!(line["_rows"], 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct GelfLayer {
    dispatcher: Option<Dispatcher>,
}

impl fmt::Debug for GelfLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GelfLayer")
            .field("global", &self.dispatcher.is_none())
            .finish()
    }
}

impl GelfLayer {
    /// A layer logging through the process-wide dispatcher (see [`init`](super::init)).
    pub fn new() -> GelfLayer {
        GelfLayer { dispatcher: None }
    }

    /// A layer logging through `dispatcher`.
    pub fn with_dispatcher(dispatcher: &Dispatcher) -> GelfLayer {
        GelfLayer {
            dispatcher: Some(dispatcher.clone()),
        }
    }

    fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.as_ref().or_else(|| GLOBAL.get())
    }
}

/// Maps `tracing` levels to syslog severities.
pub(crate) fn level_from_tracing(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

/// A span's recorded fields, kept in its extensions.
struct SpanFields(Vec<Field>);

/// Appends the fields of the current `tracing` span and its parents (root first) to `out`, if
/// the current subscriber is a registry with a [`GelfLayer`]. This is how entries from
/// [`Logger`](super::Logger)s and the `log` backend get the request's `txn_id` too.
pub(crate) fn current_span_fields(out: &mut Vec<Field>) {
    tracing::dispatcher::get_default(|dispatch| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let current = dispatch.current_span();
        let Some(span) = current.id().and_then(|id| registry.span(id)) else {
            return;
        };
        for span in span.scope().from_root() {
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                out.extend(fields.iter().cloned());
            }
        }
    });
}

struct FieldVisitor<'a> {
    fields: &'a mut Vec<Field>,
    message: Option<&'a mut String>,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &TracingField, value: Value) {
        let name = field.name();
        if let Some(slot) = self.fields.iter_mut().find(|f| f.key == name) {
            slot.value = value;
        } else {
            self.fields
                .push(Field::from_value(Cow::Borrowed(name), value));
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &TracingField, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put(field, Value::from(value.to_string())),
        }
    }
    fn record_u128(&mut self, field: &TracingField, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put(field, Value::from(value.to_string())),
        }
    }
    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &TracingField, value: &str) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                m.push_str(value);
                return;
            }
        }
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                use fmt::Write as _;
                let _ = write!(m, "{value:?}");
                return;
            }
        }
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for GelfLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Vec::new();
        attrs.record(&mut FieldVisitor {
            fields: &mut fields,
            message: None,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor {
                fields,
                message: None,
            });
        } else {
            let mut fields = Vec::new();
            values.record(&mut FieldVisitor {
                fields: &mut fields,
                message: None,
            });
            extensions.insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(dispatcher) = self.dispatcher() else {
            return;
        };
        let metadata = event.metadata();
        let level = level_from_tracing(metadata.level());
        let facility = facility_from_target(metadata.target());
        if !dispatcher.enabled(&facility, level) {
            return;
        }
        let mut fields = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().cloned());
                }
            }
        }
        let mut message = String::new();
        let mut event_fields = Vec::new();
        event.record(&mut FieldVisitor {
            fields: &mut event_fields,
            message: Some(&mut message),
        });
        fields.append(&mut event_fields);
        let facility = match facility {
            Cow::Borrowed(_) => Facility::Static(metadata.target()),
            Cow::Owned(s) => Facility::Shared(s.into()),
        };
        dispatcher.send(Entry::from_parts(
            facility,
            level,
            Cow::Owned(message),
            fields,
            None,
        ));
    }
}
