//! One log entry as it travels from a logger through the queue to the sinks: level, facility,
//! message and key-value fields (values captured as `serde_json::Value`, so numbers stay
//! numbers). Data only; no I/O.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::Level;

/// One key-value pair of an entry. The value is captured when the entry is made, so any
/// `Serialize` value (including borrowed ones) can be logged.
#[derive(Clone, PartialEq)]
pub struct Field {
    /// The field name as given; the GELF encoder prefixes it with `_` and replaces characters
    /// outside `[A-Za-z0-9_.-]` with `_`.
    pub key: Cow<'static, str>,
    /// The captured value. Objects are flattened on output (`req.path`), arrays become JSON text,
    /// booleans become `"true"`/`"false"` and nulls are left out, as GELF allows only strings
    /// and numbers.
    pub value: Value,
}

impl Field {
    /// Captures `value` under `key`.
    ///
    /// ```
    /// let f = quill::logging::Field::new("status", &200u16);
    /// assert_eq!(f.value, serde_json::json!(200));
    /// ```
    pub fn new<T: Serialize + ?Sized>(key: impl Into<Cow<'static, str>>, value: &T) -> Field {
        Field {
            key: key.into(),
            value: capture(value),
        }
    }

    /// A field from an already captured JSON value.
    pub fn from_value(key: impl Into<Cow<'static, str>>, value: Value) -> Field {
        Field {
            key: key.into(),
            value,
        }
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Serializes `value` into a JSON value; a value whose `Serialize` impl fails (e.g. a map with
/// non-string keys) is kept as the error text instead of being lost.
pub(crate) fn capture<T: Serialize + ?Sized>(value: &T) -> Value {
    match serde_json::to_value(value) {
        Ok(v) => v,
        Err(e) => Value::String(format!("<unserializable: {e}>")),
    }
}

/// A facility name: borrowed for `'static` names (no allocation per entry), shared otherwise.
#[derive(Clone, Debug)]
pub(crate) enum Facility {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Facility {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Facility::Static(s) => s,
            Facility::Shared(s) => s,
        }
    }
}

/// One log entry. Rewriters receive it as `&mut Entry` and may change anything but the
/// facility; the context fields of the logger (see [`super::Logger::with`]) are already merged
/// into [`Entry::fields`] by then, and a later field with the same key replaces an earlier one.
#[derive(Clone, Debug)]
pub struct Entry {
    /// When the log call was made.
    pub time: SystemTime,
    /// Syslog severity (GELF `level`).
    pub level: Level,
    /// The GELF `short_message`.
    pub message: Cow<'static, str>,
    /// Key-value fields, in order; a later key replaces an earlier one on output.
    pub fields: Vec<Field>,
    pub(crate) facility: Facility,
    pub(crate) context: Option<Arc<[Field]>>,
}

impl Entry {
    /// A new entry stamped with the current time.
    pub fn new(
        facility: impl Into<String>,
        level: Level,
        message: impl Into<Cow<'static, str>>,
    ) -> Entry {
        Entry {
            time: SystemTime::now(),
            level,
            message: message.into(),
            fields: Vec::new(),
            facility: Facility::Shared(Arc::from(facility.into())),
            context: None,
        }
    }

    pub(crate) fn from_parts(
        facility: Facility,
        level: Level,
        message: Cow<'static, str>,
        fields: Vec<Field>,
        context: Option<Arc<[Field]>>,
    ) -> Entry {
        Entry {
            time: SystemTime::now(),
            level,
            message,
            fields,
            facility,
            context,
        }
    }

    /// The dotted facility name of the logger that made this entry (`myapp.api.handler`).
    pub fn facility(&self) -> &str {
        self.facility.as_str()
    }

    /// The value of field `key`, if present (the last one if the key repeats).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.key == key)
            .map(|f| &f.value)
    }

    /// Removes every field named `key` and returns the last value.
    pub fn take_field(&mut self, key: &str) -> Option<Value> {
        let mut taken = None;
        self.fields.retain_mut(|f| {
            if f.key == key {
                taken = Some(std::mem::take(&mut f.value));
                false
            } else {
                true
            }
        });
        taken
    }

    /// Sets field `key` to `value`, replacing any existing field of that name.
    pub fn set_field(&mut self, key: impl Into<Cow<'static, str>>, value: Value) {
        let key = key.into();
        self.fields.retain(|f| f.key != key);
        self.fields.push(Field { key, value });
    }

    /// Puts the logger's context fields first and removes duplicate keys (the last wins).
    pub(crate) fn normalize(&mut self) {
        if let Some(context) = self.context.take() {
            let mut merged = Vec::with_capacity(context.len() + self.fields.len());
            merged.extend(context.iter().cloned());
            merged.append(&mut self.fields);
            self.fields = merged;
        }
        let mut i = 0;
        while i < self.fields.len() {
            let key = &self.fields[i].key;
            if self.fields[i + 1..].iter().any(|f| &f.key == key) {
                self.fields.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capture_keeps_types() {
        assert_eq!(capture(&42u8), json!(42));
        assert_eq!(capture(&-7i64), json!(-7));
        assert_eq!(capture(&1.5f32), json!(1.5));
        assert_eq!(capture("x"), json!("x"));
        assert_eq!(capture(&Some(3)), json!(3));
        assert_eq!(capture(&vec![1, 2]), json!([1, 2]));
    }

    #[test]
    fn unserializable_is_kept_as_text() {
        let mut m = std::collections::HashMap::new();
        m.insert(vec![1u8], 1);
        assert!(capture(&m).as_str().unwrap().starts_with("<unserializable"));
    }

    #[test]
    fn normalize_merges_context_and_last_wins() {
        let context: Arc<[Field]> = vec![Field::new("a", &1), Field::new("b", &2)].into();
        let mut e = Entry::new("x", Level::Info, "m");
        e.fields = vec![
            Field::new("b", &3),
            Field::new("c", &4),
            Field::new("c", &5),
        ];
        e.context = Some(context);
        e.normalize();
        let got: Vec<_> = e
            .fields
            .iter()
            .map(|f| (f.key.as_ref(), &f.value))
            .collect();
        assert_eq!(
            got,
            vec![("a", &json!(1)), ("b", &json!(3)), ("c", &json!(5))]
        );
        assert_eq!(e.take_field("b"), Some(json!(3)));
        assert_eq!(e.field("b"), None);
        e.set_field("a", json!("z"));
        assert_eq!(e.field("a"), Some(&json!("z")));
    }
}
