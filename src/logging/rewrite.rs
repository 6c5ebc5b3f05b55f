//! Rewriters: functions that reshape an entry's fields on the worker thread before routing and
//! encoding, plus ready-made ones (pull fields out of a context object, rename, remove).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::entry::{Entry, Field};
use super::route::facility_matches;

type RewriteFn = dyn Fn(&mut Entry) + Send + 'static;

/// A function applied to every entry (or those under a facility prefix) before it is routed.
///
/// ```
/// use quill::logging::{Entry, Level, Rewriter};
/// use serde_json::json;
///
/// let upper = Rewriter::new(|e: &mut Entry| {
///     if let Some(Some(user)) = e.take_field("user").map(|v| v.as_str().map(str::to_uppercase)) {
///         e.set_field("user", json!(user));
///     }
/// });
/// let mut e = Entry::new("app", Level::Info, "hi");
/// e.set_field("user", json!("ann"));
/// upper.apply(&mut e);
/// assert_eq!(e.field("user"), Some(&json!("ANN")));
/// ```
pub struct Rewriter {
    prefix: String,
    function: Box<RewriteFn>,
}

impl Rewriter {
    /// A rewriter for every facility.
    pub fn new(function: impl Fn(&mut Entry) + Send + 'static) -> Rewriter {
        Rewriter {
            prefix: String::new(),
            function: Box::new(function),
        }
    }

    /// Restricts this rewriter to facilities under `prefix` (same rule as routes).
    pub fn only_for(mut self, prefix: impl Into<String>) -> Rewriter {
        self.prefix = prefix.into();
        self
    }

    /// Whether the rewriter applies to entries of `facility`.
    pub fn applies_to(&self, facility: &str) -> bool {
        facility_matches(&self.prefix, facility)
    }

    /// Runs the rewriter on `entry`.
    pub fn apply(&self, entry: &mut Entry) {
        (self.function)(entry)
    }
}

impl fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rewriter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Takes the object field `from` (e.g. a serialized request context), moves the listed keys
/// out of it into top-level fields and drops the rest of it.
///
/// ```
/// use quill::logging::{rewrite, Entry, Level};
/// use serde_json::json;
///
/// let r = rewrite::extract("request", &["txn_id", "account_id"]);
/// let mut e = Entry::new("app", Level::Info, "charged");
/// e.set_field("request", json!({"txn_id": "T1", "account_id": 9, "cookie": "secret"}));
/// r.apply(&mut e);
/// assert_eq!(e.field("txn_id"), Some(&json!("T1")));
/// assert_eq!(e.field("account_id"), Some(&json!(9)));
/// assert_eq!(e.field("request"), None);
/// ```
pub fn extract(from: &'static str, keys: &[&'static str]) -> Rewriter {
    let keys: Vec<&'static str> = keys.to_vec();
    Rewriter::new(move |entry: &mut Entry| {
        if let Some(Value::Object(mut object)) = entry.take_field(from) {
            for &key in &keys {
                if let Some(value) = object.remove(key) {
                    entry.set_field(key, value);
                }
            }
        }
    })
}

/// Renames field `from` to `to`.
pub fn rename(from: &'static str, to: &'static str) -> Rewriter {
    Rewriter::new(move |entry: &mut Entry| {
        if let Some(value) = entry.take_field(from) {
            entry.set_field(to, value);
        }
    })
}

/// Removes the listed fields.
pub fn remove(keys: &[&'static str]) -> Rewriter {
    let keys: Vec<&'static str> = keys.to_vec();
    Rewriter::new(move |entry: &mut Entry| {
        entry.fields.retain(|f| !keys.contains(&f.key.as_ref()));
    })
}

/// Replaces the values of the listed fields with `"[redacted]"`.
pub fn redact(keys: &[&'static str]) -> Rewriter {
    let keys: Vec<&'static str> = keys.to_vec();
    Rewriter::new(move |entry: &mut Entry| {
        for field in &mut entry.fields {
            if keys.contains(&field.key.as_ref()) {
                field.value = Value::String("[redacted]".into());
            }
        }
    })
}

/// Adds a constant field to every entry (unless the entry already has it).
pub fn add_default(key: &'static str, value: Value) -> Rewriter {
    Rewriter::new(move |entry: &mut Entry| {
        if entry.field(key).is_none() {
            entry.fields.push(Field {
                key: Cow::Borrowed(key),
                value: value.clone(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Level;
    use serde_json::json;

    #[test]
    fn ready_made_rewriters() {
        let mut e = Entry::new("a.b", Level::Info, "m");
        e.set_field("pw", json!("x"));
        e.set_field("tmp", json!(1));
        e.set_field("old", json!(2));
        redact(&["pw"]).apply(&mut e);
        remove(&["tmp"]).apply(&mut e);
        rename("old", "new").apply(&mut e);
        add_default("env", json!("prod")).apply(&mut e);
        assert_eq!(e.field("pw"), Some(&json!("[redacted]")));
        assert_eq!(e.field("tmp"), None);
        assert_eq!(e.field("new"), Some(&json!(2)));
        assert_eq!(e.field("env"), Some(&json!("prod")));
        assert!(Rewriter::new(|_| {}).only_for("a").applies_to("a.b"));
        assert!(!Rewriter::new(|_| {}).only_for("x").applies_to("a.b"));
    }
}
