//! `quill bytes check` (what a haproxy.cfg lets Quill bill exactly, and what to add) and the
//! offline byte join behind `quill parse --haproxy-config` (every file on the command line
//! merged in log-time order through one [`ByteJoin`]).
//!
//! Reads the files named on the command line; writes to stdout (report, GELF lines) and a
//! summary to stderr.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;

use crate::accounting::join::{ByteJoin, JoinItem, Released};
use crate::accounting::stream::{append_correction, classify};
use crate::accounting::{Basis, HeaderAction, HeaderModel, HeaderValue, ProxyModel};
use crate::parse::Parser;
use crate::parse::haproxy::config::HaproxyConfig;
use crate::record::{Origin, Record, Timestamp};

use super::parse::{ParseArgs, parser_for};

/// Arguments of `quill bytes`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub command: BytesCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BytesCommand {
    /// Say, frontend by frontend, which byte counts will be exact, which estimated and why, and
    /// the lines to add to haproxy.cfg and Apache's LogFormat to make them exact.
    Check(CheckArgs),
}

/// Arguments of `quill bytes check`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// The haproxy.cfg to check.
    pub config: PathBuf,
    /// The backend's (Apache) LogFormat string, to check that it carries `%O` and the id.
    #[arg(long, value_name = "STR")]
    pub backend_log_format: Option<String>,
    /// Check as `quill parse --assume-keep-alive-clients` corrects: no HTTP/1.1 client of a
    /// keep-alive frontend sends `Connection: close`.
    #[arg(long)]
    pub assume_keep_alive_clients: bool,
}

/// Runs `quill bytes`; returns the exit status (0: every HTTP count can be exact for completed
/// responses; 1: some will be estimates).
pub fn run(args: &Args) -> anyhow::Result<i32> {
    match &args.command {
        BytesCommand::Check(c) => {
            let text = std::fs::read_to_string(&c.config)
                .with_context(|| format!("reading {}", c.config.display()))?;
            let cfg = HaproxyConfig::parse(&text)
                .with_context(|| format!("in {}", c.config.display()))?;
            let (report, all_exact) = check_report_with(
                &cfg,
                c.backend_log_format.as_deref(),
                c.assume_keep_alive_clients,
            );
            print!("{report}");
            Ok(if all_exact { 0 } else { 1 })
        }
    }
}

const ID_HEADER: &str = "X-Request-ID";

/// The `quill bytes check` report for a configuration, and whether every HTTP frontend can be
/// exact for completed, uncompressed responses (as `quill parse` corrects by default).
pub fn check_report(cfg: &HaproxyConfig, backend_log_format: Option<&str>) -> (String, bool) {
    check_report_with(cfg, backend_log_format, false)
}

