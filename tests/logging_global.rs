//! The process-wide setup: `init` with the `log` backend and the `tracing` subscriber, static
//! module loggers, the explicit flush, and a second `init` refused. One process, one test.
#![cfg(feature = "logging")]

#[path = "support/gelf.rs"]
mod gelf;

use gelf::{read_gelf_file, short_messages};
use quill::logging::sinks::FileSink;
use quill::logging::{Config, Error, Level, Logger, Route, TxnId};

static API: Logger = Logger::local("gapp.api");
static NOISY: Logger = Logger::local("gapp.noisy");

#[test]
fn init_installs_loggers_log_and_tracing() {
    // Before init, loggers are disabled and log nothing (no panic).
    assert!(!API.enabled(Level::Emergency));
    quill::info!(API, "before init");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.log");
    let guard = quill::logging::init(
        Config::new()
            .host("global-host")
            .sink("file", FileSink::new(&path).unwrap())
            .route(Route::new("gapp").at_least(Level::Info).to("file"))
            .route(Route::new("gapp.noisy").at_least(Level::Error).to("file"))
            .route(Route::new("logging_global").to("file"))
            .capture_log()
            .capture_tracing(),
    )
    .unwrap();
    assert!(quill::logging::global().is_some());

    let txn = TxnId::new();
    quill::info!(API.with("txn_id", &txn), "from a module logger", n = 1);
    quill::debug!(NOISY, "below the route's level");
    log::warn!(target: "gapp::legacy", user_id = 42, ratio = 0.5, ok = true, who = "ann"; "from the log crate: {}", 2);
    log::info!("from the log crate, default target");
    {
        let _span = txn.span().entered();
        tracing::info!(target: "gapp::traced", n = 3, "from tracing");
    }
    quill::logging::flush().unwrap();

    let lines = read_gelf_file(&path);
    let messages = short_messages(&lines);
    assert_eq!(
        messages,
        [
            "from a module logger",
            "from the log crate: 2",
            "from the log crate, default target",
            "from tracing"
        ]
    );
    assert!(lines.iter().all(|m| m["host"] == "global-host"));
    assert_eq!(lines[0]["_txn_id"], txn.as_str());
    assert_eq!(lines[1]["_facility"], "gapp.legacy");
    assert_eq!(lines[1]["level"], 4);
    assert_eq!(lines[1]["_user_id"], 42);
    assert_eq!(lines[1]["_ratio"], 0.5);
    assert_eq!(lines[1]["_ok"], "true");
    assert_eq!(lines[1]["_who"], "ann");
    assert_eq!(lines[2]["_facility"], "logging_global");
    assert_eq!(lines[3]["_facility"], "gapp.traced");
    assert_eq!(lines[3]["_txn_id"], txn.as_str());

    assert!(matches!(
        quill::logging::init(Config::stderr()),
        Err(Error::AlreadyInitialized)
    ));
    drop(guard);
}
