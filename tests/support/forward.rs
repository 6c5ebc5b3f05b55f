//! Helpers of the forward tests: configs for real agent and aggregator processes, a writer of
//! numbered lines, and checks of what the aggregator's file sink holds.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use quill::transport::frame::{Frame, FrameError, HEADER_LEN, Hello};

pub const TOKEN: &str = "s3cret-token";

/// Writes `<name>.toml` for an agent tailing `<name>-logs/*.log` (category `app`, format raw)
/// and forwarding to `to` with [`TOKEN`]. `extra` is appended to the `[sinks.fwd]` table.
pub fn agent_config(root: &Path, name: &str, to: &[u16], extra: &str) -> PathBuf {
    agent_config_with_token(root, name, to, TOKEN, extra)
}

/// [`agent_config`] presenting `token`.
pub fn agent_config_with_token(
    root: &Path,
    name: &str,
    to: &[u16],
    token: &str,
    extra: &str,
) -> PathBuf {
    let to: Vec<String> = to.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let text = format!(
        r#"data_dir = "./{name}-data"
hostname = "{name}"
status_interval = "1s"

[sources.app]
type = "file"
include = ["{name}-logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.fwd]
type = "forward"
to = [{to}]
token = "{token}"
backoff_min = "20ms"
backoff_max = "300ms"
ack_timeout = "2s"
{extra}
"#,
        to = to.join(", ")
    );
    let path = root.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir_all(root.join(format!("{name}-logs"))).unwrap();
    path
}

/// Writes `<name>.toml` for an aggregator listening on `port`, writing `<name>-out/`, plus
/// `extra_source` in its `[sources.agents]` table and `extra` at the end (e.g. a forward sink).
pub fn aggregator_config(
    root: &Path,
    name: &str,
    port: u16,
    extra_source: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"data_dir = "./{name}-data"
hostname = "{name}"
status_interval = "1s"

[sources.agents]
type = "forward"
listen = "127.0.0.1:{port}"
token = "{TOKEN}"
{extra_source}

[sinks.out]
type = "file"
path = "./{name}-out"
{extra}
"#
    );
    let path = root.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `agg.toml`: an aggregator (data `./agg-data`, hostname `agg`) with a forward source on `port`
/// (`source_extra` in its table, no token unless given there), a file sink to `./agg-out` and
/// metrics on `metrics`.
pub fn metered_aggregator_config(
    root: &Path,
    port: u16,
    metrics: u16,
    source_extra: &str,
) -> PathBuf {
    let path = root.join("agg.toml");
    let text = format!(
        r#"data_dir = "./agg-data"
hostname = "agg"
status_interval = "1s"
metrics_listen = "127.0.0.1:{metrics}"

[sources.agents]
type = "forward"
listen = "127.0.0.1:{port}"
{source_extra}

[sinks.out]
type = "file"
path = "./agg-out"
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Appends lines `"<prefix> <n>"` for `range` to `path`.
pub fn append_lines(path: &Path, prefix: &str, range: std::ops::Range<u64>) {
    append_with(path, range, |n| format!("{prefix} {n}"));
}

/// Appends `line(n)` and a newline for each `n` of `range` to `path` (created if missing), in
/// one write.
pub fn append_with(path: &Path, range: std::ops::Range<u64>, line: impl Fn(u64) -> String) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for n in range {
        text.push_str(&line(n));
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// The numbers of `"<prefix> <n>"` messages in a sink, by `(host, prefix)`, in file order.
pub fn numbered(entries: &[serde_json::Value]) -> HashMap<(String, String), Vec<u64>> {
    let mut out: HashMap<(String, String), Vec<u64>> = HashMap::new();
    for e in entries {
        let host = e["host"].as_str().unwrap_or("").to_string();
        let msg = e["short_message"].as_str().unwrap_or("");
        if let Some((prefix, n)) = msg.rsplit_once(' ')
            && let Ok(n) = n.parse()
        {
            out.entry((host, prefix.to_string())).or_default().push(n);
        }
    }
    out
}

/// A forward-protocol HELLO frame (stream id `abcdef0123456789`).
pub fn hello_frame(token: &str, version: u16, agent: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Hello(Hello {
        version,
        agent_id: agent.into(),
        stream_id: "abcdef0123456789".into(),
        token: Bytes::copy_from_slice(token.as_bytes()),
    })
    .encode(&mut out);
    out
}

/// Reads one forward-protocol frame: `None` when the stream ends (or a read fails or times
/// out), else what its bytes decode to.
pub fn read_frame(s: &mut impl Read) -> Option<Result<Frame, FrameError>> {
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    Some(Frame::decode(header[0], Bytes::from(payload)))
}
