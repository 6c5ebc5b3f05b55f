//! GELF output of the logging library: field types, validity of every line, routes, rewriters,
//! file rotation and the queue-full policies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::support::{gelf_lines, read_gelf_file, short_messages};
use quill::logging::sinks::{FileSink, SharedBuffer, WriterSink};
use quill::logging::{
    Config, Entry, Level, LogBackend, Logger, Rewriter, Route, Sink, TxnId, WhenFull, rewrite,
};
use serde::Serialize;
use serde_json::json;

#[derive(Serialize)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    bytes: u64,
    client: Client,
}

#[derive(Serialize)]
struct Client {
    ip: &'static str,
    port: u16,
}

fn memory_dispatcher(route: Route) -> (quill::logging::Dispatcher, SharedBuffer) {
    crate::support::memory_dispatcher(Config::new().host("test-host"), route)
}

#[test]
fn field_types_are_preserved() {
    let (d, buffer) = memory_dispatcher(Route::new(""));
    let log = Logger::with_dispatcher("app.types", &d);
    let req = Request {
        method: "GET",
        path: "/a b",
        bytes: 1234,
        client: Client {
            ip: "10.0.0.1",
            port: 443,
        },
    };
    quill::info!(
        log,
        "typed",
        small = 7u8,
        negative = -42i64,
        big = u64::MAX,
        ratio = 0.125f64,
        whole_float = 3.0f64,
        text = "12",
        yes = true,
        none = Option::<u32>::None,
        some = Some(5),
        list = [1, 2, 3],
        req = req,
        "http.status" = 503u16,
    );
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 1);
    let m = &lines[0];
    assert_eq!(m["host"], "test-host");
    assert_eq!(m["short_message"], "typed");
    assert_eq!(m["level"], 6);
    assert_eq!(m["_facility"], "app.types");
    assert!(m["_small"].is_u64() && m["_small"] == 7);
    assert!(m["_negative"].is_i64() && m["_negative"] == -42);
    assert_eq!(m["_big"].as_u64(), Some(u64::MAX));
    assert!(m["_ratio"].is_f64() && m["_ratio"] == 0.125);
    assert!(m["_whole_float"].is_f64());
    assert_eq!(m["_text"], "12", "a numeric-looking string stays a string");
    assert_eq!(m["_yes"], "true");
    assert!(!m.contains_key("_none"));
    assert_eq!(m["_some"], 5);
    assert_eq!(m["_list"], "[1,2,3]");
    assert_eq!(m["_req.method"], "GET");
    assert_eq!(m["_req.path"], "/a b");
    assert_eq!(m["_req.bytes"], 1234);
    assert_eq!(m["_req.client.ip"], "10.0.0.1");
    assert_eq!(m["_req.client.port"], 443);
    assert_eq!(m["_http.status"], 503);
    let ts = m["timestamp"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "timestamp {ts} vs now {now}");
}

#[test]
fn every_line_is_valid_gelf_whatever_the_input() {
    let (d, buffer) = memory_dispatcher(Route::new(""));
    let log = Logger::with_dispatcher("weird facility/ü", &d).with("id", &"context-id");
    let nasty_keys = [
        "",
        "id",
        "_id",
        "a b",
        "ünï",
        "x\"y",
        "new\nline",
        "a.b-c_d",
        "facility",
        "version",
        "host",
        "level",
        "{}",
    ];
    let nasty_values = [
        json!(null),
        json!(""),
        json!("\u{0}\u{1f}\"\\\n\t"),
        json!({"id": 1, "": {"": 2}, "a b": [null, true]}),
        json!([]),
        json!({}),
        json!(1e300),
        json!(i64::MIN),
        json!(false),
    ];
    for (i, key) in nasty_keys.iter().enumerate() {
        for value in &nasty_values {
            let message = if i % 3 == 0 { "" } else { "  \u{7f} msg\r\n" };
            log.entry(Level::from_u8((i % 8) as u8).unwrap(), message)
                .field(key.to_string(), value)
                .field("id", value)
                .emit();
        }
    }
    // Invalid UTF-8 reaches the encoder through a lossy conversion only; still check a long one.
    quill::info!(log, "long", blob = "é".repeat(10_000));
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), nasty_keys.len() * nasty_values.len() + 1);
    for m in &lines {
        assert_eq!(m["_facility"], "weird facility/ü");
        // A field `id` comes out as `_id_`, never as GELF's reserved `_id`.
        assert!(!m.contains_key("_id"));
    }
}

