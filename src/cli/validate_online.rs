//! `quill validate [--online] -c FILE`: the config check, and with `--online` the check of what
//! the config needs from outside: for every `nats` sink and source, a connection to its servers
//! and its JetStream stream.
//!
//! A sink's stream must exist with the sink's subjects (`quill.>`), partitions (the stream's
//! description `quill partitions=N`, which sources read), replicas, retention, `max_bytes`,
//! `max_age` and `duplicate_window`; a missing one is created from the sink's config (as the
//! running sink would) and the output says so. A source's stream must exist and have been made
//! by a sink (its partitions are read from the description): sources never create it. Every
//! problem names the component, `file:line: key` and the servers, and the exit code is 2; every
//! component is checked even after one failed. Without `--online` nothing is contacted.
//!
//! Touches the NATS servers the config names (connect, stream info, stream create), stdout and
//! stderr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};

use crate::config::{Config, NatsAuth, NatsSinkConfig, SinkConfig, SourceConfig, find_key_line};
use crate::sinks::nats::stream_config;
use crate::transport::nats as wire;

/// How long connecting to a component's servers may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Also connect to every `nats` sink's and source's servers and check (a sink: or create)
    /// its JetStream stream.
    #[arg(long)]
    pub online: bool,
}

/// One component whose stream is checked.
struct Component<'a> {
    /// `sinks.NAME` or `sources.NAME`.
    table: String,
    servers: &'a [String],
    auth: &'a NatsAuth,
    stream: &'a str,
    /// The sink's config (it may create the stream); `None` for a source.
    sink: Option<&'a NatsSinkConfig>,
}

/// A problem with one component: the key it is about and what is wrong.
#[derive(Debug)]
struct Problem {
    key: &'static str,
    message: String,
}

fn problem(key: &'static str, message: String) -> Problem {
    Problem { key, message }
}

/// Checks the `nats` components of `config` (read from `path`) online; returns the exit code.
pub fn run(config: &Config, path: &Path) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let components = nats_components(config);
    if components.is_empty() {
        println!(
            "{}: no nats sinks or sources: nothing to check online",
            path.display()
        );
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut failed = 0;
    for c in &components {
        // The client's own connection events would bury the answers: not logged here.
        let quiet = tracing::subscriber::NoSubscriber::default();
        match tracing::subscriber::with_default(quiet, || rt.block_on(check(c))) {
            Ok(done) => println!("{}: {done}", c.table),
            Err(p) => {
                failed += 1;
                eprintln!(
                    "quill validate --online: {}:{}: {}.{}: {}",
                    path.display(),
                    find_key_line(&text, &c.table, p.key),
                    c.table,
                    p.key,
                    p.message
                );
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "quill validate --online: {failed} of {} nats components failed",
            components.len()
        );
        return Ok(2);
    }
    Ok(0)
}

fn nats_components(config: &Config) -> Vec<Component<'_>> {
    let sinks = config.sinks.iter().filter_map(|(name, s)| match s {
        SinkConfig::Nats(n) => Some(Component {
            table: format!("sinks.{name}"),
            servers: &n.servers,
            auth: &n.auth,
            stream: &n.stream,
            sink: Some(n),
        }),
        _ => None,
    });
    let sources = config.sources.iter().filter_map(|(name, s)| match s {
        SourceConfig::Nats(n) => Some(Component {
            table: format!("sources.{name}"),
            servers: &n.servers,
            auth: &n.auth,
            stream: &n.stream,
            sink: None,
        }),
        _ => None,
    });
    sinks.chain(sources).collect()
}

/// Connects, then checks (or, for a sink, creates) the stream; says what it did.
async fn check(c: &Component<'_>) -> Result<String, Problem> {
    let servers = c.servers.join(", ");
    let client = tokio::time::timeout(
        CONNECT_TIMEOUT,
        wire::connect(c.servers, c.auth, "quill-validate", true),
    )
    .await
    .map_err(|_| {
        problem(
            "servers",
            format!("no NATS server of {servers} answered within {CONNECT_TIMEOUT:?}"),
        )
    })?
    .map_err(|e| problem("servers", format!("{servers}: {e}")))?;
    let at = if c.servers.len() == 1 {
        servers
    } else {
        let info = client.server_info();
        format!("{servers} (connected to {}:{})", info.host, info.port)
    };
    let js = jetstream::new(client);
    let found = match js.get_stream(c.stream).await {
        Ok(mut s) => Some(
            s.info()
                .await
                .map_err(|e| problem("stream", format!("stream `{}` on {at}: {e}", c.stream)))?
                .config
                .clone(),
        ),
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            return Err(problem(
                "stream",
                format!(
                    "stream `{}` on {at}: {e} (is JetStream enabled, `nats-server -js`?)",
                    c.stream
                ),
            ));
        }
    };
    match (c.sink, found) {
        (Some(sink), None) => {
            let want = stream_config(sink);
            js.create_stream(want.clone()).await.map_err(|e| {
                problem(
                    "stream",
                    format!("creating stream `{}` on {at}: {e}", c.stream),
                )
            })?;
            Ok(format!(
                "stream `{}` created on {at}: {}",
                c.stream,
                summary(&want)
            ))
        }
        (Some(sink), Some(have)) => {
            let diffs = differences(&stream_config(sink), &have);
            match diffs.first() {
                None => Ok(format!(
                    "stream `{}` on {at} is as configured: {}",
                    c.stream,
                    summary(&have)
                )),
                Some((key, _)) => Err(problem(
                    key,
                    format!(
                        "stream `{}` on {at} differs from this sink: {}; the running sink would not change it: set these keys to the stream's values, or change the stream (`nats stream edit {}`) or use another `stream`",
                        c.stream,
                        diffs
                            .iter()
                            .map(|(_, d)| d.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                        c.stream
                    ),
                )),
            }
        }
        (None, None) => Err(problem(
            "stream",
            format!(
                "stream `{}` does not exist on {at}: the agents' `nats` sink creates it (`quill validate --online` of an agent's config does too), or the name is wrong",
                c.stream
            ),
        )),
        (None, Some(have)) => match source_problem(&have) {
            Some(why) => Err(problem(
                "stream",
                format!("stream `{}` on {at}: {why}", c.stream),
            )),
            None => Ok(format!(
                "stream `{}` on {at} is readable: {}",
                c.stream,
                summary(&have)
            )),
        },
    }
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// The partitions a stream made by a `nats` sink has (from its description).
fn partitions_of(config: &stream::Config) -> Option<u32> {
    config
        .description
        .as_deref()?
        .strip_prefix("quill partitions=")?
        .parse()
        .ok()
}

/// Why a source cannot read a stream, if it cannot.
fn source_problem(have: &stream::Config) -> Option<String> {
    if partitions_of(have).is_none() {
        return Some(format!(
            "not made by a quill `nats` sink (description {:?}, expected `quill partitions=N`)",
            have.description.as_deref().unwrap_or("")
        ));
    }
    if !have.subjects.iter().any(|s| s == "quill.>") {
        return Some(format!(
            "its subjects {:?} do not take `quill.>`",
            have.subjects
        ));
    }
    None
}

fn retention_name(r: stream::RetentionPolicy) -> &'static str {
    match r {
        stream::RetentionPolicy::Limits => "limits",
        stream::RetentionPolicy::Interest => "interest",
        stream::RetentionPolicy::WorkQueue => "workqueue",
    }
}