/// [`check_report`] with the operator setting of `--assume-keep-alive-clients`
/// ([`HeaderModel::assume_clients_keep_alive`]).
pub fn check_report_with(
    cfg: &HaproxyConfig,
    backend_log_format: Option<&str>,
    assume_keep_alive_clients: bool,
) -> (String, bool) {
    use std::fmt::Write as _;
    let mut model = HeaderModel::from_config(cfg);
    model.assume_clients_keep_alive = assume_keep_alive_clients;
    let mut out = String::new();
    let mut all_exact = true;
    if model.frontend_order.is_empty() {
        out.push_str("no frontend or listen section: nothing is logged per request\n");
    }
    for fe_name in &model.frontend_order {
        let Some(fe) = model.proxies.get(fe_name) else {
            continue;
        };
        let _ = writeln!(out, "frontend {fe_name}");
        if fe.mode_tcp {
            let _ = writeln!(
                out,
                "  exact: mode tcp, %B is the relayed byte count\n  unknown: aborts (C/c/S/s with D/L): %B is what was read from the server\n"
            );
            continue;
        }
        let mut exact_blockers: Vec<String> = Vec::new();
        let mut estimates: Vec<String> = Vec::new();
        let mut partial: Vec<String> = Vec::new();
        let mut add_cfg: Vec<String> = Vec::new();
        let mut add_apache: Vec<String> = Vec::new();
        let lf = cfg
            .proxy(fe_name)
            .and_then(|p| p.log_format())
            .unwrap_or_default();
        let has_tsc = lf.contains("%tsc");
        let backends: Vec<String> = HeaderModel::default_backend(cfg, fe_name)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let id_header = fe.unique_id_header.clone().or_else(|| {
            backends.iter().find_map(|b| {
                model
                    .proxies
                    .get(b)
                    .and_then(|p| p.unique_id_header.clone())
            })
        });
        // 1. the join id: a request header both HAProxy and the backend log.
        let lf_sd = cfg
            .proxy(fe_name)
            .map(|p| {
                p.directives()
                    .filter(|d| d.starts_with(&["log-format-sd"]))
                    .map(|d| d.words[1..].join(" "))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let logs_id = lf.contains("%ID") || lf_sd.contains("%ID") || lf.contains("unique-id");
        let mut hap_ids: Vec<String> = Vec::new();
        if logs_id {
            hap_ids.extend(id_header.clone());
        }
        hap_ids.extend(fe.captured_request.iter().cloned());
        if let Some(p) = cfg.proxy(fe_name) {
            for d in p.directives() {
                for w in &d.words {
                    let mut rest = w.as_str();
                    while let Some(i) = rest.find("req.hdr(") {
                        rest = &rest[i + 8..];
                        if let Some(j) = rest.find([')', ',']) {
                            hap_ids.push(rest[..j].to_owned());
                        }
                    }
                }
            }
        }
        let backend_logs = |name: &str| {
            backend_log_format.is_some_and(|f| {
                f.to_ascii_lowercase()
                    .contains(&format!("%{{{}}}i", name.to_ascii_lowercase()))
            })
        };
        let joined_by = hap_ids.iter().find(|n| backend_logs(n)).cloned();
        let has_o = backend_log_format.is_some_and(|f| f.contains("%O"));
        let idh = joined_by
            .clone()
            .or_else(|| id_header.clone())
            .unwrap_or_else(|| ID_HEADER.to_owned());
        if joined_by.is_none() || !has_o {
            if fe.unique_id_format.is_none() {
                exact_blockers
                    .push("no unique-id-format: no id to join HAProxy and backend lines".into());
                add_cfg.push("unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid".to_owned());
            }
            if id_header.is_none() {
                exact_blockers.push("no unique-id-header: the backend never sees the id".into());
                add_cfg.push(format!("unique-id-header {ID_HEADER}"));
            }
            if !logs_id {
                exact_blockers.push("the log-format does not log %ID".into());
                add_cfg.push("log-format \"%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %ID\"".to_owned());
            }
            exact_blockers.push(match backend_log_format {
                None => "backend LogFormat not given (--backend-log-format): assuming it lacks %O and the id".into(),
                Some(_) => format!("the backend LogFormat lacks %O or %{{{idh}}}i"),
            });
            add_apache.push(format!(
                "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{Referer}}i\\\" \\\"%{{User-Agent}}i\\\" %{{{idh}}}i\" haproxied"
            ));
        }
        // 2. header changes
        let mut describe = |p: &ProxyModel, out: &mut String| {
            if let Some(ck) = &p.cookie_insert {
                let _ = writeln!(
                    out,
                    "  {} line {}: cookie {} insert{}{}: Set-Cookie{} added when %tsc says I/U",
                    p.name,
                    ck.line,
                    ck.name,
                    if ck.nocache { " nocache" } else { "" },
                    if ck.httponly { " httponly" } else { "" },
                    if ck.nocache {
                        " + Cache-control: private"
                    } else {
                        ""
                    }
                );
                if !has_tsc {
                    exact_blockers.push(format!(
                        "{}: cookie insert but the log-format has no %tsc",
                        p.name
                    ));
                }
            }
            if p.cookie_insert.as_ref().is_some_and(|c| c.nocache) {
                partial.push(format!(
                    "{}: cookie nocache: on non-200 cacheable statuses, whether Cache-control: private is added depends on the server's headers",
                    p.name
                ));
            }
            if p.cookie_other {
                estimates.push(format!(
                    "{}: cookie rewrite/prefix changes server cookies by unknown sizes",
                    p.name
                ));
            }
            for r in &p.rules {
                let v = match &r.value {
                    Some(HeaderValue::Literal(v)) => format!(
                        "{v:?} ({} bytes on the wire)",
                        crate::accounting::header_line_len(&r.name, v.len())
                    ),
                    Some(HeaderValue::Dynamic(v)) => format!("{v} (dynamic)"),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  {} line {}: http-response {} {} {}",
                    p.name,
                    r.line,
                    action_name(r.action),
                    r.name,
                    v
                );
                if r.conditional {
                    estimates.push(format!(
                        "{} line {}: conditional rule: applied or not is not logged",
                        p.name, r.line
                    ));
                }
                if let Some(HeaderValue::Dynamic(v)) = &r.value {
                    if v != "%[unique-id]" && v != "%ID" {
                        estimates.push(format!(
                            "{} line {}: dynamic value {v}: its length is not logged",
                            p.name, r.line
                        ));
                    }
                }
                if matches!(r.action, HeaderAction::Set | HeaderAction::Del)
                    && !fe
                        .captured_response
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(&r.name))
                {
                    estimates.push(format!(
                        "{} line {}: {} {} changes a server header the logs do not show",
                        p.name,
                        r.line,
                        action_name(r.action),
                        r.name
                    ));
                    add_cfg.push(format!("capture response header {} len 256", r.name));
                }
                if r.action == HeaderAction::Replace {
                    estimates.push(format!(
                        "{} line {}: replace-header: the size change is not logged",
                        p.name, r.line
                    ));
                }
            }
            if p.httpclose {
                let _ = writeln!(
                    out,
                    "  {}: option httpclose: `connection: close` added",
                    p.name
                );
            }
            if p.compression {
                estimates.push(format!("{}: compression: %B is the uncompressed size; compressed responses stay unknown on 2.6 (HAProxy >= 3.4: log %[res.bytes_out])", p.name));
                // With these, Quill can tell the responses HAProxy did not compress.
                if !fe
                    .captured_request
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("Accept-Encoding"))
                {
                    add_cfg.push("capture request header Accept-Encoding len 64".into());
                }
                if !fe
                    .captured_response
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case("Content-Type"))
                {
                    add_cfg.push("capture response header Content-Type len 64".into());
                }
                if !fe
                    .captured_response
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case("Content-Encoding"))
                {
                    add_cfg.push("capture response header Content-Encoding len 16".into());
                }
            }
        };
        describe(fe, &mut out);
        for b in &backends {
            if b == fe_name {
                continue;
            }
            let _ = writeln!(out, "  backend {b}");
            if let Some(p) = model.proxies.get(b) {
                describe(p, &mut out);
            }
        }
        // HAProxy 2.6 strips a client's `Connection: close` before captures, rules and
        // log-formats (measured), so on a keep-alive frontend only the operator knows whether
        // HTTP/1.1 clients ask to close; `option httpclose` makes the answer known.
        // Under httpclose in the frontend, or in every backend it can use.
        let httpclose = fe.httpclose
            || (!backends.is_empty()
                && backends
                    .iter()
                    .all(|b| model.proxies.get(b).is_some_and(|p| p.httpclose)));
        let client_close_unknown = !httpclose && !model.assume_clients_keep_alive;
        add_cfg.sort();
        add_cfg.dedup();
        if exact_blockers.is_empty() && estimates.is_empty() {
            let _ = writeln!(
                out,
                "  exact: completed responses proxied to the backend (%O joined by {idh}){}",
                if client_close_unknown {
                    ", HTTP/1.1 ones only under `option httpclose` or --assume-keep-alive-clients (below)"
                } else {
                    ""
                }
            );
        } else {
            all_exact = false;
            let _ = writeln!(
                out,
                "  estimate: %B + 4N - 15 + HAProxy's header changes, N learned per backend and status"
            );
            for r in exact_blockers.iter().chain(&estimates) {
                let _ = writeln!(out, "    because {r}");
            }
        }
        for p in &partial {
            let _ = writeln!(out, "  estimate: {p}");
        }
        if client_close_unknown {
            all_exact = false;
            let _ = writeln!(
                out,
                "  estimate: HTTP/1.1 clients: one that sends `Connection: close` gets `connection: close` (19 bytes), and HAProxy 2.6 strips that request header before any capture, rule or log-format can show it; the value assumes keep-alive (at most 19 bytes low)"
            );
        } else if !httpclose {
            let _ = writeln!(
                out,
                "  exact: HTTP/1.1 clients, on your word (--assume-keep-alive-clients); one that sends `Connection: close` gets 19 bytes more than reported"
            );
        }
        if !httpclose {
            let _ = writeln!(
                out,
                "  estimate: HTTP/1.0 clients (the connection header HAProxy answers with is not logged)"
            );
        }

        let _ = writeln!(
            out,
            "  estimate: responses HAProxy generates (deny, redirect, 503, 504)"
        );
        let _ = writeln!(
            out,
            "  estimate: <BADREQ>/408 lines (HAProxy logs 0; Quill uses the size of HAProxy's built-in message)"
        );
        let _ = writeln!(out, "  unknown: aborts (C/c/S/s with D/L)");
        if !add_cfg.is_empty() {
            let _ = writeln!(out, "  add to frontend {fe_name} in haproxy.cfg:");
            for l in &add_cfg {
                let _ = writeln!(out, "    {l}");
            }
        }
        if !add_apache.is_empty() {
            let _ = writeln!(
                out,
                "  add to Apache (and use it in the backend's CustomLog):"
            );
            for l in &add_apache {
                let _ = writeln!(out, "    {l}");
            }
        }
        if client_close_unknown {
            // No capture, variable or backend log field can carry the client's wish (measured
            // on HAProxy 2.6.12 / Apache 2.4.71): the only changes that make it known.
            let _ = writeln!(
                out,
                "  to make HTTP/1.1 (and HTTP/1.0) entries exact, add to frontend {fe_name} in haproxy.cfg (every response then carries `connection: close`; clients lose keep-alive):\n    option httpclose"
            );
            let _ = writeln!(
                out,
                "  or, if no client of {fe_name} sends `Connection: close`, correct with: quill parse --assume-keep-alive-clients"
            );
        }
        out.push('\n');
    }
    (out, all_exact)
}