#[test]
fn routes_split_by_facility_prefix_and_level() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.log");
    let errors = dir.path().join("errors.log");
    let all = dir.path().join("all.log");
    let d = Config::new()
        .sink("api", FileSink::new(&api).unwrap())
        .sink("errors", FileSink::new(&errors).unwrap())
        .sink("all", FileSink::new(&all).unwrap())
        .route(Route::new("myapp.api").at_least(Level::Info).to("api"))
        .route(Route::new("").at_least(Level::Error).to("errors").to("all"))
        .route(Route::new("myapp").to("all"))
        .build()
        .unwrap();
    let handler = Logger::with_dispatcher("myapp.api.handler", &d);
    let apiary = Logger::with_dispatcher("myapp.apiary", &d);
    let other = Logger::with_dispatcher("other", &d);
    assert!(
        handler.enabled(Level::Debug),
        "the `myapp` route takes Debug"
    );
    assert!(!other.enabled(Level::Warning));
    assert!(other.enabled(Level::Error));
    quill::debug!(handler, "h-debug");
    quill::info!(handler, "h-info");
    quill::error!(handler, "h-error");
    quill::info!(apiary, "apiary-info");
    quill::warning!(other, "other-warning");
    quill::critical!(other, "other-critical");
    d.flush().unwrap();
    let messages = |p: &std::path::Path| -> Vec<String> {
        short_messages(&read_gelf_file(p))
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(messages(&api), ["h-info", "h-error"]);
    assert_eq!(messages(&errors), ["h-error", "other-critical"]);
    // `h-error` matches two routes to `all` but is written once.
    assert_eq!(
        messages(&all),
        [
            "h-debug",
            "h-info",
            "h-error",
            "apiary-info",
            "other-critical"
        ]
    );
    assert_eq!(d.stats().written, 5, "other-warning matches no route");
}

#[test]
fn rewriters_reshape_fields_before_output() {
    let buffer = SharedBuffer::default();
    let d = Config::new()
        .sink("mem", WriterSink::new(buffer.clone()))
        .route(Route::new("").to("mem"))
        .rewrite(rewrite::extract("ctx", &["txn_id", "account_id"]))
        .rewrite(rewrite::redact(&["password"]).only_for("app.auth"))
        .rewrite(Rewriter::new(|e: &mut Entry| {
            if e.level <= Level::Error {
                e.set_field("alert", json!("page"));
            }
        }))
        .build()
        .unwrap();
    let txn = TxnId::new();
    let ctx = json!({"txn_id": txn, "account_id": 991, "session": {"cookie": "s3cr3t"}});
    let auth = Logger::with_dispatcher("app.auth", &d);
    let billing = Logger::with_dispatcher("app.billing", &d);
    quill::info!(auth, "login", ctx = ctx, password = "hunter2");
    quill::error!(billing, "charge failed", ctx = ctx, password = "visible");
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 2);
    for m in &lines {
        assert_eq!(m["_txn_id"], txn.as_str());
        assert_eq!(m["_account_id"], 991);
        assert!(!m.keys().any(|k| k.starts_with("_ctx")), "{m:?}");
    }
    assert_eq!(lines[0]["_password"], "[redacted]");
    assert!(!lines[0].contains_key("_alert"));
    assert_eq!(lines[1]["_password"], "visible");
    assert_eq!(lines[1]["_alert"], "page");
}

#[test]
fn builder_and_context_fields() {
    let (d, buffer) = memory_dispatcher(Route::new("").at_least(Level::Info));
    let base = Logger::with_dispatcher("svc", &d);
    let txn = TxnId::new();
    let log = base.with("txn_id", &txn).with("user", &"ann");
    log.info("built")
        .field("n", &1)
        .field("user", "bob") // the entry's own field wins over the context
        .emit();
    log.debug("dropped").field("n", &2).emit();
    base.warning("no context").emit();
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["_txn_id"], txn.as_str());
    assert_eq!(lines[0]["_user"], "bob");
    assert_eq!(lines[0]["_n"], 1);
    assert!(!lines[1].contains_key("_txn_id"));
    assert_eq!(lines[1]["level"], 4);
}

#[test]
fn file_sink_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let d = Config::new()
        .sink(
            "file",
            FileSink::new(&path).unwrap().rotate_at(4096).keep(3),
        )
        .route(Route::new("").to("file"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("rot", &d);
    for i in 0..200 {
        quill::info!(log, "rotating", i = i, pad = "x".repeat(50));
    }
    d.flush().unwrap();
    let mut seen = Vec::new();
    for name in ["app.log.3", "app.log.2", "app.log.1", "app.log"] {
        let p = dir.path().join(name);
        assert!(p.exists(), "{name} missing");
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 4096, "{name} is {len} bytes");
        seen.extend(read_gelf_file(&p).iter().map(|m| m["_i"].as_u64().unwrap()));
    }
    assert!(!dir.path().join("app.log.4").exists());
    // The kept files hold the newest entries, in order, ending with the last one.
    assert_eq!(seen.last(), Some(&199));
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
}

/// A sink that blocks until released: stands in for a stalled destination.
struct StalledSink {
    release: Arc<AtomicBool>,
    started: Arc<Barrier>,
    first: bool,
    out: SharedBuffer,
}

impl Sink for StalledSink {
    fn write(&mut self, _entry: &Entry, gelf: &[u8]) -> std::io::Result<()> {
        if self.first {
            self.first = false;
            self.started.wait();
        }
        while !self.release.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        use std::io::Write;
        self.out.write_all(gelf)?;
        self.out.write_all(b"\n")
    }
}