fn summary(c: &stream::Config) -> String {
    let partitions = partitions_of(c).map_or("?".to_string(), |p| p.to_string());
    format!(
        "partitions {partitions}, replicas {}, retention {}, subjects {}",
        c.num_replicas,
        retention_name(c.retention),
        c.subjects.join(" ")
    )
}

/// Where the stream on the server (`have`) differs from what the sink's config makes (`want`):
/// (key, "key: the stream's value (config: the sink's)"), in the order of the config keys.
fn differences(want: &stream::Config, have: &stream::Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut differ = |key: &'static str, have: String, want: String| {
        if have != want {
            out.push((key, format!("{key} {have} (config: {want})")));
        }
    };
    let show = |p: Option<u32>| p.map_or("unknown".to_string(), |p| p.to_string());
    differ(
        "partitions",
        show(partitions_of(have)),
        show(partitions_of(want)),
    );
    differ(
        "replicas",
        have.num_replicas.to_string(),
        want.num_replicas.to_string(),
    );
    differ(
        "retention",
        retention_name(have.retention).into(),
        retention_name(want.retention).into(),
    );
    let bytes = |b: i64| {
        if b < 0 {
            "none".to_string()
        } else {
            b.to_string()
        }
    };
    differ("max_bytes", bytes(have.max_bytes), bytes(want.max_bytes));
    let age = |d: Duration| {
        if d.is_zero() {
            "none".to_string()
        } else {
            humantime::format_duration(d).to_string()
        }
    };
    differ("max_age", age(have.max_age), age(want.max_age));
    differ(
        "duplicate_window",
        humantime::format_duration(have.duplicate_window).to_string(),
        humantime::format_duration(want.duplicate_window).to_string(),
    );
    if !have.subjects.iter().any(|s| s == "quill.>") {
        out.push((
            "stream",
            format!(
                "subjects {:?} (the sink publishes to quill.>)",
                have.subjects
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sink_of(extra: &str) -> NatsSinkConfig {
        let text = format!(
            "data_dir = \"/tmp/x\"\n[sinks.js]\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:4222\"]\n{extra}"
        );
        match Config::parse(&text, "a.toml").unwrap().sinks.remove("js") {
            Some(SinkConfig::Nats(n)) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stream_made_from_the_config_matches_it() {
        let sink = sink_of("partitions = 4\nmax_age = \"1h\"\n");
        let want = stream_config(&sink);
        assert!(differences(&want, &want).is_empty());
        assert_eq!(partitions_of(&want), Some(4));
        assert_eq!(source_problem(&want), None);
        assert!(summary(&want).starts_with("partitions 4, replicas 1, retention limits"));
    }

    #[test]
    fn every_difference_is_named_in_config_order() {
        let want = stream_config(&sink_of("replicas = 3\nretention = \"workqueue\"\n"));
        let have = stream_config(&sink_of("partitions = 2\nmax_bytes = \"1MiB\"\n"));
        let d = differences(&want, &have);
        let keys: Vec<&str> = d.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["partitions", "replicas", "retention", "max_bytes"]);
        assert_eq!(d[1].1, "replicas 1 (config: 3)");
        assert_eq!(d[3].1, "max_bytes 1048576 (config: none)");
        let mut foreign = want.clone();
        foreign.subjects = vec!["orders.*".into()];
        foreign.description = None;
        assert_eq!(differences(&want, &foreign)[0].0, "partitions");
        assert_eq!(differences(&want, &foreign).last().unwrap().0, "stream");
        assert!(
            source_problem(&foreign)
                .unwrap()
                .contains("not made by a quill")
        );
    }
}
