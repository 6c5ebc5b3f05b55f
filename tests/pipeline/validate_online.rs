//! `quill validate --online` (the real binary) against a real `nats-server -js` on loopback: an
//! agent config's `nats` sink gets its stream created (read back from the server: subjects,
//! replicas, retention, partitions) and then found as configured; a sink asking for other
//! replicas or partitions than the stream has is reported at the key's file:line; an
//! aggregator's `nats` source finds the stream, or is told it does not exist; an unreachable
//! server is an error naming the component, file:line and the server, while plain `validate`
//! stays offline and passes.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::*;

fn validate(config: &Path, online: bool) -> Output {
    let mut cmd = quill();
    cmd.arg("validate").arg("-c").arg(config);
    if online {
        cmd.arg("--online");
    }
    cmd.output().expect("quill validate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sink_config(dir: &Path, file: &str, port: u16, keys: &str) -> PathBuf {
    let path = dir.join(file);
    write_file(
        &path,
        &format!(
            "data_dir = \"./data\"\n\n[sources.app]\ntype = \"file\"\ninclude = [\"logs/*.log\"]\n\n[sinks.js]\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:{port}\"]\n{keys}"
        ),
    );
    path
}

fn source_config(dir: &Path, file: &str, port: u16, stream: &str) -> PathBuf {
    let path = dir.join(file);
    write_file(
        &path,
        &format!(
            "data_dir = \"./data\"\n\n[sources.bus]\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:{port}\"]\nstream = \"{stream}\"\n\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
        ),
    );
    path
}

/// The stream's config as the server has it, or `None` when there is no such stream.
fn stream_on_server(port: u16, name: &str) -> Option<async_nats::jetstream::stream::Config> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = jetstream(port).await;
        let mut stream = js.get_stream(name).await.ok()?;
        Some(stream.info().await.unwrap().config.clone())
    })
}

#[test]
fn online_validation_creates_checks_and_reports_streams() {
    if !require(
        &[Need::Program("nats-server")],
        "apt-get install nats-server",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let _nats = nats_server(&root.join("js"), port).expect("start nats-server");
    wait_port(port);

    // A new stream: created from the sink's keys, and said so.
    let agent = sink_config(
        root,
        "agent.toml",
        port,
        "stream = \"logs\"\npartitions = 4\nretention = \"limits\"\nmax_age = \"1h\"\n",
    );
    assert!(stream_on_server(port, "logs").is_none());
    let out = validate(&agent, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("agent.toml: ok"), "{stdout}");
    assert!(
        stdout.contains("sinks.js: stream `logs` created"),
        "{stdout}"
    );
    assert!(
        stdout.contains("partitions 4, replicas 1, retention limits"),
        "{stdout}"
    );
    let made = stream_on_server(port, "logs").expect("the stream was created");
    assert_eq!(made.subjects, ["quill.>"]);
    assert_eq!(made.num_replicas, 1);
    assert_eq!(made.description.as_deref(), Some("quill partitions=4"));
    assert_eq!(made.max_age, Duration::from_secs(3600));
    // Again: it exists as configured.
    let out = validate(&agent, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stream `logs` on nats://127.0.0.1"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("is as configured"));

    // Other replicas and partitions than the stream has: reported at the first key's line,
    // every difference named; the stream is left alone.
    let wrong = sink_config(
        root,
        "wrong.toml",
        port,
        "stream = \"logs\"\npartitions = 8\nmax_age = \"1h\"\nreplicas = 3\n",
    );
    let out = validate(&wrong, true);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("wrong.toml:11: sinks.js.partitions:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("partitions 4 (config: 8)") && stderr.contains("replicas 1 (config: 3)"),
        "{stderr}"
    );
    let wrong = sink_config(
        root,
        "replicas.toml",
        port,
        "stream = \"logs\"\npartitions = 4\nmax_age = \"1h\"\nreplicas = 3\n",
    );
    let stderr = text(&validate(&wrong, true).stderr);
    assert!(
        stderr.contains("replicas.toml:13: sinks.js.replicas: stream `logs`"),
        "{stderr}"
    );
    assert_eq!(stream_on_server(port, "logs").unwrap().num_replicas, 1);

    // An aggregator's source: the stream is there; a misspelt one is not (and is not created).
    let agg = source_config(root, "agg.toml", port, "logs");
    let out = validate(&agg, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sources.bus: stream `logs`"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("partitions 4"));
    let typo = source_config(root, "typo.toml", port, "lgos");
    let out = validate(&typo, true);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("typo.toml:6: sources.bus.stream: stream `lgos` does not exist"),
        "{stderr}"
    );
    assert!(stream_on_server(port, "lgos").is_none());

    // Unreachable: named with the component, file:line and server, quickly; offline validation
    // does not connect at all.
    let nobody = free_port();
    let gone = sink_config(root, "gone.toml", nobody, "");
    let started = Instant::now();
    let out = validate(&gone, true);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(15));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "gone.toml:9: sinks.js.servers: nats://127.0.0.1:{nobody}"
        )),
        "{stderr}"
    );
    let out = validate(&gone, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("stream"));
}