#[test]
fn drop_policy_never_blocks_and_reports_the_count() {
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let out = SharedBuffer::default();
    let d = Config::new()
        .queue_capacity(8)
        .when_full(WhenFull::Drop)
        .sink(
            "stalled",
            StalledSink {
                release: release.clone(),
                started: started.clone(),
                first: true,
                out: out.clone(),
            },
        )
        .route(Route::new("").to("stalled"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("busy", &d);
    quill::info!(log, "first", i = 0);
    started.wait(); // the worker is now stuck in the sink
    let t0 = std::time::Instant::now();
    for i in 1..1000 {
        quill::info!(log, "more", i = i);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "callers were blocked"
    );
    let dropped = d.dropped();
    assert_eq!(dropped, 999 - 8, "8 fit in the queue, the rest are dropped");
    release.store(true, Ordering::Release);
    d.flush().unwrap();
    let lines = gelf_lines(&out.contents());
    let logged: Vec<_> = lines.iter().filter(|m| m["_facility"] == "busy").collect();
    assert_eq!(logged.len() as u64 + dropped, 1000);
    let reports: Vec<_> = lines
        .iter()
        .filter(|m| m["_facility"] == "quill.logging")
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["_dropped"], dropped);
    assert_eq!(reports[0]["level"], 4);
}

#[test]
fn block_policy_loses_nothing_with_a_tiny_queue() {
    let (d, _) = memory_dispatcher(Route::new(""));
    drop(d);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.log");
    let d = Config::new()
        .queue_capacity(1)
        .when_full(WhenFull::Block)
        .sink("file", FileSink::new(&path).unwrap())
        .route(Route::new("").to("file"))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Logger::with_dispatcher(format!("t{t}"), &d);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    quill::info!(log, "n", t = t, i = i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(d); // dropping the last handle writes everything queued
    let lines = read_gelf_file(&path);
    assert_eq!(lines.len(), 8000);
    for t in 0..4u64 {
        let seq: Vec<u64> = lines
            .iter()
            .filter(|m| m["_t"] == t)
            .map(|m| m["_i"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seq,
            (0..2000).collect::<Vec<_>>(),
            "thread {t} out of order"
        );
    }
}

#[test]
fn config_errors_are_reported() {
    let e = Config::new()
        .route(Route::new("x").to("nope"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = Config::new()
        .sink("a", WriterSink::new(Vec::new()))
        .sink("a", WriterSink::new(Vec::new()))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("two sinks"), "{e}");
    assert!(Config::new().queue_capacity(0).build().is_err());
}

#[test]
fn log_backend_with_explicit_dispatcher() {
    use log::Log;
    let (d, buffer) = memory_dispatcher(Route::new("mycrate").at_least(Level::Info));
    let backend = LogBackend::with_dispatcher(&d);
    let n = 5;
    let warn = log::Metadata::builder()
        .level(log::Level::Warn)
        .target("mycrate::db")
        .build();
    assert!(backend.enabled(&warn));
    backend.log(
        &log::Record::builder()
            .args(format_args!("hello {n}"))
            .metadata(warn.clone())
            .file(Some("src/db.rs"))
            .line(Some(12))
            .build(),
    );
    let debug = log::Metadata::builder()
        .level(log::Level::Debug)
        .target("mycrate::db")
        .build();
    assert!(!backend.enabled(&debug));
    backend.log(
        &log::Record::builder()
            .args(format_args!("quiet {n}"))
            .metadata(debug)
            .build(),
    );
    backend.flush();
    let lines = gelf_lines(&buffer.contents());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["short_message"], "hello 5");
    assert_eq!(lines[0]["level"], 4);
    assert_eq!(lines[0]["_facility"], "mycrate.db");
    assert_eq!(lines[0]["_line"], 12);
    assert_eq!(lines[0]["_file"], "src/db.rs");
}

#[test]
fn a_panicking_rewriter_loses_one_entry_not_the_logger() {
    let (buffer, d) = {
        let buffer = SharedBuffer::default();
        let d = Config::new()
            .sink("mem", WriterSink::new(buffer.clone()))
            .route(Route::new("").to("mem"))
            .rewrite(Rewriter::new(|e: &mut Entry| {
                if e.message == "boom" {
                    panic!("rewriter bug");
                }
            }))
            .build()
            .unwrap();
        (buffer, d)
    };
    let log = Logger::with_dispatcher("p", &d);
    quill::info!(log, "before");
    quill::info!(log, "boom");
    quill::info!(log, "after");
    d.flush().unwrap();
    let lines = gelf_lines(&buffer.contents());
    let messages: Vec<_> = lines.iter().map(|m| m["short_message"].clone()).collect();
    assert_eq!(messages, [json!("before"), json!("after")]);
    assert_eq!(d.stats().panics, 1);
}