fn action_name(a: HeaderAction) -> &'static str {
    match a {
        HeaderAction::Add => "add-header",
        HeaderAction::Set => "set-header",
        HeaderAction::Del => "del-header",
        HeaderAction::Replace => "replace-header",
    }
}

/// A line of the offline join: its output position, its GELF, its input and raw log time.
struct Pending {
    seq: u64,
    gelf: Vec<u8>,
    input: usize,
    ts: i64,
}

/// Per-input clock offsets of the offline join, learned from pairs (a HAProxy entry and its
/// backend line are the same request, so their log times name the same moment).
struct InputClocks {
    /// Milliseconds added to an input's log times; `None` until learned.
    offset: Vec<Option<i64>>,
}

impl InputClocks {
    fn new(n: usize) -> InputClocks {
        InputClocks {
            offset: vec![None; n],
        }
    }
    /// Input `i`'s time `ts` on the common clock (its own until learned).
    fn aligned(&self, i: usize, ts: i64) -> i64 {
        ts.saturating_add(self.offset[i].unwrap_or(0))
    }
    /// Whether a pair was seen (log-time windows mean something from then on).
    fn any_pair_seen(&self) -> bool {
        self.offset.iter().any(Option::is_some)
    }
    /// Learns from a pair: HAProxy entry (input, log time), backend line (input, log time).
    fn learn(&mut self, (a, ta): (usize, i64), (b, tb): (usize, i64)) {
        if a == b {
            self.offset[a].get_or_insert(0);
            return;
        }
        match (self.offset[a], self.offset[b]) {
            (None, None) => {
                self.offset[a] = Some(0);
                self.offset[b] = Some(ta.saturating_sub(tb));
            }
            (Some(oa), None) => self.offset[b] = Some(oa.saturating_add(ta - tb)),
            (None, Some(ob)) => self.offset[a] = Some(ob.saturating_add(tb - ta)),
            (Some(_), Some(_)) => {}
        }
    }
}

