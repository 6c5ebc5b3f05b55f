//! The `tracing` layer: span fields (the request's txn id above all) on nested events, GELF
//! validity, levels and targets.

use crate::support::{gelf_lines, memory_dispatcher, short_messages};
use quill::logging::sinks::SharedBuffer;
use quill::logging::{Config, GelfLayer, Level, Route, TxnId};
use tracing_subscriber::layer::SubscriberExt;

fn setup(route: Route) -> (quill::logging::Dispatcher, SharedBuffer) {
    memory_dispatcher(Config::new(), route)
}

#[test]
fn span_txn_id_lands_on_nested_events() {
    let (d, buffer) = setup(Route::new(""));
    let subscriber = tracing_subscriber::registry().with(GelfLayer::with_dispatcher(&d));
    let txn = TxnId::new();
    let other = TxnId::new();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside any span");
        let request = txn.span();
        let _r = request.enter();
        tracing::info!(path = "/items", "request start");
        {
            let db = tracing::debug_span!("db", table = "items", rows = tracing::field::Empty);
            let _db = db.enter();
            tracing::warn!(elapsed_ms = 12.5, "slow query");
            db.record("rows", 42u64);
            {
                let _deep = tracing::info_span!("decode", attempt = 1).entered();
                tracing::error!(error = %std::io::Error::other("bad row"), "decode failed");
            }
        }
        // A nested request with its own id: the innermost span's txn_id wins.
        {
            let _inner = tracing::info_span!("subrequest", txn_id = other.as_str()).entered();
            tracing::info!("in subrequest");
        }
        tracing::info!(txn_id = "explicit", "event field wins");
    });
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    let messages = short_messages(&lines);
    assert_eq!(
        messages,
        [
            "outside any span",
            "request start",
            "slow query",
            "decode failed",
            "in subrequest",
            "event field wins"
        ]
    );
    assert!(!lines[0].contains_key("_txn_id"));
    for m in &lines[1..4] {
        assert_eq!(m["_txn_id"], txn.as_str(), "{m:?}");
    }
    assert_eq!(lines[1]["_path"], "/items");
    assert_eq!(lines[2]["_table"], "items");
    assert_eq!(lines[2]["_elapsed_ms"], 12.5);
    assert_eq!(lines[2]["level"], Level::Warning.as_u8());
    assert!(!lines[2].contains_key("_rows"), "recorded after the event");
    assert_eq!(lines[3]["_rows"], 42);
    assert_eq!(lines[3]["_attempt"], 1);
    assert_eq!(lines[3]["_error"], "bad row");
    assert_eq!(lines[3]["level"], 3);
    assert_eq!(lines[4]["_txn_id"], other.as_str());
    assert_eq!(lines[5]["_txn_id"], "explicit");
    for m in &lines {
        // The target is the module path (`logging::logging_tracing` in the one logging binary).
        assert_eq!(m["_facility"], module_path!().replace("::", "."));
    }
}

#[test]
fn txn_id_follows_spans_across_threads() {
    let (d, buffer) = setup(Route::new("").at_least(Level::Info));
    let layer = GelfLayer::with_dispatcher(&d);
    let subscriber = std::sync::Arc::new(tracing_subscriber::registry().with(layer));
    let handles: Vec<_> = (0..4)
        .map(|worker| {
            let subscriber = subscriber.clone();
            std::thread::spawn(move || {
                tracing::subscriber::with_default(subscriber, || {
                    let mut ids = Vec::new();
                    for n in 0..50 {
                        let txn = TxnId::new();
                        let _s = txn.span().entered();
                        let _inner = tracing::info_span!("handler", worker).entered();
                        tracing::info!(n, "handled");
                        tracing::debug!("filtered out by the route");
                        ids.push(txn);
                    }
                    ids
                })
            })
        })
        .collect();
    let mut expected = std::collections::HashMap::new();
    for (worker, h) in handles.into_iter().enumerate() {
        for (n, id) in h.join().unwrap().into_iter().enumerate() {
            expected.insert((worker as u64, n as u64), id.to_string());
        }
    }
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 200);
    for m in &lines {
        let key = (m["_worker"].as_u64().unwrap(), m["_n"].as_u64().unwrap());
        assert_eq!(m["_txn_id"].as_str().unwrap(), expected[&key]);
    }
}

#[test]
fn targets_route_like_facilities() {
    let (d, buffer) = setup(Route::new("wanted").at_least(Level::Info));
    let subscriber = tracing_subscriber::registry().with(GelfLayer::with_dispatcher(&d));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "wanted::sub", "yes");
        tracing::info!(target: "unwanted", "no");
        tracing::trace!(target: "wanted", "too verbose");
    });
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["_facility"], "wanted.sub");
}

#[test]
fn module_loggers_inside_spans_get_the_txn_id() {
    use quill::logging::{LogBackend, Logger};
    let (d, buffer) = setup(Route::new(""));
    let subscriber = tracing_subscriber::registry().with(GelfLayer::with_dispatcher(&d));
    let log = Logger::with_dispatcher("app.module", &d);
    let backend = LogBackend::with_dispatcher(&d);
    let txn = TxnId::new();
    tracing::subscriber::with_default(subscriber, || {
        quill::info!(log, "no span yet");
        let _request = txn.span().entered();
        let _step = tracing::info_span!("step", step = "charge").entered();
        quill::info!(log, "in span", n = 1);
        quill::info!(log.with("step", &"bound"), "context beats span", n = 2);
        quill::info!(log.with("step", &"bound"), "entry beats both", step = "own");
        use log::Log;
        backend.log(
            &log::Record::builder()
                .args(format_args!("from log {}", 5))
                .level(log::Level::Info)
                .target("legacy")
                .build(),
        );
    });
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 5);
    assert!(!lines[0].contains_key("_txn_id"));
    for m in &lines[1..] {
        assert_eq!(m["_txn_id"], txn.as_str(), "{m:?}");
    }
    assert_eq!(lines[1]["_step"], "charge");
    assert_eq!(lines[2]["_step"], "bound");
    assert_eq!(lines[3]["_step"], "own");
    assert_eq!(lines[4]["short_message"], "from log 5");
    assert_eq!(lines[4]["_step"], "charge");
}
