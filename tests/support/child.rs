//! The bodies of the crash children: processes a test starts and kills (or lets exit) to check
//! what survived. They run in the `quill-test-child` binary (`tests/support/bin/`, a `[[bin]]`
//! in Cargo.toml that cargo builds before the integration tests), never as tests of their own,
//! so no test passes merely because it was run alone. Tests start one with
//! [`child_command`](super::child_command); what parent and child must agree on (journal
//! settings, record contents) is defined here once.
//!
//! Modes (the first argument): `journal-append DIR`, `index-sink DIR NOW_NANOS`,
//! `logging-exit HOW:SINK`.

/// Runs the mode named by the first argument; exits 2 on an unknown one.
pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        #[cfg(feature = "pipeline")]
        "journal-append" => journal::append_until_killed(std::path::Path::new(arg(1))),
        #[cfg(feature = "pipeline")]
        "index-sink" => index::sink_until_killed(std::path::Path::new(arg(1)), arg(2)),
        "logging-exit" => logging::log_then_exit(arg(1)),
        other => {
            eprintln!("quill-test-child: unknown mode {other:?} (see tests/support/child.rs)");
            std::process::exit(2);
        }
    }
}

/// `journal-append`: appends numbered records (a checkpoint "last number" in each batch) and
/// prints `DURABLE <seq>` once the journal reports a record durable (tests/pipeline/journal_crash.rs).
#[cfg(feature = "pipeline")]
pub mod journal {
    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use quill::journal::{AppendBatch, Checkpoint, FsyncPolicy, Journal, JournalConfig};
    use quill::record::{Format, Origin, Record};

    pub const CHECKPOINT_KEY: &str = "numbers:last";

    pub fn config() -> JournalConfig {
        JournalConfig {
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_millis(10),
            segment_bytes: 64 << 10,
            max_bytes: 1 << 30,
        }
    }

    /// xorshift64*: enough randomness for kill times and batch sizes.
    pub struct Rng(u64);

    impl Rng {
        pub fn seeded() -> Rng {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
        }
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    pub fn parse_u64(b: &[u8]) -> u64 {
        std::str::from_utf8(b).unwrap().parse().unwrap()
    }

    /// Appends forever (until killed, or 30 s as a safety net).
    pub fn append_until_killed(dir: &Path) {
        let journal = Journal::open(dir, config()).unwrap();
        let mut next = journal
            .checkpoint(CHECKPOINT_KEY)
            .map(|v| parse_u64(&v))
            .unwrap_or(0)
            + 1;
        let appender = journal.appender();
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let waiter = appender.clone();
        std::thread::spawn(move || {
            let stdout = std::io::stdout();
            for (first, last) in rx {
                waiter.wait_durable_blocking(last).unwrap();
                let mut out = stdout.lock();
                for seq in first..=last {
                    writeln!(out, "DURABLE {seq}").unwrap();
                }
                out.flush().unwrap();
            }
        });
        let origin = Origin::new("numbers", "test", Format::Raw, "child");
        let mut rng = Rng::seeded();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let k = 1 + rng.below(20);
            let records: Vec<Record> = (next..next + k)
                .map(|n| Record::new(origin.clone(), Bytes::from(n.to_string())))
                .collect();
            let receipt = appender
                .append_blocking(AppendBatch {
                    records,
                    checkpoints: vec![Checkpoint {
                        key: CHECKPOINT_KEY.into(),
                        value: Bytes::from((next + k - 1).to_string()),
                    }],
                })
                .unwrap();
            assert_eq!(
                receipt.first_seq, next,
                "sequence numbers follow the numbers"
            );
            tx.send((receipt.first_seq, receipt.last_seq)).unwrap();
            next += k;
            if rng.below(8) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(3000)));
            }
        }
    }
}

/// `index-sink`: the index sink indexing a slowly growing journal until it is killed
/// (tests/pipeline/index_crash.rs).
#[cfg(feature = "pipeline")]
pub mod index {
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use bytes::Bytes;
    use quill::index::IndexSettings;
    use quill::journal::{AppendBatch, Journal, JournalConfig};
    use quill::record::{Format, Origin, Record, Timestamp};
    use quill::sinks::index::run_index_sink;

    pub const SINK_RECORDS: usize = 20_000;

    /// The journal's content: the same in the killed run and after the restart, as a durable
    /// journal would hand it back. Entries alternate between today and yesterday: two partitions.
    pub fn sink_record(origin: &std::sync::Arc<Origin>, i: usize, now: Timestamp) -> Record {
        let mut r = Record::new(
            origin.clone(),
            Bytes::from(format!(
                r#"{{"level":"info","msg":"work item {i}","txn_id":"sk-{i:06}"}}"#
            )),
        );
        let day_back = ((i / 7) % 2) as i64;
        r.received_at = Timestamp(now.0 - day_back * 86_400_000_000_000 - i as i64 * 1_000_000);
        r
    }

    pub fn sink_settings() -> IndexSettings {
        IndexSettings {
            commit_interval: Duration::from_millis(50),
            max_age_days: 0,
            batch_max: 500,
            ..IndexSettings::default()
        }
    }

    pub fn sink_until_killed(dir: &Path, now: &str) {
        let now = Timestamp(now.parse().expect("NOW_NANOS"));
        let journal = Journal::memory(JournalConfig::default());
        let cursor = journal.cursor("index").unwrap();
        let appender = journal.appender();
        let origin = Origin::new("app", "app", Format::Json, "app1");
        std::thread::spawn(move || {
            for chunk in (0..SINK_RECORDS).collect::<Vec<_>>().chunks(1000) {
                let records = chunk
                    .iter()
                    .map(|i| sink_record(&origin, *i, now))
                    .collect();
                appender
                    .append_blocking(AppendBatch {
                        records,
                        checkpoints: vec![],
                    })
                    .unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let stop = AtomicBool::new(false);
        run_index_sink(cursor, dir, &sink_settings(), &stop).unwrap();
    }
}

/// `logging-exit HOW:SINK`: logs [`LINES`](logging::LINES) entries through the global
/// dispatcher (4 threads, a small queue) and exits at once: `exit` (the guard never dropped),
/// `guard` (dropped, then exit) or `return` (main returns) (tests/logging/logging_exit.rs).
pub mod logging {
    use quill::logging::sinks::{FileSink, WriterSink};
    use quill::logging::{Config, Logger, Route};

    pub const LINES: u64 = 20_000;

    static LOG: Logger = Logger::local("exit.child");

    pub fn log_then_exit(spec: &str) {
        let (how, sink) = spec.split_once(':').expect("HOW:SINK");
        let config = Config::new().queue_capacity(64);
        let config = if sink == "stderr" {
            config.sink("out", WriterSink::stderr())
        } else {
            config.sink("out", FileSink::new(sink).unwrap())
        };
        let guard = quill::logging::init(config.route(Route::new("").to("out"))).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..LINES / 4 {
                        quill::info!(LOG, "child line", t = t, i = i, pad = "0123456789abcdef");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        match how {
            // The guard is never dropped: only the exit hook can flush.
            "exit" => {
                std::mem::forget(guard);
                std::process::exit(0);
            }
            // The guard flushes, then the process exits.
            "guard" => {
                drop(guard);
                std::process::exit(0);
            }
            // Returning from main: the guard drops, the process exits normally.
            _ => {}
        }
    }
}