/// One input of the offline join, with its next line already parsed.
struct Input {
    parser: Parser,
    origin: Arc<Origin>,
    reader: Box<dyn BufRead>,
    head: Option<Head>,
    last_ts: i64,
}

struct Head {
    gelf: Vec<u8>,
    item: JoinItem,
    key: Option<String>,
    ts: i64,
    error: bool,
}

impl Input {
    fn advance(&mut self) -> anyhow::Result<()> {
        self.head = None;
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        let record = Record {
            origin: Arc::clone(&self.origin),
            received_at: Timestamp::now(),
            position: crate::record::Position::None,
            flags: crate::record::RecordFlags::empty(),
            raw: Bytes::from(line),
        };
        let mut gelf = Vec::with_capacity(512);
        let error = crate::gelf::encode_parsed(&self.parser, &record, &mut gelf).is_error();
        let classified = classify(&self.parser, &record);
        let (item, key, ts) = (classified.item, classified.key, classified.log_time_ms);
        let ts = ts.unwrap_or(self.last_ts);
        self.last_ts = ts;
        self.head = Some(Head {
            gelf,
            item,
            key,
            ts,
            error,
        });
        Ok(())
    }
}

/// `quill parse --haproxy-config …`: every input merged by log time through one byte join;
/// prints every entry, HAProxy entries with `_bytes_sent` and `_bytes_sent_basis`.
pub fn run_joined(args: &ParseArgs) -> anyhow::Result<i32> {
    let cfg_path = args
        .keys
        .haproxy_config
        .as_ref()
        .context("--haproxy-config is required for the byte join")?;
    let text = std::fs::read_to_string(cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let hcfg = HaproxyConfig::parse(&text).with_context(|| format!("in {}", cfg_path.display()))?;
    let mut model = HeaderModel::from_config(&hcfg);
    model.assume_clients_keep_alive = args.assume_keep_alive_clients;
    let mut join: ByteJoin<Pending> = ByteJoin::new(
        model,
        i64::from(args.join_window) * 1000,
        args.join_capacity,
    );
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let mut inputs = Vec::new();
    let paths: Vec<Option<&PathBuf>> = if args.files.is_empty() {
        vec![None]
    } else {
        args.files.iter().map(Some).collect()
    };
    for p in paths {
        let parser = parser_for(args, p.map(PathBuf::as_path))?;
        let source = p.map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
        let reader: Box<dyn Read> = match p {
            Some(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            ),
            None => Box::new(std::io::stdin()),
        };
        let mut input = Input {
            parser,
            origin: Origin::new(&source, "parse", args.format, &host),
            reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
            head: None,
            last_ts: 0,
        };
        input.advance()?;
        inputs.push(input);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut total, mut errors) = (0u64, 0u64);
    let mut counts = [0u64; 4];
    // The inputs' clocks (or zones) may disagree: pairing is by txn id, and log times only
    // order the merge and end the wait. Each input's offset to the others is learned from the
    // first pair it takes part in; until an input has one, its entries wait for their partner
    // bounded only by the join's capacity (never by a log-time window its partner's clock
    // would not share).
    let mut clock = InputClocks::new(inputs.len());
    // Lines go out in input order: released entries wait in `reorder` until every earlier
    // line is out. If that buffer outgrows the join's capacity, the join is drained (the
    // waiting entries go out with their best estimate) so memory stays bounded.
    let mut reorder: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    let mut next_out = 0u64;
    let mut emit = |released: Vec<Released<Pending>>,
                    clock: &mut InputClocks,
                    reorder: &mut std::collections::BTreeMap<u64, Vec<u8>>,
                    next_out: &mut u64,
                    out: &mut BufWriter<_>|
     -> anyhow::Result<()> {
        let mut pair_head: Option<(usize, i64)> = None;
        for r in released {
            let Pending {
                seq,
                mut gelf,
                input,
                ts,
            } = r.payload;
            if r.paired {
                match pair_head.take() {
                    None => pair_head = Some((input, ts)),
                    Some(hap) => clock.learn(hap, (input, ts)),
                }
            }
            if let Some(c) = r.correction {
                counts[c.basis as usize] += 1;
            }
            append_correction(&mut gelf, r.correction);
            gelf.push(b'\n');
            reorder.insert(seq, gelf);
        }
        while let Some(g) = reorder.remove(next_out) {
            out.write_all(&g)?;
            *next_out += 1;
        }
        Ok(())
    };
    let mut seq = 0u64;
    loop {
        let next = inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| inp.head.as_ref().map(|h| (clock.aligned(i, h.ts), i)))
            .min();
        let Some((now, i)) = next else { break };
        let Some(head) = inputs[i].head.take() else {
            break;
        };
        total += 1;
        errors += u64::from(head.error);
        let raw_ts = head.ts;
        let pending = Pending {
            seq,
            gelf: head.gelf,
            input: i,
            ts: raw_ts,
        };
        let released = join.push(head.key.as_deref(), head.item, pending, now);
        seq += 1;
        emit(released, &mut clock, &mut reorder, &mut next_out, &mut out)?;
        if clock.any_pair_seen() {
            // The line's time on the common clock, with what this line's pair just taught.
            let now = clock.aligned(i, raw_ts);
            emit(
                join.poll_expired(now),
                &mut clock,
                &mut reorder,
                &mut next_out,
                &mut out,
            )?;
        }
        if reorder.len() > args.join_capacity {
            emit(
                join.drain(),
                &mut clock,
                &mut reorder,
                &mut next_out,
                &mut out,
            )?;
        }
        inputs[i].advance()?;
    }
    emit(
        join.drain(),
        &mut clock,
        &mut reorder,
        &mut next_out,
        &mut out,
    )?;
    out.flush()?;
    eprintln!(
        "quill parse: {total} lines, {errors} parse errors; bytes_sent basis: {} exact, {} estimate, {} lower_bound, {} unknown",
        counts[Basis::Exact as usize],
        counts[Basis::Estimate as usize],
        counts[Basis::LowerBound as usize],
        counts[Basis::Unknown as usize]
    );
    Ok(if errors > 0 { 1 } else { 0 })
}
